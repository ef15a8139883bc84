"""The errors of ``beam-cross``, each with its exit status: every refusal and failure has one home here.

========  =====================================================================================
status    meaning
========  =====================================================================================
0         done: every planned byte read once, every row read crossed or rejected, committed
2         refused before running (a flag, the input, a config, the output, a run already writing)
3         not accounted for: a planned file changed, was not read whole or was read twice, a
          damaged file could not be read on, or rows read != rows crossed + rows rejected
4         too many rows rejected (``--max_rejected_share``)
5         a filesystem or the pipeline failed (no space, no permission, a worker error)
========  =====================================================================================

With any status but 0 nothing is committed and the previous output is left as it was.
"""

from __future__ import annotations

EXIT_DONE = 0
EXIT_REFUSED = 2
EXIT_NOT_ACCOUNTED = 3
EXIT_TOO_MANY_REJECTED = 4
EXIT_FAILED = 5


class JobError(Exception):
    """A ``beam-cross`` run that cannot go on; ``exit_status`` is the command's status for it."""

    exit_status = EXIT_FAILED


class PlanError(JobError, ValueError):
    """The command line cannot give a correct run; nothing has run (exit status 2)."""

    exit_status = EXIT_REFUSED


class InputError(PlanError):
    """The input as a whole cannot be read (no files, an empty file, a missing column...)."""


class OutputBusy(PlanError):
    """Another live run is writing the same ``--output``."""


class RowsLost(JobError, RuntimeError):
    """Rows read != rows written (crossed + rejected), or the input was not read exactly once: nothing was committed."""

    exit_status = EXIT_NOT_ACCOUNTED


class TooManyRejected(JobError, RuntimeError):
    """The run rejected more rows than ``--max_rejected_share`` allows (or all of them): nothing was committed."""

    exit_status = EXIT_TOO_MANY_REJECTED


class JobFailed(JobError, RuntimeError):
    """A filesystem or the pipeline failed; nothing was committed (exit status 5)."""

    exit_status = EXIT_FAILED


class ReadError(OSError):
    """A file that cannot be read on: damaged, cut short, changed or gone (raised on workers, reported
    in the run's coverage, never a short read)."""
