"""Cross the categorical features of files with Apache Beam: the job behind ``beam-cross``.

In the style of Beam's examples: ``run(argv)`` parses its own flags with ``parse_known_args`` and
hands the rest to ``PipelineOptions``, so every runner flag works::

    python pipelines/cross_features.py --input 'logs/*.csv' --cross country,hour:1000 --output out \\
        --runner DataflowRunner --project my-project --region us-central1 \\
        --temp_location gs://my-bucket/tmp --setup_file ./setup.py

The pipeline itself lives in the package (``beam_cross.job.build_pipeline``; the branch-free
``beam_cross.linear_job`` on DaskRunner) so that the installed ``beam-cross`` command runs the same
code: ReadRows -> CrossFeatures(...).with_exception_handling() -> sharded writes of the crossed and
rejected rows -> CrossStatsFn -> collision report. After the run, the rows written are counted
against the rows read.
"""

from __future__ import annotations

import logging
import sys

from beam_cross.job import run as run_job


def run(argv=None):
    """Runs the job; returns its :class:`beam_cross.job.Summary` (raises ``RowsLost`` on lost rows)."""
    summary = run_job(argv)
    print(summary.text())
    return summary


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    from beam_cross.cli import main

    sys.exit(main(sys.argv[1:]))
