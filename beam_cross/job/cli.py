"""The ``beam-cross`` command (also ``python -m beam_cross``): cross the features of files with Beam.

    beam-cross                                   # the bundled sample; writes ./beam-cross-output
    beam-cross --input 'logs/*.csv' --cross country,hour:1000 --cross device,site:64 --output out
    beam-cross --input data/ --config crosses.yaml --output_format parquet --runner DataflowRunner ...

Flags this command does not know are handed to Beam's ``PipelineOptions``, so every runner flag
works; a flag neither knows is refused. The job reads the input, adds one column per cross, writes
the crossed rows (in the input's format unless ``--output_format`` says otherwise), writes every row
it could not cross or read to ``rejected/`` as JSON Lines with its reason, writes a collision report
(JSON + PNG) and commits it all with a manifest (``_MANIFEST.json``).

Exit status (:mod:`beam_cross.job.errors`): 0 done; 2 refused before running (a bad flag, input,
config or output, or another run writing the output); 3 not accounted for (a planned file changed,
not read whole or read twice, a damaged file, or rows read != rows crossed + rows rejected); 4 too
many rows rejected; 5 a filesystem or the pipeline failed. With any status but 0 nothing is
committed. A failure prints one short message; the traceback goes to a log file it names (and to
the terminal with ``--verbose``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import traceback

# First: drops, before Beam loads, what Beam prints that the command's user cannot act on (the BigQuery
# notice of a Beam without its `gcp` extra, the multi-process runner's worker notices; beam_cross.core.beam_notices).
import beam_cross.beam  # noqa: F401
from beam_cross.core.stderr_lines import lines_dropped
from beam_cross.job.errors import EXIT_FAILED, EXIT_REFUSED, JobError
from beam_cross.job.run import failure_text, run


def _not_a_reported_failure(record: logging.LogRecord) -> bool:
    # A runner logs a worker's error with its traceback before raising it; the command reports that
    # error itself, in one line (the traceback goes to its log file, or to the terminal with --verbose).
    return not (record.name.startswith("apache_beam") and record.levelno >= logging.ERROR
                and (record.exc_info or "Traceback (most recent call last)" in record.getMessage()))


# The workers of the multi-process DirectRunner write to the command's stderr. Without Beam's `gcp` extra,
# each logs the BigQuery notice while importing Beam, which gives its root logger a handler; its start and
# stop are then printed at INFO, with two warnings about Beam's own setup. Neither says anything to act on.
_WORKER_LINES = re.compile(
    rb"^(WARNING:root:apitools not found, and bigquery client libraries are not available"
    rb"|INFO:(__main__|apache_beam\.runners\.worker\.[\w.]+):"
    rb"|WARNING:__main__:No semi_persistent_directory found: "
    rb"|WARNING:apache_beam\.options\.pipeline_options:Discarding unparseable args: "
    rb"\[('--(direct_runner_use_stacked_bundle|pipeline_type_check)'(, )?)+\]\r?$)"
)


def _runs_local_workers(argv: list[str]) -> bool:
    return any(a == "--direct_running_mode=multi_processing" or (a == "--direct_running_mode" and b == "multi_processing")
               for a, b in zip(argv, argv[1:] + [""]))


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    # force: a library that logged on the root logger before (Beam does, while importing) has already
    # given it a default handler, which would keep the progress lines below WARNING off the terminal.
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    for noisy in ("apache_beam", "distributed", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    args = list(argv if argv is not None else sys.argv[1:])
    verbose = "--verbose" in args
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_a_reported_failure)
    printed = _PrintedLines()
    for handler in logging.getLogger().handlers:
        handler.addFilter(printed)
    if threading.current_thread() is threading.main_thread():  # SIGTERM unwinds: the output lock is released
        signal.signal(signal.SIGTERM, _terminated)
    quiet_workers = lines_dropped(_WORKER_LINES.match) if _runs_local_workers(args) else contextlib.nullcontext()
    try:
        with quiet_workers:
            summary = run(argv)
    except JobError as error:
        return _fail(str(error), error.exit_status, error, verbose)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
        return _fail(str(error), EXIT_REFUSED, error, verbose)  # an argument the plan could not take
    except Exception as error:  # OSError of a filesystem (no space, no permission...), or a bug
        return _fail(failure_text(error), EXIT_FAILED, error, verbose)
    # A note of the plan (the bundled sample, a kind guessed for a column) is printed once, when the job
    # starts: before a long run (on Dataflow, before any worker starts), when a user can still stop it and
    # pass --input or --schema. The summary repeats none of them; it has the notes only known at the end.
    print(summary.text(shown=printed.lines))
    return 0


class _PrintedLines(logging.Filter):
    """Remembers the lines the command itself printed on the terminal (its logger ``beam_cross``)."""

    def __init__(self):
        super().__init__()
        self.lines = set()

    def filter(self, record):
        if record.name == "beam_cross":
            self.lines.add(record.getMessage())
        return True


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def _fail(message: str, status: int, error: BaseException, verbose: bool) -> int:
    trace = "".join(traceback.format_exception(error))
    if verbose:
        print(trace, file=sys.stderr, end="")
    elif status == EXIT_FAILED or error.__cause__ is not None:
        log = os.path.join(tempfile.gettempdir(), f"beam-cross-{os.getpid()}.log")
        try:
            with open(log, "w") as handle:
                handle.write(trace)
            message += f" (traceback in {log}; --verbose prints it)"
        except OSError:
            pass
    print(f"beam-cross: error: {message}", file=sys.stderr)
    return status
