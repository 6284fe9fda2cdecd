"""TensorFlow's import, without the notices its C++ side prints on every CPU machine.

Importing TensorFlow writes straight to file descriptor 2, before its logging is set up,
so TF_CPP_MIN_LOG_LEVEL (app.logs) cannot hold them back: absl's "All log messages before
absl::InitializeLog() is called are written to STDERR", then "oneDNN custom operations are
on", "Could not find cuda drivers on your machine" and the CPU-instructions advice. Each
search and prediction process would print them into the service's log. Here the import
runs with descriptor 2 read through a pipe: those lines are dropped, any other line is
passed on as it was written.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# What a CPU machine prints on every import, and nothing else: a real error still shows.
NOTICES = re.compile(
    rb"All log messages before absl::InitializeLog\(\) is called"
    rb"|\] oneDNN custom operations are on"
    rb"|\] Could not find cuda drivers on your machine"
    rb"|cuda_(?:dnn|fft|blas)\.cc:\d+\] Unable to register"
    rb"|\] This TensorFlow binary is optimized to use available CPU instructions"
    rb"|^To enable the following instructions: .* rebuild TensorFlow"
)


def import_tensorflow() -> None:
    """Import TensorFlow and Keras (the import is the whole point; the names stay unused)."""
    with _without_notices():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextmanager
def _without_notices() -> Iterator[None]:
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    passed = threading.Thread(target=_pass_on, args=(read_end, saved), daemon=True)
    passed.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(saved, 2)  # the pipe's last writer gone: the thread reads to its end
        passed.join(timeout=5)
        os.close(saved)


def _pass_on(read_end: int, out: int) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not NOTICES.search(line):
                os.write(out, line)
