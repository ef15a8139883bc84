"""Cross the categorical features of files with Apache Beam: the job behind ``beam-cross``.

In the style of Beam's examples: ``run(argv)`` parses its own flags with ``parse_known_args`` and
hands the rest to ``PipelineOptions``, so every runner flag works::

    python pipelines/cross_features.py --input 'logs/*.csv' --cross country,hour:1000 --output out \\
        --runner DataflowRunner --project my-project --region us-central1 \\
        --temp_location gs://my-bucket/tmp --setup_file ./setup.py

The pipeline itself lives in the package (``beam_cross.job.pipeline.build_pipeline``, one straight line
for every runner) so that the installed ``beam-cross`` command runs the same code: ReadChunks ->
cross each chunk's RecordBatch and write crossed and rejected rows per bundle -> combine the small
per-chunk outcomes (files, rows written, reasons, collision statistics). After the run the writers'
counts are checked against the rows read, and the output is committed with its manifest.
"""

from __future__ import annotations

import logging
import sys

from beam_cross.job.run import run as run_job


def run(argv=None):
    """Runs the job; returns its :class:`beam_cross.job.run.Summary` (raises ``RowsLost`` on lost rows)."""
    summary = run_job(argv)
    print(summary.text())
    return summary


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    from beam_cross.job.cli import main

    sys.exit(main(sys.argv[1:]))
