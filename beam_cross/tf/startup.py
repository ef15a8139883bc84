"""TensorFlow's start-up lines, dropped while beam_cross imports TensorFlow (or Keras on its backend).

Importing TensorFlow 2.21 writes to file descriptor 2, from C++ and whatever ``TF_CPP_MIN_LOG_LEVEL``
says (most are written before TF reads it): "WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR" (twice), the oneDNN notice (``port.cc``), "Could not find cuda drivers on
your machine, GPU will not be used." (``cudart_stub.cc``) and the CPU-instructions notice
(``cpu_feature_guard.cc``, two lines); then, at the first op, "failed call to cuInit" on a machine with
no CUDA driver. None asks anything of a user.

:func:`start_up_lines_dropped` passes fd 2 through a filter while the ``with`` block imports, and drops
exactly those lines; every other line goes through as it comes (a real error, a line of another
thread). On a machine where TensorFlow found no CUDA driver, it also lists the GPUs inside the block
(what TF does at its first op anyway), so that the cuInit line that follows from the missing driver is
dropped too; with a driver, nothing more is done and a cuInit failure shows. Nothing is filtered when
TensorFlow was imported before (its lines are out already) or when ``TF_CPP_MIN_LOG_LEVEL=0`` asks for
every line; no environment variable is set.

>>> bool(_START_UP.match(b"I0000 00:00:1796657220.782923   20582 cudart_stub.cc:31] Could not find cuda "
...                     b"drivers on your machine, GPU will not be used.\\n"))
True
>>> bool(_START_UP.match(b"E0000 00:00:1796657223.792508   20582 some_kernel.cc:52] a real error\\n"))
False
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

from beam_cross.core.stderr_lines import lines_dropped

_START_UP = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\r?$"
    rb"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. "
    rb"|I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."
    rb"|I\d{4} [\d:.]+ +\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU "
    rb"instructions in performance-critical operations\.\r?$"
    rb"|To enable the following instructions: [\w ]+, in other operations, rebuild TensorFlow with the appropriate "
    rb"compiler flags\.\r?$)"
)
_NO_DRIVER = b"Could not find cuda drivers on your machine"
_CUINIT = re.compile(rb"^E\d{4} [\d:.]+ +\d+ cuda_(platform|driver|diagnostics)\.cc:\d+\] failed call to cuInit: ")


class _StartUpLines:
    def __init__(self):
        self.no_driver = False

    def __call__(self, line: bytes) -> bool:
        self.no_driver = self.no_driver or _NO_DRIVER in line  # written before cuInit's line, if any
        return bool(_START_UP.match(line) or (self.no_driver and _CUINIT.match(line)))


@contextlib.contextmanager
def start_up_lines_dropped():
    """Runs the block (an ``import tensorflow`` or ``import keras``) with TensorFlow's start-up lines
    dropped from fd 2; a no-op once TensorFlow is loaded."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    drop = _StartUpLines()
    with lines_dropped(drop) as pump:
        yield
        tf = sys.modules.get("tensorflow")
        if pump is not None and tf is not None and pump.catch_up() and drop.no_driver:
            with contextlib.suppress(Exception):
                tf.config.list_physical_devices("GPU")  # TF's first op would: cuInit fails now, filtered
