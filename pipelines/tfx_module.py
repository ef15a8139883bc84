"""A TFX Transform ``module_file`` that crosses features with beam_cross, and a runner that does what
TFX's Transform executor does with it.

In TFX::

    Transform(examples=..., schema=..., module_file="pipelines/tfx_module.py",
              custom_config={"crosses": [...], "defaults": {...}, "passthrough": [...]})

TFX calls ``preprocessing_fn(inputs, custom_config)``. Features that are not present in every
example (per the schema) arrive as ``SparseTensor`` s. Missing values are handled explicitly:

- ``device`` is single-valued but optional: ``DEFAULTS`` fills a missing value with ``"unknown"``;
- ``tags`` is multivalent: an example without tags gets no ``tags_X_country`` id (an empty list),
  and it still comes out, with its other features;
- ``country``, ``hour`` and ``label`` are required (``FixedLenFeature``): parsing fails without them.

A cross may transform a feature first (``country_X_hour_bucketized`` crosses the bucket of ``hour``,
a ``Bucketize``): the transform is part of the ``Cross`` and so of ``custom_config``, and the
transform graph applies it, in training and at serving alike.

``custom_config`` (all keys optional) overrides the defaults below: ``crosses`` (a list of
``Cross.to_dict()``), ``defaults``, ``passthrough``, ``collision_stats`` (bool),
``target_collision_share``; and ``split``, a list of string features that hold whitespace-separated
values (CSV, and so CsvExampleGen, has no lists): each becomes multivalent (see
:func:`split_values`) before crossing.

Without TFX, ``run(argv)`` reads tf.Examples with TFXIO (``tfx_bsl.public.tfxio.TFExampleRecord``),
runs ``tft_beam.AnalyzeAndTransformDataset`` and ``WriteTransformFn``, and writes the transformed
examples, as the Transform executor does::

    python pipelines/tfx_module.py --examples 'data/*.tfrecord' --output_dir out/
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

from beam_cross import Bucketize, Cross
from beam_cross import tft as beam_cross_tft

RAW_FEATURE_SPEC = {
    "country": tf.io.FixedLenFeature([], tf.string),
    "hour": tf.io.FixedLenFeature([], tf.int64),
    "device": tf.io.VarLenFeature(tf.string),  # optional, single-valued
    "tags": tf.io.VarLenFeature(tf.string),  # optional, multivalent
    "label": tf.io.FixedLenFeature([], tf.int64),
}
CROSSES = [
    Cross(["country", "hour"], num_bins=1000),
    Cross(["device", "hour"], num_bins=100),
    Cross(["tags", "country"], num_bins=500),
    # The hour's bucket (night, morning, afternoon, evening) by country, as the wide part of a wide & deep
    # model: crossed_column([bucketized_column(hour, [6, 12, 18]), "country"]) and TF's name for it.
    Cross([Bucketize("hour", [6, 12, 18]), "country"], num_bins=100, name="country_X_hour_bucketized"),
]
DEFAULTS = {"device": "unknown"}
PASSTHROUGH = ["label"]
TRANSFORMED_EXAMPLES_PREFIX = "transformed_examples"


def raw_schema():
    """The schema a TFX SchemaGen would give these features (VarLen for the optional ones)."""
    return schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC)


def split_values(value):
    """A string feature of whitespace-separated values as a multivalent ``SparseTensor`` (batch, values).

    A row's values (a dense value, or a VarLen feature's values) are joined with a space, then split
    on whitespace: ``"cooking travel"`` and ``["cooking", "travel"]`` both give two values; a missing,
    empty or blank row gives none.
    """
    if not isinstance(value, (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)) or value.dtype != tf.string:
        raise TypeError(f"A split feature must be a string tensor. Received: {value!r}")
    if isinstance(value, tf.SparseTensor):
        value = tf.RaggedTensor.from_sparse(value)
    elif isinstance(value, tf.Tensor):
        value = tf.RaggedTensor.from_tensor(tf.reshape(value, [-1, 1]))
    return tf.strings.split(tf.strings.reduce_join(value, axis=1, separator=" ")).to_sparse()


def preprocessing_fn(inputs, custom_config=None):
    """TFX's entry point: ``inputs`` maps feature names to (Sparse)Tensors of a batch."""
    config = dict(custom_config or {})
    split = config.get("split", [])
    if isinstance(split, str) or not all(isinstance(f, str) for f in split):
        raise TypeError(f"`split` must be a list of feature names. Received: split={split!r}")
    missing = sorted(set(split) - set(inputs))
    if missing:
        raise KeyError(f"Features {missing} are to be split, but missing from the inputs {sorted(inputs)}")
    inputs = {**inputs, **{f: split_values(inputs[f]) for f in split}}
    crosses = [Cross.from_dict(c) for c in config["crosses"]] if "crosses" in config else CROSSES
    build = functools.partial(
        beam_cross_tft.make_preprocessing_fn,
        crosses,
        config.get("passthrough", PASSTHROUGH),
        defaults=config.get("defaults", DEFAULTS),
        collision_stats=bool(config.get("collision_stats", True)),
    )
    if "target_collision_share" in config:
        build = functools.partial(build, target_collision_share=config["target_collision_share"])
    return build()(inputs)


def write_examples(rows, path, feature_spec=None):
    """Writes dict rows as serialized tf.Examples (a missing or ``None`` value is left out)."""
    feature_spec = feature_spec or RAW_FEATURE_SPEC
    with tf.io.TFRecordWriter(path) as writer:
        for row in rows:
            features = {}
            for name, spec in feature_spec.items():
                value = row.get(name)
                if value is None:
                    continue
                values = list(value) if isinstance(value, (list, tuple)) else [value]
                if spec.dtype == tf.string:
                    encoded = [v.encode() if isinstance(v, str) else v for v in values]
                    features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))
                elif spec.dtype.is_floating:
                    features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                else:
                    features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def transform_examples(pipeline, examples, output_dir, *, custom_config=None, schema=None, temp_dir=None):
    """The Transform executor's steps on ``pipeline``: TFXIO -> AnalyzeAndTransformDataset ->
    WriteTransformFn (to ``output_dir``, with the raw schema in ``output_dir/metadata``), plus the transformed tf.Examples
    (``output_dir/transformed_examples-*.tfrecord``). Returns the transformed-examples write result.
    """
    schema = schema or raw_schema()
    source = tfxio.TFExampleRecord(file_pattern=examples, telemetry_descriptors=["beam_cross"], schema=schema)
    fn = functools.partial(preprocessing_fn, custom_config=custom_config)
    with tft_beam.Context(temp_dir=temp_dir or tempfile.mkdtemp(prefix="beam_cross_tft_")):
        raw = pipeline | "ReadExamples" >> source.BeamSource()
        (transformed, metadata), transform_fn = (
            (raw, source.TensorAdapterConfig()) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(fn)
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output_dir)
        # The raw schema too, as TFX does: TFTransformOutput.raw_feature_spec() reads it at serving.
        _ = tft.DatasetMetadata(schema) | "WriteRawMetadata" >> tft_beam.WriteMetadata(
            os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR), pipeline
        )
        coder = tft.coders.ExampleProtoCoder(metadata.schema)
        return (
            transformed
            | "Encode" >> beam.Map(coder.encode)
            | "WriteExamples" >> beam.io.WriteToTFRecord(
                os.path.join(output_dir, TRANSFORMED_EXAMPLES_PREFIX), file_name_suffix=".tfrecord"
            )
        )


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", required=True, help="file pattern of TFRecord files of tf.Examples")
    parser.add_argument("--output_dir", required=True, help="where the transform_fn and examples go")
    args, beam_args = parser.parse_known_args(argv)
    options = PipelineOptions(beam_args or ["--runner=FnApiRunner"])
    with beam.Pipeline(options=options) as pipeline:
        transform_examples(pipeline, args.examples, args.output_dir)
    return args.output_dir


if __name__ == "__main__":
    run(sys.argv[1:])
