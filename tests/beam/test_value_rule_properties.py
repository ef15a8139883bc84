"""The value rule under Hypothesis: batches mixing every kind of value, through the core and the pipeline.

Each drawn value carries what the rule (``beam_cross.core.errors``) says it is, decided by the strategy
that drew it: an int64 / bytes value as TF takes it, or the reason that rejects it. The expected
bins come from ``tf.sparse.cross_hashed`` run live on those values. Checked:

- ``hashed_cross`` either returns TF's bins (all values good, one kind per column) or raises a
  FeatureError naming the first bad row of the first bad column; never a wrong id;
- ``CrossFeatures.with_exception_handling()`` (FnApiRunner, any batch size) puts every row out
  exactly once, crossed rows with TF's bins, rejected rows with their reason, and each row's outcome
  equals its outcome when crossed alone.

The pipeline property also runs once (slow) on the multi-process DirectRunner and on Dask.
"""

from __future__ import annotations

import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from remote_workers import WriteLines, read_lines, ship_by_value

from beam_cross import Cross, FeatureError, hashed_cross
from beam_cross.beam.transforms import CrossFeatures
from beam_cross.core import errors
from beam_cross.core.elements import ElementCrosser

tf = pytest.importorskip("tensorflow", reason="the oracle is tf.sparse.cross_hashed")

EXAMPLES = int(os.environ.get("BEAM_CROSS_EXAMPLES", "60"))
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
CROSS = Cross(["a", "b"], 997, name="c")


def _good(value, kind, canonical):
    return {"value": value, "kind": kind, "tf": canonical, "reason": None}


def _bad(value, reason):
    return {"value": value, "kind": None, "tf": None, "reason": reason}


def _int64(number: int) -> int:
    number %= 2**64
    return number - 2**64 if number >= 2**63 else number


text = st.text(max_size=6)


@st.composite
def scalars(draw, buffers=(bytearray, memoryview)):
    """One scalar value and what the rule makes of it (``buffers``: Beam cannot pickle a memoryview)."""
    label = draw(st.sampled_from([
        "int", "np_int", "0d_int", "str", "np_str", "0d_str", "bytes", "np_bytes", "0d_bytes",
        "big_int", "float", "0d_float", "complex", "bool", "none", "set", "dict", "buffer",
    ]))
    if label == "int":
        number = draw(st.integers(-(2**63), 2**64 - 1))
        return _good(number, "int", _int64(number))
    if label in ("np_int", "0d_int"):
        dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
        number = draw(st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)))
        value = dtype.type(number) if label == "np_int" else np.array(number, dtype)
        return _good(value, "int", _int64(number))
    if label in ("str", "np_str", "0d_str"):
        # Pickling an np.str_ (as Beam's coders do) drops its trailing NULs: the element would
        # change before it reaches the transform. test_nothing_lost checks such values directly.
        string = draw(text if label != "np_str" else text.filter(lambda t: not t.endswith("\x00")))
        value = {"str": string, "np_str": np.str_(string), "0d_str": np.array(string)}[label]
        # An np.str_ is the str it is, every character (NumPy's str() and repr hide trailing NULs);
        # a 0-d array holds what NumPy stored (trailing NULs are its padding).
        held = value.item() if isinstance(value, np.ndarray) else str.__str__(value)
        return _good(value, "string", held.encode("utf-8"))
    if label in ("bytes", "np_bytes", "0d_bytes"):
        # Trailing NULs drawn on purpose (a bytes keeps them; NumPy's value of an np.bytes_ or of a
        # 0-d 'S' array does not).
        data = draw(st.binary(max_size=6)) + b"\x00" * draw(st.sampled_from([0, 0, 1, 3]))
        value = {"bytes": data, "np_bytes": np.bytes_(data), "0d_bytes": np.array(data)}[label]
        # What TF takes: the value as given for bytes; for NumPy's types, the item NumPy gives from an
        # 'S' array holding it (as pickling, hence Beam, carries an np.bytes_).
        held = value if label == "bytes" else np.array([value]).tolist()[0]
        return _good(value, "string", held)
    if label == "big_int":
        return _bad(draw(st.one_of(st.integers(2**64, 2**70), st.integers(-(2**70), -(2**63) - 1))), errors.OUT_OF_RANGE)
    if label == "float":
        kind = draw(st.sampled_from([float, np.float16, np.float32, np.float64, np.longdouble]))
        return _bad(kind(draw(st.integers(-5, 5)) + 0.5), errors.FLOAT)
    if label == "0d_float":
        return _bad(np.array(draw(st.floats(allow_nan=False, width=32))), errors.FLOAT)
    if label == "complex":
        return _bad(draw(st.sampled_from([complex(1, 2), np.complex64(1), np.complex128(0)])), errors.FLOAT)
    if label == "bool":
        return _bad(draw(st.sampled_from([True, False, np.bool_(True), np.bool_(False)])), errors.BOOL)
    if label == "none":
        return _bad(None, errors.NULL)
    if label == "set":
        members = draw(st.lists(text, min_size=2, max_size=4, unique=True))
        return _bad(draw(st.sampled_from([set, frozenset]))(members), errors.UNSUPPORTED)
    if label == "dict":
        return _bad({draw(text): 1}, errors.UNSUPPORTED)
    return _bad(draw(st.sampled_from(buffers))(draw(st.binary(max_size=4))), errors.UNSUPPORTED)


@st.composite
def row_values(draw, buffers):
    """A feature value of a row: a scalar, or (one time in four) a list of scalars."""
    if draw(st.integers(0, 3)):
        return draw(scalars(buffers))
    items = draw(st.lists(scalars(buffers), max_size=3))
    bad = next((item for item in items if item["reason"]), None)
    value = [item["value"] for item in items]
    if bad is not None:
        return _bad(value, bad["reason"])
    if len({item["kind"] for item in items}) > 1:
        return _bad(value, errors.MIXED_KINDS)
    return {"value": value, "kind": items[0]["kind"] if items else "int", "tf": [i["tf"] for i in items], "reason": None,
            "list": True}


def tf_bins_per_row(rows: list[list[dict]], num_bins: int) -> list:
    """Per row of good values (one drawn value per feature), the bins of ``tf.sparse.cross_hashed``:
    an int for scalar rows, a list for rows with a list value. Rows are grouped by their kinds."""
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(v["kind"] for v in row), []).append(i)
    out: list = [None] * len(rows)
    for kinds, members in groups.items():
        tensors = []
        for j, kind in enumerate(kinds):
            lists = [rows[i][j]["tf"] if rows[i][j].get("list") else [rows[i][j]["tf"]] for i in members]
            flat = [v for values in lists for v in values]
            values = (tf.constant(np.array(flat, np.int64), tf.int64) if kind == "int"
                      else tf.constant(np.array(flat, dtype=object) if flat else np.zeros(0, object), tf.string))
            tensors.append(tf.RaggedTensor.from_row_lengths(values, [len(v) for v in lists]).to_sparse())
        crossed = tf.RaggedTensor.from_sparse(tf.sparse.cross_hashed(tensors, num_buckets=num_bins)).to_list()
        crossed += [[]] * (len(members) - len(crossed))  # trailing empty rows are not in the sparse shape
        for i, bins in zip(members, crossed):
            out[i] = bins if any(v.get("list") for v in rows[i]) else bins[0]
    return out


def expected_outcomes(rows: list[dict]) -> list[tuple]:
    """``(id, "ok", bins)`` or ``(id, reason, feature)`` per row, from the drawn values alone."""
    outcomes: list = [None] * len(rows)
    good = []
    for i, row in enumerate(rows):
        for feature in CROSS.features:
            drawn = row["drawn"].get(feature)
            if drawn is None or drawn["reason"]:
                outcomes[i] = (row["id"], drawn["reason"] if drawn else errors.MISSING, feature)
                break
        else:
            good.append(i)
    bins = tf_bins_per_row([[rows[i]["drawn"][f] for f in CROSS.features] for i in good], CROSS.num_bins)
    for i, b in zip(good, bins):
        outcomes[i] = (rows[i]["id"], "ok", b)
    return outcomes


@st.composite
def batches(draw, max_rows=12, buffers=(bytearray,)):
    rows = []
    for i in range(draw(st.integers(1, max_rows))):
        drawn = {f: draw(row_values(buffers)) for f in CROSS.features if draw(st.integers(0, 15))}  # a feature may be missing
        rows.append({"id": i, "drawn": drawn, "element": {"id": i, **{f: v["value"] for f, v in drawn.items()}}})
    return rows


def _outcome_alone(crosser, row):
    outputs, rejected = crosser.cross_elements([row["element"]])
    if outputs[0] is not None:
        return (row["id"], "ok", outputs[0][CROSS.name])
    return (row["id"], rejected[0].reason, rejected[0].feature)


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(batches(max_rows=30, buffers=(bytearray, memoryview)), st.integers(1, 8))
def test_element_crosser_outcome_is_the_rule_alone_and_in_any_batch(rows, batch_size):
    crosser = ElementCrosser([CROSS])
    expected = expected_outcomes(rows)
    assert [_outcome_alone(crosser, row) for row in rows] == expected
    got = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        outputs, rejected = crosser.cross_elements([row["element"] for row in chunk])
        got += [(row["id"], "ok", out[CROSS.name]) if out is not None else (row["id"], rejected[k].reason, rejected[k].feature)
                for k, (row, out) in enumerate(zip(chunk, outputs))]
    assert got == expected
    if len(rows) <= 8:  # the TF engine, on the same rows, gives the same outcomes (a sample: TF calls are slow)
        from beam_cross.tf.engine import cross_with_tensorflow

        with_tf = ElementCrosser([CROSS], engine=cross_with_tensorflow)
        assert [_outcome_alone(with_tf, row) for row in rows] == expected


def _pipeline_outcomes(p, rows, label, spread=False):
    elements = p | f"{label} rows" >> beam.Create([row["element"] for row in rows])
    if spread:  # over the workers
        elements = elements | f"{label} spread" >> beam.Reshuffle()
    crossed, rejected = elements | f"{label} cross" >> CrossFeatures([CROSS]).with_exception_handling()
    return (
        crossed | f"{label} ok" >> beam.Map(lambda r: (r["id"], "ok", r[CROSS.name])),
        rejected | f"{label} bad" >> beam.Map(lambda r: (r.element["id"], r.reason, r.feature)),
    ) | f"{label} all" >> beam.Flatten()


@settings(max_examples=max(EXAMPLES // 6, 3), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(batches(), min_size=1, max_size=4))
def test_cross_features_puts_every_row_out_once_with_the_rule_outcome(examples):
    with beam.Pipeline("FnApiRunner") as p:
        for k, rows in enumerate(examples):
            assert_that(_pipeline_outcomes(p, rows, f"e{k}"), equal_to(expected_outcomes(rows)), label=f"check {k}")


@pytest.mark.usefixtures("kernel")
def test_np_bytes_with_trailing_nuls_crosses_as_numpy_gives_it():
    """An np.bytes_ is its bytes less trailing NULs (NumPy's value, and what pickling carries), on both
    kernels, in hashed_cross and through CrossFeatures; a bytes keeps its NULs. The bins are TF's."""
    values = [np.bytes_(b"\x02\n\x00"), b"\x02\n", b"\x02\n\x00", np.bytes_(b"\x00\x00"), np.array(b"z\x00")]
    held = [v if type(v) is bytes else np.array([v]).tolist()[0] for v in values]
    assert held[:3] == [b"\x02\n", b"\x02\n", b"\x02\n\x00"]  # the premise, as NumPy gives it
    drawn = [[_good(v, "string", h), _good(1, "int", 1)] for v, h in zip(values, held)]
    bins = tf_bins_per_row(drawn, CROSS.num_bins)
    assert bins[0] == bins[1]
    assert hashed_cross([values, [1] * len(values)], CROSS.num_bins).tolist() == bins
    alone = [hashed_cross({"a": v, "b": 1}, CROSS.num_bins) for v in values]
    assert [int(b) for b in alone] == bins
    elements = [{"id": i, "a": v, "b": 1} for i, v in enumerate(values)]
    with beam.Pipeline("FnApiRunner") as p:
        crossed = p | beam.Create(elements) | CrossFeatures([CROSS]) | beam.Map(lambda r: (r["id"], r[CROSS.name]))
        assert_that(crossed, equal_to(list(enumerate(bins))))


def _core_expectation(columns: list[list[dict]]):
    """``("ok", bins)`` or ``("error", feature, row, reason)`` for ``hashed_cross`` on scalar columns:
    the first column holding a bad value, or a value of another kind than its first value."""
    for j, column in enumerate(columns):
        first_kind = None
        for row, drawn in enumerate(column):
            if drawn["reason"]:
                return ("error", f"features[{j}]", row, drawn["reason"])
            first_kind = first_kind or drawn["kind"]
            if drawn["kind"] != first_kind:
                return ("error", f"features[{j}]", row, errors.MIXED_KINDS)
    return ("ok", tf_bins_per_row([list(row) for row in zip(*columns)], CROSS.num_bins))


@SETTINGS
@given(st.integers(1, 10).flatmap(lambda n: st.lists(st.lists(scalars(), min_size=n, max_size=n), min_size=2, max_size=3)))
def test_hashed_cross_returns_tf_bins_or_names_the_first_bad_row(columns):
    expected = _core_expectation(columns)
    try:
        got = ("ok", hashed_cross([[d["value"] for d in column] for column in columns], CROSS.num_bins).tolist())
    except FeatureError as error:
        got = ("error", error.feature, error.row, error.reason)
    assert got == expected


# Slow: the same pipeline property, once, on engines that run it in other processes.
@pytest.mark.slow
@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(batches(max_rows=40), min_size=3, max_size=3))
def test_multi_process_direct_runner(examples):
    from apache_beam.options.pipeline_options import PipelineOptions

    ship_by_value(__name__)
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        for k, rows in enumerate(examples):
            outcomes = _pipeline_outcomes(p, rows, f"e{k}", spread=True)
            assert_that(outcomes, equal_to(expected_outcomes(rows)), label=f"check {k}")


@pytest.mark.slow
@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(batches(max_rows=60))
def test_dask_runner(rows):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.dask.dask_runner import DaskRunner

    ship_by_value(__name__)
    import tempfile

    with tempfile.TemporaryDirectory() as directory, \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=7"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        _ = _pipeline_outcomes(p, rows, "dask") | beam.ParDo(WriteLines(directory))
        result = p.run()
        result.wait_until_finish()
        result.client.close()
        written = [tuple(outcome) for outcome in read_lines(directory)]
    expected = [tuple(json.loads(json.dumps(o))) for o in expected_outcomes(rows)]
    assert len(written) == len(rows)
    assert sorted(written, key=repr) == sorted(expected, key=repr)
