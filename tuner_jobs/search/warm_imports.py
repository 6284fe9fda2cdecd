"""Imported for its side effect by the server process that prediction processes are forked
from (app.api.predictor): TensorFlow, Keras and what a prediction uses, loaded there once,
so that each process forked from it starts without seconds of imports."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tuner_jobs.search.native_noise import import_tensorflow  # noqa: E402

import_tensorflow()

import keras  # noqa: E402, F401
import pandas  # noqa: E402, F401

import tuner_jobs.search.data  # noqa: E402, F401
import tuner_jobs.search.layers  # noqa: E402, F401
