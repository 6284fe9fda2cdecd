# syntax=docker/dockerfile:1
# Two targets: `api` (no TensorFlow installed) and `worker` (TensorFlow + KerasTuner).
#   docker build --target api -t tuner-service-api .
#   docker build --target worker -t tuner-service-worker .
# Versions come from requirements.lock, as for `make install` (`make lock` refreshes it).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TUNER_DATA_DIR=/data
RUN useradd --create-home --uid 10001 tuner \
    && mkdir -p /data \
    && chown tuner:tuner /data
WORKDIR /srv/tuner-service
# Only what the dependency layer reads: editing the code leaves that layer cached.
COPY requirements.lock pyproject.toml ./
COPY client/pyproject.toml ./client/
COPY scripts/requirements.py ./scripts/

FROM base AS api
RUN python scripts/requirements.py . ./client > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt
COPY README.md ./
COPY app ./app
COPY tuner_jobs ./tuner_jobs
COPY migrations ./migrations
COPY tuner_client ./tuner_client
# The same arguments as the layer above: only the two projects are left to install.
RUN pip install . ./client -c requirements.lock && pip check
USER tuner
ENV TUNER_HOST=0.0.0.0 TUNER_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["tuner-service", "api"]

FROM base AS worker
RUN python scripts/requirements.py ".[worker]" ./client > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt
COPY README.md ./
COPY app ./app
COPY tuner_jobs ./tuner_jobs
COPY migrations ./migrations
COPY tuner_client ./tuner_client
RUN pip install ".[worker]" ./client -c requirements.lock && pip check
USER tuner
# The supervisor is PID 1; it is healthy while it can reach the database.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "from app.settings import get_settings; from app.store.db import make_engine; make_engine(get_settings().database_url).connect().close()"]
CMD ["tuner-service", "worker"]
