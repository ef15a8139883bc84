"""Lines Beam prints that a user of beam_cross cannot act on, each dropped as exactly the record it is
(no framework is imported here: the filters match log records and warnings by their text).

:func:`drop_beam_notices` (run when :mod:`beam_cross.beam` or :mod:`beam_cross.tft` is imported, the front
doors that load Beam) adds to the logging tree and to the warnings filters, once per process, filters that each match one message and nothing else:

- without Beam's ``gcp`` extra, importing Beam logs on the root logger "apitools not found, and bigquery
  client libraries are not available despite the import not raising an ImportError." (beam_cross never
  uses BigQuery; dropped only when beam_cross is imported before Beam, else it is already printed);
- each ``MLTransform`` applied logs, on the root logger, that its own output type hint (a ``Union`` of
  MLTransform's output types) "will be ignored and not used for type-checking purposes";
- jsonpickle 4 warns "keys will default to True in jsonpickle 5.0.0" (``DeprecationWarning``) each time
  ``MLTransform`` writes or reads its attributes file (``apache_beam.ml.transforms.base``);
- a transform applied to a list (``rows | CrossFeatures(...)`` without a pipeline; tf.Transform's
  in-memory ``(data, metadata) | AnalyzeAndTransformDataset(...)``) runs in a pipeline that Beam makes
  with ``PipelineOptions(sys.argv)``, whose first item is the script's own path: Beam warns "Unparseable
  argument: example.py" and "Discarding unparseable args: ['example.py']" (only that path alone is
  dropped; an unknown flag of the user's still shows, with the path);
- the multi-process DirectRunner forwards, once per worker, the worker's "No semi_persistent_directory
  found" warning and its "Discarding unparseable args" warning about the runner's own two flags
  (``--direct_runner_use_stacked_bundle``, ``--pipeline_type_check``).

Nothing is reconfigured: no level, handler or format changes, and every other record (a warning
about a flag of the user's, another type hint) goes through as before. Without the ``gcp`` extra, the
workers of the multi-process DirectRunner import Beam before any beam_cross code runs in them, so
their own copy of the apitools line (and the INFO lines of their start, which Beam then prints) cannot
be dropped from a library.

>>> record = logging.LogRecord("root", logging.WARNING, __file__, 1, "apitools not found, and bigquery "
...                            "client libraries are not available despite the import not raising an ImportError.", None, None)
>>> _not_a_beam_notice(record), _not_a_beam_notice(logging.LogRecord("root", logging.WARNING, __file__, 1, "x", None, None))
(False, True)
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

_ROOT_NOTICES = re.compile(
    r"apitools not found, and bigquery client libraries are not available"
    r"|This output type hint will be ignored and not used for type-checking purposes\. .* Got: "
    r"Union\[Tuple\[apache_beam\.pvalue\.PCollection\[~MLTransformOutputT\], .* instead\.$"
)
_WORKER_NOTICES = re.compile(
    r"^Worker: .* message: \"(No semi_persistent_directory found: "
    r"|Discarding unparseable args: \[(\\?'--(direct_runner_use_stacked_bundle|pipeline_type_check)\\?'(, )?)+\]\")"
)
_JOB_SERVICE_LOGGER = "apache_beam.runners.portability.local_job_service"
_OPTIONS_LOGGER = "apache_beam.options.pipeline_options"


def _not_a_beam_notice(record: logging.LogRecord) -> bool:
    return not (record.name == "root" and _ROOT_NOTICES.match(record.getMessage()))


def _not_a_worker_notice(record: logging.LogRecord) -> bool:
    return not _WORKER_NOTICES.match(record.getMessage())


def _not_the_script_path(record: logging.LogRecord) -> bool:
    """False for Beam's warning that the script's own path (``sys.argv[0]``) is no pipeline option."""
    script = sys.argv[0] if sys.argv else ""
    return not (script and record.getMessage() in (f"Unparseable argument: {script}",
                                                   f"Discarding unparseable args: {[script]}"))


def drop_beam_notices() -> None:
    """Adds the filters above (a second call adds nothing)."""
    logging.getLogger().addFilter(_not_a_beam_notice)  # a logger holds a filter once
    logging.getLogger(_JOB_SERVICE_LOGGER).addFilter(_not_a_worker_notice)
    logging.getLogger(_OPTIONS_LOGGER).addFilter(_not_the_script_path)
    # warnings.filterwarnings moves an equal filter to the front instead of adding it twice.
    warnings.filterwarnings("ignore", message=r"keys will default to True in jsonpickle 5\.0\.0",
                            category=DeprecationWarning, module=r"apache_beam\.ml\.transforms\.base$")
