"""The prediction child: loads best models (safe mode) and runs them on raw rows."""

from __future__ import annotations

import os
from multiprocessing.connection import Connection
from typing import Any

MODEL_CACHE_SIZE = 4


def serve(conn: Connection) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tuner_jobs.search.native_noise import import_tensorflow

    import_tensorflow()
    import keras
    import pandas as pd

    import tuner_jobs.search.layers  # noqa: F401 - registers the layer the saved models use
    from tuner_jobs.search.data import model_inputs

    cache: dict[tuple[str, float], Any] = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the API went away
            return
        try:
            key = (request["model_path"], request["mtime"])
            if key not in cache:
                if len(cache) >= MODEL_CACHE_SIZE:
                    cache.pop(next(iter(cache)))
                cache[key] = keras.saving.load_model(request["model_path"], safe_mode=True)
            # Objects, not inferred dtypes: a category column of 3 and null would become
            # floats and look the category up as "3.0". The API warns about unseen
            # categories by the same str() of each value (app.search.prediction).
            frame = pd.DataFrame(
                request["rows"], columns=[c["name"] for c in request["columns"]], dtype=object
            )
            inputs = model_inputs(request["columns"], frame)
            outputs = keras.ops.convert_to_numpy(cache[key](inputs, training=False))
            conn.send({"outputs": outputs.astype(float).tolist()})
        except Exception as exc:  # report, keep serving
            conn.send({"error": f"{type(exc).__name__}: {exc}"})
