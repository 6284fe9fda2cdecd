"""Python client for tuner-service: upload, submit, wait, read trials, download, predict.

    from tuner_client import Client
    client = Client("http://127.0.0.1:8000")
    dataset = client.upload("customers.csv", target="churned")
    job = client.wait(client.submit(dataset, algorithm="random_search", max_trials=10))
    client.trials(job)  # a pandas DataFrame

Plain HTTP (httpx); it never imports TensorFlow.
"""

from tuner_client.client import Client
from tuner_client.errors import (
    AmbiguousId,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    JobFailed,
    NotFound,
    ServerError,
    ServiceUnavailable,
    TunerError,
    Unauthorized,
    WaitTimeout,
)

__all__ = [
    "AmbiguousId",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "InvalidRequest",
    "JobFailed",
    "NotFound",
    "ServerError",
    "ServiceUnavailable",
    "TunerError",
    "Unauthorized",
    "WaitTimeout",
]
