"""``CrossFeatures`` on engines that pickle it and run it in other processes, for raw crosses and for
crosses of transformed features (``Bucketize``, ``Lookup``, ``Identity``, ``Hash``).

- the DirectRunner in multi-process mode (``--direct_num_workers=2 --direct_running_mode=multi_processing``);
- Beam's DaskRunner on a ``distributed.LocalCluster`` of 2 worker processes. That runner computes only
  the last step of a pipeline, runs no ``assert_that`` and has no metrics, so the pipeline ends in one
  writer DoFn and the test reads back what the workers wrote and compares it, row for row, with TF.

Expected bins of raw crosses come from ``tf.sparse.cross_hashed`` (see ``test_transforms.tf_bins``);
those of transformed crosses from ``Cross.apply`` on the same rows, itself checked here against
``tf.sparse.cross_hashed`` over the ids of the Keras preprocessing layers and TF feature columns.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from remote_workers import WriteLines, read_lines, ship_by_value
from test_transforms import BAD_ROWS, CROSSES, ROW_SCHEMA, expected_dicts, make_rows

from beam_cross import Bucketize, Cross, FeatureError, Hash, Identity, Lookup
from beam_cross.beam.transforms import CrossFeatures
from beam_cross.core import errors

pytestmark = pytest.mark.slow

ship_by_value(__name__)

GOOD = make_rows(300)
BAD = [row for row, _, _ in BAD_ROWS]
ROWS = [beam.Row(country=r["country"], hour=r["hour"]) for r in GOOD[:40]]
BATCHES = [pa.RecordBatch.from_pylist(GOOD[i : i + 60], schema=ROW_SCHEMA) for i in range(0, 300, 60)]
ROW_CROSSES = CROSSES[:1]


def _canonical(record: dict) -> str:
    return json.dumps({k: v.hex() if isinstance(v, bytes) else v for k, v in sorted(record.items())}, ensure_ascii=False)


def _expected():
    return {
        "dict": sorted(_canonical(r) for r in expected_dicts(GOOD, CROSSES)),
        "row": sorted(_canonical(r) for r in expected_dicts([r._asdict() for r in ROWS], ROW_CROSSES)),
        "arrow": sorted(_canonical(r) for r in expected_dicts(GOOD, CROSSES)),
        "rejected": sorted(reason for _, reason, _ in BAD_ROWS),
    }


def _build(p, shuffle_inputs):
    """All three element kinds plus bad rows, as ``(kind, canonical json)`` pairs on one PCollection."""
    dicts = p | "dicts" >> beam.Create(GOOD + BAD)
    rows = p | "rows" >> beam.Create(ROWS)
    batches = p | "batches" >> beam.Create(BATCHES)
    if shuffle_inputs:  # spread the elements over the workers
        dicts, rows, batches = (
            pc | f"shuffle {name}" >> beam.Reshuffle() for name, pc in (("d", dicts), ("r", rows), ("b", batches))
        )
    crossed, rejected = dicts | "dict crosses" >> CrossFeatures(CROSSES).with_exception_handling()
    crossed_rows = rows | "row crosses" >> CrossFeatures(ROW_CROSSES)
    crossed_batches = batches | "arrow crosses" >> CrossFeatures(CROSSES)
    return (
        crossed | "tag dicts" >> beam.Map(lambda r: ("dict", _canonical(r))),
        crossed_rows | "tag rows" >> beam.Map(lambda r: ("row", _canonical(r._asdict()))),
        crossed_batches | "tag arrow" >> beam.FlatMap(lambda b: [("arrow", _canonical(r)) for r in b.to_pylist()]),
        rejected | "tag rejected" >> beam.Map(lambda r: ("rejected", r.reason)),
    ) | "all outputs" >> beam.Flatten()


def test_multi_process_direct_runner():
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    expected = _expected()
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        outputs = _build(p, shuffle_inputs=True)
        assert_that(outputs, equal_to([(kind, value) for kind, values in expected.items() for value in values]))


@pytest.fixture(scope="module")
def dask_cluster():
    """One ``LocalCluster`` of 2 worker processes for the DaskRunner tests of this module."""
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster


def _run_on_dask(cluster, build, directory):
    """Runs ``build(p)``'s one PCollection into :class:`WriteLines` on the DaskRunner; returns what was written."""
    from apache_beam.runners.dask.dask_runner import DaskRunner

    options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=50"])
    p = beam.Pipeline(runner=DaskRunner(), options=options)
    _ = build(p) | "write" >> beam.ParDo(WriteLines(directory))
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()  # the runner's own client; closed before its cluster goes away
    return read_lines(directory)


def test_dask_runner_on_a_local_cluster(dask_cluster, tmp_path):
    lines = _run_on_dask(dask_cluster, lambda p: _build(p, shuffle_inputs=False), tmp_path)
    written: dict[str, list] = {"dict": [], "row": [], "arrow": [], "rejected": []}
    for kind, value in lines:
        written[kind].append(value)
    expected = _expected()
    # Counted first, so that a lost or duplicated row is reported as such.
    assert {k: len(v) for k, v in written.items()} == {k: len(v) for k, v in expected.items()}
    assert {k: sorted(v) for k, v in written.items()} == expected


def test_dask_runner_fails_a_bundle_over_the_threshold(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    rows = GOOD[:20] + [{"country": "fr", "hour": 1.5}] * 20  # half the rows rejected
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=100"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        crossed, _ = p | beam.Create(rows) | CrossFeatures(CROSSES[:1]).with_exception_handling(threshold=0.25)
        _ = crossed | "write" >> beam.ParDo(WriteLines(tmp_path))
        result = p.run()
        with pytest.raises(Exception, match=r"rejected 20 of the 40 rows of a bundle"):
            result.wait_until_finish()
        result.client.close()


# -- crosses of transformed features ----------------------------------------------------------------

BOUNDARIES = [-1.0, 0.0, 0.1, 2.5]
CITIES = ["paris", "lyon", "nice", "lille"]
KINDS = [3, 5, 7]
TRANSFORM_CROSSES = [
    Cross([Bucketize("x", BOUNDARIES), "country"], 1000, name="x_bucket_X_country"),
    Cross([Lookup("city", CITIES, num_oov_indices=3), Identity("hour", 24)], 2**20, name="city_X_hour"),
    Cross([Lookup("city", CITIES, style="feature_column", num_oov_indices=2), Hash("country", 16),
           Lookup("kind", KINDS, num_oov_indices=0)], 0, hash_key=7, name="three"),
]
# NaN and +inf go to the last bucket, -inf to the first; -0.0 is 0.0; 0.1 as a float64 is on the float32
# boundary 0.1; 1e40 overflows float32 (inf); 1e-45 is a float32 subnormal (compared as 0).
X_VALUES = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, -1.0, 0.1, 0.09999999, 2.5, 2.4999999,
            1e40, -1e40, 1e-45, -7.25, 3.0, 0.5, -1.0000001]
T_COUNTRIES = ["fr", "us", "日本", ""]
T_CITIES = CITIES + ["rome", "oslo", "PARIS"]  # the last three out of the vocabulary: OOV ids


def make_transform_rows(n):
    return [{"x": X_VALUES[i % len(X_VALUES)], "country": T_COUNTRIES[i % 4], "city": T_CITIES[i % len(T_CITIES)],
             "hour": (i * 5) % 24, "kind": KINDS[i % 3]} for i in range(n)]


T_GOOD = make_transform_rows(170)
_OK = {"x": 1.0, "country": "fr", "city": "paris", "hour": 1, "kind": 3}
# (row, reason, feature, cross): the first cross, in the given order, that cannot take the row.
T_BAD_ROWS = [
    ({**_OK, "x": "a"}, errors.WRONG_KIND, "x", "x_bucket_X_country"),
    ({**_OK, "x": None}, errors.NULL, "x", "x_bucket_X_country"),
    ({k: v for k, v in _OK.items() if k != "country"}, errors.MISSING, "country", "x_bucket_X_country"),
    ({**_OK, "hour": 24}, errors.OUT_OF_RANGE, "hour", "city_X_hour"),  # Identity without a default_value
    ({**_OK, "hour": -1}, errors.NO_ID, "hour", "city_X_hour"),  # dropped by feature columns
    ({**_OK, "hour": 2.5}, errors.FLOAT, "hour", "city_X_hour"),
    ({**_OK, "city": 5}, errors.WRONG_KIND, "city", "city_X_hour"),
    ({**_OK, "city": ""}, errors.NO_ID, "city", "three"),  # feature_column style drops '' from a single value
    ({**_OK, "kind": 4}, errors.OOV, "kind", "three"),  # num_oov_indices=0: an OOV value has no id
]
# Rows an Arrow column can hold; each is rejected by itself, the rest of its batch is crossed.
T_BAD_ARROW = [{**_OK, "x": None}, {**_OK, "hour": 24}, {**_OK, "hour": -1}, {**_OK, "city": ""}, {**_OK, "kind": 4}]
T_SCHEMAS = [pa.schema([("x", x_type), ("country", pa.string()), ("city", pa.string()), ("hour", pa.int64()),
                        ("kind", pa.int64())]) for x_type in (pa.float64(), pa.float32())]


def _transform_batches():
    """Float64 and float32 ``x`` columns in turn; a bad row in every batch."""
    batches = []
    for n, start in enumerate(range(0, len(T_GOOD), 40)):
        rows = T_GOOD[start : start + 40]
        rows = rows[:7] + [T_BAD_ARROW[n % len(T_BAD_ARROW)]] + rows[7:]
        batches.append(pa.RecordBatch.from_pylist(rows, schema=T_SCHEMAS[n % 2]))
    return batches


T_BATCHES = _transform_batches()


def _rejection(row, reason, feature, cross):
    return json.dumps([reason, feature, cross, _canonical(row)], ensure_ascii=False)


def _core_outcome(row):
    """``Cross.apply`` on one row: its crossed record, or the rejection of the first cross that fails."""
    record = dict(row)
    for cross in TRANSFORM_CROSSES:
        missing = [f for f in cross.features if f not in row]
        if missing:  # Cross.apply takes columns, and names a missing one with a KeyError
            return None, (errors.MISSING, missing[0], cross.name)
        try:
            record[cross.name] = cross.apply({k: [v] for k, v in row.items()}).tolist()[0]
        except FeatureError as error:
            return None, (error.reason, error.feature, cross.name)
    return record, None


def _transform_expected():
    """The outputs, from ``Cross.apply`` over all the good rows at once (as columns), and the rejections."""
    def crossed(rows):
        out = [dict(r) for r in rows]
        for cross in TRANSFORM_CROSSES:
            ids = cross.apply({k: [r[k] for r in rows] for k in rows[0]}).tolist()
            for record, i in zip(out, ids):
                record[cross.name] = i
        return sorted(_canonical(r) for r in out)

    arrow_rows = [row for batch in T_BATCHES for row in batch.to_pylist()]
    arrow_bad = [(row, _core_outcome(row)[1]) for row in arrow_rows if _core_outcome(row)[1]]
    return {
        "t dict": crossed(T_GOOD),
        "t arrow": crossed([row for row in arrow_rows if not _core_outcome(row)[1]]),
        "t dict rejected": sorted(_rejection(*bad) for bad in T_BAD_ROWS),
        "t arrow rejected": sorted(_rejection(row, *outcome) for row, outcome in arrow_bad),
    }


def _build_transforms(p, shuffle_inputs):
    """Transformed crosses over dicts (good and bad rows mixed) and RecordBatches, as ``(kind, json)`` pairs."""
    bad = [row for row, *_ in T_BAD_ROWS]
    dicts = p | "t dicts" >> beam.Create([row for pair in zip(T_GOOD, bad + [None] * len(T_GOOD)) for row in pair
                                           if row is not None])
    batches = p | "t batches" >> beam.Create(T_BATCHES)
    if shuffle_inputs:
        dicts, batches = dicts | "t shuffle d" >> beam.Reshuffle(), batches | "t shuffle b" >> beam.Reshuffle()
    crossed, rejected = dicts | "t dict crosses" >> CrossFeatures(TRANSFORM_CROSSES).with_exception_handling()
    crossed_b, rejected_b = batches | "t arrow crosses" >> CrossFeatures(TRANSFORM_CROSSES).with_exception_handling()
    return (
        crossed | "t tag dicts" >> beam.Map(lambda r: ("t dict", _canonical(r))),
        crossed_b | "t tag arrow" >> beam.FlatMap(lambda b: [("t arrow", _canonical(r)) for r in b.to_pylist()]),
        rejected | "t tag dict rejected" >> beam.Map(
            lambda r: ("t dict rejected", _rejection(r.element, r.reason, r.feature, r.cross))),
        rejected_b | "t tag arrow rejected" >> beam.Map(
            lambda r: ("t arrow rejected", _rejection(r.element, r.reason, r.feature, r.cross))),
    ) | "t all outputs" >> beam.Flatten()


def test_the_rows_cover_every_bucket_oov_and_rejection():
    """The rows are what the distributed tests claim to cover; their rejections are the core's."""
    buckets = Bucketize("x", BOUNDARIES)([r["x"] for r in T_GOOD]).tolist()
    assert sorted(set(buckets)) == list(range(len(BOUNDARIES) + 1))
    assert {r["city"] for r in T_GOOD} - set(CITIES) == {"rome", "oslo", "PARIS"}
    assert [_core_outcome(row)[1] for row, *_ in T_BAD_ROWS] == [tuple(expected) for _, *expected in T_BAD_ROWS]
    assert all(_core_outcome(row)[1] is None for row in T_GOOD)
    expected = _transform_expected()
    assert len(expected["t arrow rejected"]) == len(T_BATCHES)
    assert sum(b.num_rows for b in T_BATCHES) == len(expected["t arrow"]) + len(expected["t arrow rejected"])


def test_transformed_crosses_are_tensorflows():
    """``Cross.apply`` (the expected ids above) against TF: ``tf.sparse.cross_hashed`` over the ids of
    Keras ``Discretization`` / ``StringLookup`` / ``IntegerLookup`` / ``Hashing`` and of TF's
    ``categorical_column_with_vocabulary_list`` / ``categorical_column_with_identity``."""
    import numpy as np
    from tensorflow.python.feature_column import feature_column_v2 as fcv2
    from test_transforms import tf, tf_bins

    keras = pytest.importorskip("keras", reason="the Keras preprocessing layers are the oracle")

    def ids(tensor):
        return np.asarray(tensor).reshape(-1).tolist()

    def feature_column_ids(column, values):
        cache = fcv2.FeatureTransformationCache({column.key: tf.reshape(tf.constant(values), [-1, 1])})
        return tf.sparse.to_dense(column.get_sparse_tensors(cache, None).id_tensor).numpy().reshape(-1).tolist()

    fc = tf.feature_column
    column = {k: [r[k] for r in T_GOOD] for k in T_GOOD[0]}
    with np.errstate(over="ignore"):
        x32 = np.array(column["x"], np.float64).astype(np.float32)  # a float32 numeric column
    cities, countries = np.array(column["city"], object), np.array(column["country"], object)
    oracle = {  # per cross, the id columns TF gives its features
        "x_bucket_X_country": [ids(keras.layers.Discretization(bin_boundaries=BOUNDARIES)(x32)), column["country"]],
        "city_X_hour": [ids(keras.layers.StringLookup(vocabulary=CITIES, num_oov_indices=3)(cities)),
                        feature_column_ids(fc.categorical_column_with_identity("hour", 24), column["hour"])],
        "three": [feature_column_ids(fc.categorical_column_with_vocabulary_list("city", CITIES, num_oov_buckets=2),
                                     column["city"]),
                  ids(keras.layers.Hashing(num_bins=16)(countries)),
                  ids(keras.layers.IntegerLookup(vocabulary=KINDS, num_oov_indices=0)(np.array(column["kind"])))],
    }
    for cross in TRANSFORM_CROSSES:
        assert cross.apply(column).tolist() == tf_bins(oracle[cross.name], cross.num_bins, cross.hash_key), cross.name


def test_transformed_crosses_on_the_multi_process_direct_runner():
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    expected = _transform_expected()
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        outputs = _build_transforms(p, shuffle_inputs=True)
        assert_that(outputs, equal_to([(kind, value) for kind, values in expected.items() for value in values]))


def test_transformed_crosses_on_the_dask_runner(dask_cluster, tmp_path):
    lines = _run_on_dask(dask_cluster, lambda p: _build_transforms(p, shuffle_inputs=False), tmp_path)
    expected = _transform_expected()
    written: dict[str, list] = {kind: [] for kind in expected}
    for kind, value in lines:
        written[kind].append(value)
    counts = {k: len(v) for k, v in written.items()}
    # Rows in = rows out + rows rejected, for each element kind; then each row's ids and each rejection.
    assert counts["t dict"] + counts["t dict rejected"] == len(T_GOOD) + len(T_BAD_ROWS)
    assert counts["t arrow"] + counts["t arrow rejected"] == sum(b.num_rows for b in T_BATCHES)
    assert counts == {k: len(v) for k, v in expected.items()}
    assert {k: sorted(v) for k, v in written.items()} == expected
