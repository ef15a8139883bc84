"""The ``beam-cross`` command (also ``python -m beam_cross``): cross the features of files with Beam.

    beam-cross                                   # the bundled sample; writes ./beam-cross-output
    beam-cross --input 'logs/*.csv' --cross country,hour:1000 --cross device,site:64 --output out
    beam-cross --input data/ --config crosses.yaml --output_format parquet --runner DataflowRunner ...

Flags this command does not know are handed to Beam's ``PipelineOptions``, so every runner flag
works; a flag neither knows is refused. The job reads the input, adds one column per cross, writes
the crossed rows (in the input's format unless ``--output_format`` says otherwise), writes every row
it could not cross or read to ``rejected/`` as JSON Lines with its reason, writes a collision report
(JSON + PNG) and commits it all with a manifest (``_MANIFEST.json``).

Exit status: 0 done; 2 refused before running (bad flag, input, config or output); 3 rows read !=
rows crossed + rows rejected (nothing committed); 4 too many rows rejected (nothing committed).
"""

from __future__ import annotations

import logging
import sys


def _not_bigquery_notice(record: logging.LogRecord) -> bool:
    # Without Beam's `gcp` extra, importing Beam's IO logs on the root logger that the BigQuery client
    # libraries are missing; this command never uses BigQuery. Dropped before the imports below.
    return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_not_bigquery_notice)

from beam_cross.job import io  # noqa: E402
from beam_cross.job.run import RowsLost, TooManyRejected, run  # noqa: E402

EXIT_INPUT_ERROR = 2
EXIT_ROWS_LOST = 3
EXIT_TOO_MANY_REJECTED = 4


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    # force: a library that logged on the root logger before (Beam does, while importing) has already
    # given it a default handler, which would keep the progress lines below WARNING off the terminal.
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    for noisy in ("apache_beam", "distributed", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        summary = run(argv)
    except (io.InputError, ValueError, TypeError, FileNotFoundError, IsADirectoryError) as error:
        print(f"beam-cross: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except RowsLost as error:
        print(f"beam-cross: error: {error}", file=sys.stderr)
        return EXIT_ROWS_LOST
    except TooManyRejected as error:
        print(f"beam-cross: error: {error}", file=sys.stderr)
        return EXIT_TOO_MANY_REJECTED
    print(summary.text())
    return 0
