"""File descriptor 2 passed through a line filter for the length of a ``with`` block.

What a C++ library or a child process writes to stderr never reaches Python's ``logging`` or
``warnings``; :func:`lines_dropped` is the one way to drop such a line without dropping the others.
Each line goes through as soon as it is complete, unless ``drop(line)`` says so; at the end of the
block fd 2 is back as it was and the last lines are through. A child process started inside the block
writes through the filter for as long as it runs. No framework is imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_MARK = b"\0beam_cross: caught up\n"


class _Filter:
    def __init__(self, drop, real_stderr: int, read_end: int):
        self._drop, self._real, self._read = drop, real_stderr, read_end
        self._caught_up = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="stderr-line-filter", daemon=True)

    def _pump(self):
        with os.fdopen(self._read, "rb") as source:
            for line in source:
                if line.endswith(_MARK):  # after a line another thread left unfinished, if any
                    line = line[: -len(_MARK)]
                    self._caught_up.set()
                if line and not self._drop(line):
                    os.write(self._real, line)

    def catch_up(self, timeout: float = 10) -> bool:
        """Waits until every line written so far went through ``drop``; False after ``timeout`` s."""
        self._caught_up.clear()
        os.write(2, _MARK)
        return self._caught_up.wait(timeout)


@contextlib.contextmanager
def lines_dropped(drop):
    """Runs the block with each line written to fd 2 dropped where ``drop(line: bytes)`` is true.

    Yields an object whose ``catch_up()`` waits until the lines written so far went through ``drop``
    (or ``None`` where there is no fd 2 to filter: the block then runs unfiltered)."""
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (a GUI interpreter), or no sys.stderr
        yield None
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = _Filter(drop, real_stderr, read_end)
    pump.thread.start()
    try:
        yield pump
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(real_stderr, 2)  # the pipe's last write end here closes: the pump reads to its end
        pump.thread.join(timeout=10)
        if not pump.thread.is_alive():  # else a child still writes through it: the pump keeps its fd
            os.close(real_stderr)
