"""The tf.Transform job on the inputs of ``beam-cross``: analyze and transform, write the transformed
tf.Examples and the transform_fn, then serve the written transform_fn on a sample of raw rows and check
that it reproduces the written ids.

Same input flags as ``beam-cross`` (``--input``, ``--input_format``, ``--schema``, ``--cross``,
``--config``, ``--output``; CSV, JSON Lines, Parquet or TFRecord; no arguments: the bundled sample);
other flags go to Beam::

    python pipelines/tft_transform.py --input data/ --cross country,hour:1000 --output tft-out

The ``preprocessing_fn`` is ``beam_cross.tft.make_preprocessing_fn(crosses, passthrough=features)``
(ids bit for bit those of ``beam_cross.hashed_cross`` and Keras ``HashedCrossing``). A feature that is
a list in any sampled row is a ``VarLenFeature``, any other a ``FixedLenFeature([])``, of ``tf.string``
or ``tf.int64``. Rows ``beam-cross`` would reject (a missing value, a float, a value of the other kind)
go to ``<output>/rejected/`` with their reason, so tf.Transform only sees valid rows. Writes:
``<output>/transform_fn/``, ``<output>/transformed_metadata/``, ``<output>/transformed_examples-*``.
"""

from __future__ import annotations

import atexit
import glob
import json
import logging
import os
import re
import sys
import tempfile
import threading
import types

# TensorFlow 2.21's C++ lines (CPU features, CUDA probing, "All log messages before
# absl::InitializeLog()...", dataset defaults) ignore TF_CPP_MIN_LOG_LEVEL and say nothing a user of this
# job needs. Run as a script, the job passes its stderr through a filter that drops exactly those.
_TF_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] "
    rb"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$)"
)


def filter_tensorflow_noise():
    """Routes file descriptor 2 (C++ and Python stderr) through a thread that drops TensorFlow's start-up
    lines and passes every other line on as it comes; at exit the rest is flushed."""
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not _TF_NOISE.match(line):
                    os.write(real_stderr, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def restore():  # runs after an uncaught exception's traceback is written
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the pump reads to its end
        thread.join(timeout=10)

    atexit.register(restore)


if __name__ == "__main__":
    filter_tensorflow_noise()

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from beam_cross import tft as beam_cross_tft
from beam_cross.beam.elements import ElementCrosser
from beam_cross.job import io, writers
from beam_cross.job.flags import build_parser, crosses_of
from beam_cross.job.sources import METRICS_NAMESPACE, REJECTED, ROWS, ReadRows, rejection

SERVING_SAMPLE = 200
# Counted by the workers as they write, so the job checks rows in = rows out + rows rejected without
# reading its input or its output again.
READ_COUNTER, TRANSFORMED_COUNTER, REJECTED_COUNTER = "rows_read", "tft_rows_transformed", "tft_rows_rejected"
_log = logging.getLogger("beam_cross")


def _counted(name, value):
    Metrics.counter(METRICS_NAMESPACE, name).inc()
    return value


def _counter(result, name) -> int:
    counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))["counters"]
    return sum(c.committed for c in counters)


def plan(known):
    """Input files, format, column types (dict) and crosses from the ``beam-cross`` flags."""
    crosses, _ = crosses_of(known)
    files = io.expand_input(known.input)
    fmt = known.input_format or io.format_of(files[0])
    inferred, _ = io.sample_schema(files[0], fmt)
    schema = {**inferred, **io.parse_schema(known.schema)}
    return types.SimpleNamespace(files=files, input_format=fmt, schema=schema, crosses=crosses,
                                 output=os.path.abspath(known.output))


def cross_outcomes(crosser, batch):
    """``(True, crossed row)`` or ``(False, Rejected)`` per row of ``batch``, in order."""
    crossed, rejected = crosser.cross_elements(batch)
    for position, row in enumerate(crossed):
        yield (False, rejected[position]) if position in rejected else (True, row)


def feature_spec(files, fmt, schema, crosses, sample_rows=10_000):
    """tf.Example feature spec of the crossed features, from the values of a sample of rows."""
    features = list(dict.fromkeys(f for c in crosses for f in c.features))
    rows = [r for _, r in zip(range(sample_rows), io.read_file(files[0], fmt, schema)) if isinstance(r, dict)]
    spec = {}
    for feature in features:
        values = [row.get(feature) for row in rows]
        is_list = any(isinstance(v, list) for v in values) or schema.get(feature, "").endswith("_list")
        flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
        kinds = {"string" if isinstance(x, (str, bytes)) else "int" for x in flat
                 if isinstance(x, (str, bytes)) or (isinstance(x, int) and not isinstance(x, bool))}
        if len(kinds) != 1:
            raise ValueError(
                f"Feature `{feature}` must hold strings or integers (one kind) to be a tf.Example feature. "
                f"Received kinds {sorted(kinds)} in {len(rows)} sampled rows of {files[0]}"
            )
        dtype = tf.string if kinds == {"string"} else tf.int64
        spec[feature] = tf.io.VarLenFeature(dtype) if is_list else tf.io.FixedLenFeature([], dtype)
    return spec


def _kind(spec_entry) -> str:
    return "string" if spec_entry.dtype == tf.string else "int"


def split_valid(rows, crosses, spec):
    """``("valid", instance dict)`` for rows tf.Transform can take, ``("rejected", record)`` for the rest."""
    crosser = ElementCrosser(crosses, keep_inputs=True, feature_types={f: _kind(s) for f, s in spec.items()})

    def split(batch):
        for row, (ok, outcome) in zip(batch, cross_outcomes(crosser, batch)):
            if not ok:
                yield "rejected", rejection(outcome.reason, outcome.message, outcome.element,
                                            feature=outcome.feature, cross=outcome.cross)
                continue
            bad = [f for f, s in spec.items() if isinstance(s, tf.io.FixedLenFeature) and isinstance(row[f], list)]
            if bad:
                yield "rejected", rejection("shape", f"Feature `{bad[0]}` is single-valued in the feature spec; "
                                            f"Received: value={row[bad[0]]!r}", row, feature=bad[0])
                continue
            yield "valid", {f: (row[f] if isinstance(s, tf.io.FixedLenFeature) or isinstance(row[f], list)
                                else [row[f]]) for f, s in spec.items()}

    tagged = rows | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=4096) | "Check" >> beam.FlatMap(split)
    return (
        tagged | "Valid" >> beam.FlatMap(lambda t: [t[1]] if t[0] == "valid" else []),
        tagged | "Rejected" >> beam.FlatMap(lambda t: [t[1]] if t[0] == "rejected" else []),
    )


def build_pipeline(pipeline, job, spec, temp_dir):
    read = pipeline | "Read" >> ReadRows(job.files, job.input_format, job.schema)
    valid, rejected = split_valid(read[ROWS], job.crosses, spec)
    all_rejected = (read[REJECTED], rejected) | "AllRejected" >> beam.Flatten()
    _ = (
        all_rejected
        | "RejectedAsJson" >> beam.Map(lambda record: _counted(REJECTED_COUNTER, json.dumps(record, default=writers.json_default)))
        | "WriteRejected" >> beam.io.WriteToText(os.path.join(job.output, "rejected", "part"), file_name_suffix=".jsonl")
    )
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    preprocessing_fn = beam_cross_tft.make_preprocessing_fn(job.crosses, passthrough=list(spec))
    with tft_beam.Context(temp_dir=temp_dir):
        (transformed, transformed_metadata), transform_fn = (
            (valid, metadata) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(job.output)
        coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
        _ = (
            transformed
            | "Encode" >> beam.Map(lambda row: _counted(TRANSFORMED_COUNTER, coder.encode(row)))
            | "WriteExamples" >> beam.io.WriteToTFRecord(
                os.path.join(job.output, "transformed_examples"), file_name_suffix=".tfrecord")
        )


def check_serving(output, spec, crosses, sample=SERVING_SAMPLE):
    """Serves the written transform_fn on raw rows read back from the written examples (their passthrough
    features) and compares with the ids written next to them. Returns the number of rows compared."""
    tft_output = tft.TFTransformOutput(output)
    files = sorted(glob.glob(os.path.join(output, "transformed_examples-*")))
    written = tf.io.parse_example(
        next(iter(tf.data.TFRecordDataset(files).batch(sample))), tft_output.transformed_feature_spec()
    )
    raw = {name: written[name] for name in spec}  # the raw features, passed through unchanged
    served = tft_output.transform_features_layer()(raw)
    for cross in crosses:
        expected, got = written[cross.name], served[cross.name]
        if isinstance(expected, tf.SparseTensor):
            expected, got = tf.RaggedTensor.from_sparse(expected).to_list(), _as_lists(got)
        else:
            expected, got = np.asarray(expected).tolist(), np.asarray(got).reshape(-1).tolist()
        if expected != got:
            raise AssertionError(f"Serving the transform_fn does not reproduce the written ids of cross `{cross.name}`")
    return len(_as_lists(written[crosses[0].name]))


def _as_lists(value):
    if isinstance(value, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(value).to_list()
    if isinstance(value, tf.RaggedTensor):
        return value.to_list()
    return np.asarray(value).tolist()


def run(argv=None):
    """Runs the job and the serving check; returns ``(rows served and matched, output directory)``."""
    known, beam_args = build_parser().parse_known_args(argv)
    if known.output is None:
        known.output = os.path.join(os.getcwd(), "beam-cross-tft-output")
    job = plan(known)
    spec = feature_spec(job.files, job.input_format, job.schema, job.crosses)
    options = PipelineOptions(beam_args or ["--runner=FnApiRunner"])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, job, spec, tempfile.mkdtemp(prefix="beam_cross_tft_"))
    result = pipeline.run()
    result.wait_until_finish()
    read, transformed, rejected = (_counter(result, name) for name in (READ_COUNTER, TRANSFORMED_COUNTER, REJECTED_COUNTER))
    if read != transformed + rejected:
        raise RuntimeError(f"{read - transformed - rejected} rows unaccounted for: read {read}, "
                           f"transformed {transformed}, rejected {rejected}")
    matched = check_serving(job.output, spec, job.crosses)
    print(f"tft_transform: read {read} rows: {transformed} transformed, {rejected} rejected ({job.output}/rejected).")
    print(f"tft_transform: wrote {job.output}/transform_fn and {job.output}/transformed_examples-*; serving the "
          f"written transform_fn on {matched} raw rows reproduces the written ids of "
          f"{', '.join(c.name for c in job.crosses)}.")
    return matched, job.output


def quiet_logging():
    """Warnings and errors only, and beam_cross's own progress: no TensorFlow, tf.Transform or Beam INFO lines
    (BatchElements statistics, schema inference, optional-module probing, asset writes)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("beam_cross").setLevel(logging.INFO)
    for noisy in ("tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # tf.Transform warns that instance dicts are slower than RecordBatches: the job's choice, not the user's.
    logging.getLogger().addFilter(lambda record: "will not provide optimal performance" not in record.getMessage())


if __name__ == "__main__":
    quiet_logging()
    run(sys.argv[1:])
