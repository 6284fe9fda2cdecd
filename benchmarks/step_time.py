"""The honest step time of a trial's epochs, for `make bench-speed`'s per-trial fixed cost.

    python -m benchmarks.step_time requests.json

Each request names a configuration, its table (an .npz of standardized rows) and a
side: "service" trains it as the service does (tuner_jobs.search.model_builder: tf.data,
32 steps per execution), "script" as the plain script does (numpy arrays). The model
is built and fitted for one epoch first (tracing, TensorFlow's warm-up), then timed
for EPOCHS more: that fit's wall time per epoch is the cost of an epoch's steps
(training and validation) with no fixed cost in it. Prints one JSON list of seconds.
"""

from __future__ import annotations

import copy
import json
import sys
import time

import keras
import keras_tuner as kt
import numpy as np

from benchmarks.plain_hyperband import DenseModel
from tuner_jobs.search.data import Head
from tuner_jobs.search.model_builder import DenseHyperModel

EPOCHS = 3
HEAD = Head(1, "sigmoid", "binary_crossentropy", ("accuracy",))


def epoch_s(request: dict, space: dict, data: dict) -> float:
    hp = kt.HyperParameters.from_config(copy.deepcopy(space))  # from_config edits its input
    hp.values.update(request["hyperparameters"])
    x, y, val = data["x"], data["y"], (data["x_val"], data["y_val"])
    fitter: DenseHyperModel | DenseModel
    if request["side"] == "service":
        fitter = DenseHyperModel(input_width=x.shape[1], head=HEAD, seed=1)
    else:
        fitter = DenseModel(x.shape[1])
    model = fitter.build(hp)

    def fit(epochs: int) -> None:
        fitter.fit(hp, model, x, y, validation_data=val, epochs=epochs, verbose=0)

    fit(1)
    started = time.perf_counter()
    fit(EPOCHS)
    return (time.perf_counter() - started) / EPOCHS


def main(path: str) -> None:
    requests = json.loads(open(path).read())
    spaces: dict[str, dict] = {}
    tables: dict[str, dict] = {}
    out = []
    for request in requests:
        space = spaces.setdefault(request["space"], json.loads(open(request["space"]).read()))
        data = tables.setdefault(request["rows"], dict(np.load(request["rows"])))
        keras.backend.clear_session()
        out.append(epoch_s(request, space, data))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
