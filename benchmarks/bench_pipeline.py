"""Pipeline throughput: ``CrossFeatures`` against Beam's floor and a tf.Transform pipeline.

All three run on the FnApiRunner in this one process, on the same rows generated inside the
pipeline (``Create(range(shards)) | FlatMap(generate)``, deterministic), with the same two crosses:

- the floor: the same pipeline with the cross replaced by the cheapest step of the same shape
  (copy each dict and add the new int fields; append one int64 list column per cross to each
  RecordBatch), i.e. what Beam itself costs;
- ``CrossFeatures``;
- tf.Transform: ``tft_beam.AnalyzeAndTransformDataset`` whose ``preprocessing_fn`` calls
  ``tf.sparse.cross_hashed`` (instance dicts + ``DatasetMetadata``; RecordBatches through a
  ``TensorAdapterConfig``, RecordBatches out).

Inputs: instance dicts, and RecordBatches in the TFXIO layout (``large_list`` columns, one value
per row). Each side's wall time covers the whole pipeline, generator included (the same for all),
and the fastest of ``--repeat`` runs counts (the machine may be shared). The rows are counted at
the end and must equal the rows generated. Prints rows/second and both ratios: CrossFeatures'
time over the floor's, and tf.Transform's time over CrossFeatures'.

    python benchmarks/bench_pipeline.py                      # 1M dicts, 10M rows in RecordBatches
    python benchmarks/bench_pipeline.py --rows 100000 --arrow-rows 1000000   # a quick run
    python benchmarks/bench_pipeline.py --skip-tft           # floor and CrossFeatures only
    BEAM_CROSS_KERNEL=numpy python benchmarks/bench_pipeline.py   # without the compiled kernel
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402

import beam_cross.core  # noqa: E402
from beam_cross import Cross  # noqa: E402
from beam_cross.beam.transforms import CrossFeatures  # noqa: E402

COUNTRIES = np.array([f"country_{i}" for i in range(200)], dtype=object)
DEVICES = np.array([b"ios", b"android", b"web", b"tv"], dtype=object)
NUM_BINS = (10_000, 1_000)
CROSSES = [Cross(["country", "hour"], NUM_BINS[0]), Cross(["device", "hour", "country"], NUM_BINS[1])]
ARROW_BATCH_ROWS = 50_000
_COUNTRY_VALUES = pa.array(COUNTRIES, pa.large_binary())
_DEVICE_VALUES = pa.array(DEVICES, pa.large_binary())


def _indices(shard: int, rows: int):
    rng = np.random.default_rng(shard)
    return rng.integers(0, len(COUNTRIES), rows), rng.integers(0, 24, rows), rng.integers(0, len(DEVICES), rows)


def _columns(shard: int, rows: int):
    countries, hours, devices = _indices(shard, rows)
    return COUNTRIES[countries], hours, DEVICES[devices]


def generate_dicts(shard: int, rows: int):
    countries, hours, devices = _columns(shard, rows)
    for country, hour, device in zip(countries.tolist(), hours.tolist(), devices.tolist()):
        yield {"country": country, "hour": hour, "device": device}


def _listed(values: pa.Array) -> pa.Array:
    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int64))
    return pa.LargeListArray.from_arrays(offsets, values)


def generate_record_batches(shard: int, rows: int):
    """RecordBatches as TFXIO gives them for tf.Examples: one ``large_list`` per feature."""
    for start in range(0, rows, ARROW_BATCH_ROWS):
        n = min(ARROW_BATCH_ROWS, rows - start)
        countries, hours, devices = _indices(shard * 1_000_003 + start, n)
        # Arrow `take` builds the string columns without a Python object per row, so the
        # generator's own cost dilutes the comparison as little as possible.
        yield pa.RecordBatch.from_arrays(
            [_listed(_COUNTRY_VALUES.take(countries)), _listed(pa.array(hours, pa.int64())),
             _listed(_DEVICE_VALUES.take(devices))],
            names=["country", "hour", "device"],
        )


def _rows_source(p, rows, shards, generator):
    per_shard = [rows // shards + (1 if i < rows % shards else 0) for i in range(shards)]
    return p | "Shards" >> beam.Create(list(enumerate(per_shard))) | "Generate" >> beam.FlatMap(lambda s: generator(*s))


# Elements built once, outside any pipeline (see ``held_source``), by key.
_HELD: dict = {}


def held_source(p, elements, shards):
    """``elements`` (built once) as a PCollection, ``shards`` Create elements each yielding its share.

    The elements stay in this module (importable, so its functions pickle by reference): the
    in-process FnApiRunner reaches them by key instead of pickling them into every pipeline, so a
    run pays for Beam moving them, not for building or copying them.
    """
    key = id(elements)
    _HELD[key] = elements
    return p | "Shards" >> beam.Create([(key, shard, shards) for shard in range(shards)]) | "Held" >> beam.FlatMap(_held)


def _held(spec):
    key, shard, shards = spec
    return _HELD[key][shard::shards]


def _count_rows(pcoll, rows_of):
    return pcoll | "Rows" >> beam.Map(rows_of) | "Total" >> beam.CombineGlobally(sum)


def _best(build, rows, repeat):
    """The fastest of ``repeat`` runs: the machine may be shared, the minimum is the least disturbed."""
    return min(_run(build, rows) for _ in range(repeat))


def _run(build, rows):
    """Runs a pipeline ending in a row count; returns seconds, after checking the count."""
    start = time.perf_counter()
    p = beam.Pipeline(runner="FnApiRunner")
    _ = build(p) | "Keep" >> beam.Map(lambda total: Metrics.counter("bench", "rows").inc(total))
    result = p.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    counters = result.metrics().query(MetricsFilter().with_name("rows"))["counters"]
    totals = [c.committed for c in counters]
    if totals != [rows]:
        raise RuntimeError(f"Rows lost or duplicated: expected {rows}, counted {totals}")
    return seconds


def preprocessing_fn(inputs):
    import tensorflow as tf

    def column(name):  # dense (batch,) -> (batch, 1), what cross_hashed takes for dense inputs
        return tf.expand_dims(inputs[name], -1)

    outputs = dict(inputs)
    for cross in CROSSES:
        crossed = tf.sparse.cross_hashed([column(f) for f in cross.features], num_buckets=cross.num_bins)
        outputs[cross.name] = tf.squeeze(tf.sparse.to_dense(crossed), -1)
    return outputs


def _feature_spec():
    import tensorflow as tf

    return {
        "country": tf.io.FixedLenFeature([], tf.string),
        "hour": tf.io.FixedLenFeature([], tf.int64),
        "device": tf.io.FixedLenFeature([], tf.string),
    }


def _tft_dicts(p, rows, shards, temp_dir):
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(_feature_spec()))
    data = _rows_source(p, rows, shards, generate_dicts)
    with tft_beam.Context(temp_dir=temp_dir):
        (transformed, _), _ = (data, metadata) | "TFT" >> tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    return _count_rows(transformed, lambda _: 1)


def _tft_record_batches(p, rows, shards, temp_dir):
    import tensorflow_transform.beam as tft_beam
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    schema = _tft_schema()
    arrow_schema = next(generate_record_batches(0, 1)).schema
    representations = tensor_representation_util.InferTensorRepresentationsFromSchema(schema)
    config = tensor_adapter.TensorAdapterConfig(arrow_schema, representations)
    data = _rows_source(p, rows, shards, generate_record_batches)
    with tft_beam.Context(temp_dir=temp_dir):
        (transformed, _), _ = (data, config) | "TFT" >> tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=True
        )
    return _count_rows(transformed, lambda batch_and_passthrough: batch_and_passthrough[0].num_rows)


def _tft_schema():
    from tensorflow_transform.tf_metadata import schema_utils

    return schema_utils.schema_from_feature_spec(_feature_spec())


def _ours_dicts(p, rows, shards):
    crossed = _rows_source(p, rows, shards, generate_dicts) | "CrossFeatures" >> CrossFeatures(CROSSES)
    return _count_rows(crossed, lambda _: 1)


def _ours_record_batches(p, rows, shards):
    crossed = _rows_source(p, rows, shards, generate_record_batches) | "CrossFeatures" >> CrossFeatures(CROSSES)
    return _count_rows(crossed, lambda batch: batch.num_rows)


def _floor_dicts(p, rows, shards):
    names = [cross.name for cross in CROSSES]

    def add_fields(element):
        out = dict(element)
        for name in names:
            out[name] = 0
        return out

    crossed = _rows_source(p, rows, shards, generate_dicts) | "Floor" >> beam.Map(add_fields)
    return _count_rows(crossed, lambda _: 1)


def _floor_record_batches(p, rows, shards):
    names = [cross.name for cross in CROSSES]

    def add_columns(batch):
        n = batch.num_rows
        column = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(np.zeros(n, np.int64)))
        for name in names:
            batch = batch.append_column(name, column)
        return batch

    crossed = _rows_source(p, rows, shards, generate_record_batches) | "Floor" >> beam.Map(add_columns)
    return _count_rows(crossed, lambda batch: batch.num_rows)


def _report(title, rows, floor, ours, theirs, floor_target, tft_target):
    print(f"\n{title}: {rows:,} rows")
    print(f"  floor (Beam)  : {floor:8.2f} s  {rows / floor:14,.0f} rows/s")
    print(f"  CrossFeatures : {ours:8.2f} s  {rows / ours:14,.0f} rows/s   "
          f"{ours / floor:5.2f}x the floor's time (target <= {floor_target}x)")
    if theirs is not None:
        print(f"  tf.Transform  : {theirs:8.2f} s  {rows / theirs:14,.0f} rows/s   "
              f"CrossFeatures {theirs / ours:5.2f}x faster (target >= {tft_target}x)")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="instance-dict rows (default 1,000,000)")
    parser.add_argument("--arrow-rows", type=int, default=10_000_000, help="RecordBatch rows (default 10,000,000)")
    parser.add_argument("--shards", type=int, default=4, help="generator shards (Create elements)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts (default 3)")
    parser.add_argument("--skip-dicts", action="store_true")
    parser.add_argument("--skip-arrow", action="store_true")
    parser.add_argument("--skip-tft", action="store_true", help="floor and CrossFeatures only")
    args = parser.parse_args(argv)
    print(f"kernel {beam_cross.core.KERNEL}; beam {beam.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}; runner FnApiRunner; "
          f"best of {args.repeat}")
    with tempfile.TemporaryDirectory() as temp_dir:
        if not args.skip_dicts:
            rows = args.rows
            floor = _best(lambda p: _floor_dicts(p, rows, args.shards), rows, args.repeat)
            ours = _best(lambda p: _ours_dicts(p, rows, args.shards), rows, args.repeat)
            theirs = None if args.skip_tft else _best(
                lambda p: _tft_dicts(p, rows, args.shards, os.path.join(temp_dir, "dicts")), rows, args.repeat
            )
            _report("Instance dicts, 2 crosses", rows, floor, ours, theirs, 1.3, 6)
        if not args.skip_arrow:
            rows = args.arrow_rows
            floor = _best(lambda p: _floor_record_batches(p, rows, args.shards), rows, args.repeat)
            ours = _best(lambda p: _ours_record_batches(p, rows, args.shards), rows, args.repeat)
            theirs = None if args.skip_tft else _best(
                lambda p: _tft_record_batches(p, rows, args.shards, os.path.join(temp_dir, "arrow")), rows, args.repeat
            )
            _report("RecordBatches (TFXIO layout), 2 crosses", rows, floor, ours, theirs, 1.3, 2.5)


if __name__ == "__main__":
    main()
