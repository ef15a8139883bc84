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
import types

from beam_cross.core.stderr_lines import lines_dropped  # no framework: loaded before TensorFlow

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
    """Routes file descriptor 2 (C++ and Python stderr) through beam_cross's line filter
    (:func:`beam_cross.core.stderr_lines.lines_dropped`) until the process exits: TensorFlow's start-up
    lines are dropped, every other line goes through as it comes; at exit the rest is flushed (after an
    uncaught exception's traceback is written)."""
    block = lines_dropped(_TF_NOISE.match)
    block.__enter__()
    atexit.register(block.__exit__, None, None, None)


if __name__ == "__main__":
    filter_tensorflow_noise()

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from beam_cross import tft as beam_cross_tft
from beam_cross.beam.counters import ROWS_CROSSED, ROWS_READ, ROWS_REJECTED, RowCounters, counted
from beam_cross.core.arrow_values import column_kind, is_list_type
from beam_cross.core.elements import ElementCrosser
from beam_cross.job.flags import build_parser, crosses_of
from beam_cross.job.pipeline import cross_chunk
from beam_cross.job.plan import plan_source
from beam_cross.job.readers import ReadChunks
from beam_cross.job.rejections import json_default

SERVING_SAMPLE = 200
_log = logging.getLogger("beam_cross")


def _written(counters, value, record=None):
    """``value``, counted as it is written: a rejected row under its record's reason, else a transformed
    row (``rows_crossed``). Counted by the workers as they write, so the job checks rows in = rows out +
    rows rejected without reading its input or its output again."""
    if record is None:
        counters.add(crossed=1)
    else:
        counters.add(rejected={record["reason"]: 1})
    return value


def plan(known):
    """Input files, format, Arrow schema, crosses and declared kinds from the ``beam-cross`` flags, planned
    as ``beam-cross`` plans them (:func:`beam_cross.job.plan.plan_source`)."""
    crosses, notes = crosses_of(known)
    crosses, source, feature_types = plan_source(known, crosses, notes)
    return types.SimpleNamespace(files=list(source.files), input_format=source.format, schema=source.schema,
                                 crosses=crosses, feature_types=feature_types, output=os.path.abspath(known.output))


def feature_spec(schema: pa.Schema, crosses) -> dict:
    """tf.Example feature spec of the crossed features, from the input's Arrow schema: a list column is a
    ``VarLenFeature``, any other a ``FixedLenFeature([])``, of ``tf.string`` or ``tf.int64``."""
    spec = {}
    for feature in dict.fromkeys(f for c in crosses for f in c.features):
        kind = schema.field(feature).type
        dtype = {"int": tf.int64, "string": tf.string, "float": tf.float32}.get(column_kind(kind))
        if dtype is None:
            raise ValueError(f"Feature `{feature}` must hold strings, integers or floats to be a tf.Example feature. "
                             f"Received: Arrow type {kind}")
        spec[feature] = tf.io.VarLenFeature(dtype) if is_list_type(kind) else tf.io.FixedLenFeature([], dtype)
    return spec


class _SplitChunk(beam.DoFn):
    """A chunk of input rows -> ``("valid", instance dict)`` for the rows tf.Transform can take (what
    ``beam-cross`` would cross), ``("rejected", record)`` for the others, with their reason and ``file:line``."""

    def __init__(self, crosses, feature_types, features):
        self._crosses, self._feature_types, self._features = crosses, feature_types, features
        self._counters = RowCounters()

    def setup(self):
        self._crosser = ElementCrosser(self._crosses, keep_inputs=True, feature_types=self._feature_types)

    def process(self, chunk):
        self._counters.add(read=chunk.rows_read)
        crossed, records = cross_chunk(self._crosser, chunk)
        for record in (*chunk.rejected, *records):
            yield "rejected", record
        if crossed is not None:
            for row in crossed.select(self._features).to_pylist():
                yield "valid", row


def build_pipeline(pipeline, job, spec, temp_dir):
    tagged = (
        pipeline
        | "Read" >> ReadChunks(job.files, job.input_format, job.schema)
        | "Split" >> beam.ParDo(_SplitChunk(job.crosses, job.feature_types, list(spec)))
    )
    # Two FlatMaps rather than a multi-output ParDo: Beam's DaskRunner (2.77, 2.78) mis-routes those.
    valid = tagged | "Valid" >> beam.FlatMap(lambda t: [t[1]] if t[0] == "valid" else [])
    rejected = tagged | "Rejected" >> beam.FlatMap(lambda t: [t[1]] if t[0] == "rejected" else [])
    counters = RowCounters()
    _ = (
        rejected
        | "RejectedAsJson" >> beam.Map(lambda record: _written(counters, json.dumps(record, default=json_default), record))
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
            | "Encode" >> beam.Map(lambda row: _written(counters, coder.encode(row)))
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
    spec = feature_spec(job.schema, job.crosses)
    options = PipelineOptions(beam_args or ["--runner=FnApiRunner"])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, job, spec, tempfile.mkdtemp(prefix="beam_cross_tft_"))
    result = pipeline.run()
    result.wait_until_finish()
    read, transformed, rejected = (counted(result, name) or 0 for name in (ROWS_READ, ROWS_CROSSED, ROWS_REJECTED))
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
