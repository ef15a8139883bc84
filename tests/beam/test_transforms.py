"""``CrossFeatures`` on real pipelines (FnApiRunner), against TensorFlow / Keras run in the test.

Expected bins always come from ``tf.sparse.cross_hashed`` or ``keras.layers.HashedCrossing`` on the
same values (never typed by hand). Checks use ``assert_that(..., equal_to(...))`` only.
"""

from __future__ import annotations

import typing

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to, is_empty
from apache_beam.transforms.window import FixedWindows, SlidingWindows, TimestampedValue

from beam_cross import Cross, FeatureError, hashed_cross
from beam_cross.beam.transforms import CrossFeatures, Rejected
from beam_cross.core import errors

tf = pytest.importorskip("tensorflow", reason="the oracle is tf.sparse.cross_hashed")

COUNTRIES = ["fr", "us", "de", "", "日本", "x" * 70]
DEVICES = [b"ios", b"android", b"\x00web"]


def make_rows(n=50):
    return [
        {"country": COUNTRIES[i % 6], "hour": (i * 7) % 24 - 3, "device": DEVICES[i % 3], "big": 2**63 + i}
        for i in range(n)
    ]


def tf_bins(columns, num_bins, hash_key=None):
    """Per row, the bins ``tf.sparse.cross_hashed`` gives; a list-valued column is crossed as sparse."""
    multivalent = any(isinstance(v, list) for column in columns for v in column)
    tensors = []
    for column in columns:
        rows = [v if isinstance(v, list) else [v] for v in column]
        flat = [v for row in rows for v in row]
        is_int = any(isinstance(v, int) for v in flat)
        values = (
            tf.constant(np.array([v - 2**64 if v >= 2**63 else v for v in flat], np.int64))
            if is_int else tf.constant(np.array(flat, dtype=object), tf.string)
        )
        ragged = tf.RaggedTensor.from_row_lengths(values, [len(r) for r in rows])
        tensors.append(ragged.to_sparse() if multivalent else ragged.to_tensor())
    out = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=hash_key)
    lists = tf.RaggedTensor.from_sparse(out).to_list()
    return lists if multivalent else [row[0] for row in lists]


def expected_dicts(rows, crosses, keep_inputs=True):
    out = [dict(r) if keep_inputs else {} for r in rows]
    for cross in crosses:
        for record, bins in zip(out, tf_bins([[r[f] for r in rows] for f in cross.features], cross.num_bins, cross.hash_key)):
            record[cross.name] = bins
    return out


CROSSES = [Cross(["country", "hour"], 100), Cross(["device", "country", "big"], 0, hash_key=-5, name="three")]


def _pipeline():
    return BeamTestPipeline(runner="FnApiRunner")


def test_dicts_match_tf_with_several_crosses():
    rows = make_rows()
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures(CROSSES)
        assert_that(out, equal_to(expected_dicts(rows, CROSSES)))


@pytest.mark.parametrize("kind", ["dict", "row", "record_batch"])
def test_every_element_kind_matches_keras_hashed_crossing(kind):
    keras = pytest.importorskip("keras", reason="the Keras layer is the oracle")
    rows = [{"country": r["country"], "hour": r["hour"]} for r in make_rows(30)]
    layer = keras.layers.HashedCrossing(num_bins=37)
    expected = np.asarray(layer((np.array([r["country"] for r in rows]), np.array([r["hour"] for r in rows])))).tolist()
    elements = {
        "dict": rows,
        "row": [beam.Row(**r) for r in rows],
        "record_batch": [_batch(rows[:13]), _batch(rows[13:])],
    }[kind]
    with _pipeline() as p:
        out = p | beam.Create(elements) | CrossFeatures([Cross(["country", "hour"], 37, name="k")])
        as_dicts = out | beam.FlatMap(lambda e: e.to_pylist() if isinstance(e, pa.RecordBatch) else [dict(e) if isinstance(e, dict) else e._asdict()])
        bins = as_dicts | beam.Map(lambda r: (r["country"], r["hour"], r["k"]))
        assert_that(bins, equal_to([(r["country"], r["hour"], b) for r, b in zip(rows, expected)]))


def test_tensorflow_engine_on_record_batches_matches_tf():
    rows = make_rows(20)
    listed = [{"tags": [r["country"]] * (i % 3), "hour": r["hour"]} for i, r in enumerate(rows)]
    tags_cross = Cross(["tags", "hour"], 50)
    with _pipeline() as p:
        out = p | beam.Create([_batch(rows, ROW_SCHEMA)]) | CrossFeatures(CROSSES, engine="tensorflow")
        assert_that(out | beam.FlatMap(lambda b: b.to_pylist()), equal_to(expected_dicts(rows, CROSSES)), label="scalars")
        out2 = p | "lists" >> beam.Create([_batch(listed)]) | "tf lists" >> CrossFeatures([tags_cross], engine="tensorflow")
        expected = expected_dicts([{"tags": r["tags"], "hour": [r["hour"]]} for r in listed], [tags_cross])
        assert_that(
            out2 | "rows2" >> beam.FlatMap(lambda b: b.to_pylist()),
            equal_to([{**e, "hour": r["hour"]} for e, r in zip(expected, listed)]),
            label="lists",
        )


def test_multivalent_dicts_give_the_cartesian_cross_as_tf():
    rows = [
        {"tags": ["a", "b"], "hour": 3},
        {"tags": [], "hour": 4},
        {"tags": ["c"], "hour": [1, 2, 3]},
        {"tags": ["a", "b", "c"], "hour": [5, 6]},
    ]
    cross = Cross(["tags", "hour"], 1000)
    expected = tf_bins([[r["tags"] for r in rows], [[r["hour"]] if isinstance(r["hour"], int) else r["hour"] for r in rows]], 1000)
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures([cross])
        assert_that(out | beam.Map(lambda r: r["tags_X_hour"]), equal_to(expected))


def test_scalar_rows_stay_scalar_beside_list_rows():
    rows = [{"a": "x", "b": 1}, {"a": ["x"], "b": 1}]
    scalar = tf_bins([["x"], [1]], 10)[0]
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures([Cross(["a", "b"], 10, name="c")])
        assert_that(out | beam.Map(lambda r: r["c"]), equal_to([scalar, [scalar]]))


class Event(typing.NamedTuple):
    country: str
    hour: int
    label: int


def test_named_tuples_become_rows_with_the_new_fields():
    events = [Event(COUNTRIES[i % 6], i % 24, i % 2) for i in range(20)]
    rows = [e._asdict() for e in events]
    expected = expected_dicts(rows, CROSSES[:1], keep_inputs=True)
    with _pipeline() as p:
        out = p | beam.Create(events).with_output_types(Event) | CrossFeatures(CROSSES[:1])
        assert_that(out | beam.Map(lambda r: r._asdict()), equal_to(expected))
    assert out.element_type._fields[-1] == ("country_X_hour", int)


def test_beam_rows_without_inputs():
    rows = [beam.Row(country=c, hour=h, label=1) for c, h in [("fr", 1), ("us", 2)]]
    expected = expected_dicts([r._asdict() for r in rows], CROSSES[:1])
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures(CROSSES[:1], keep_inputs=False)
        assert_that(
            out | beam.Map(lambda r: r._asdict()),
            equal_to([{"label": 1, "country_X_hour": e["country_X_hour"]} for e in expected]),
        )
    assert [name for name, _ in out.element_type._fields] == ["label", "country_X_hour"]


def test_unsupported_element_types_fail_when_the_graph_is_built():
    numbers = _pipeline() | beam.Create([1, 2])
    with pytest.raises(TypeError, match="dicts, schema'd rows .* Received: element type int"):
        _ = numbers | CrossFeatures(CROSSES)


def test_schema_fields_must_exist_at_construction_of_the_graph():
    events = _pipeline() | beam.Create([Event("fr", 1, 0)]).with_output_types(Event)
    with pytest.raises(ValueError, match=r"needs features \['device'\]"):
        _ = events | CrossFeatures([Cross(["country", "device"], 5)])


ROW_SCHEMA = pa.schema([("country", pa.string()), ("hour", pa.int64()), ("device", pa.binary()), ("big", pa.uint64())])


def _batch(rows, schema=None):
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def test_record_batches_scalar_and_list_columns_match_tf():
    rows = make_rows(40)
    listed = [{"tags": [r["country"], "z"] if i % 3 else [], "hour": [r["hour"]]} for i, r in enumerate(rows)]
    batches = [_batch(rows[:25], ROW_SCHEMA), _batch(rows[25:], ROW_SCHEMA)]
    list_batches = [_batch(listed[:10]), _batch(listed[10:])]
    tags_cross = Cross(["tags", "hour"], 50)
    with _pipeline() as p:
        out = p | "scalars" >> beam.Create(batches) | "cross scalars" >> CrossFeatures(CROSSES)
        as_rows = out | "rows" >> beam.FlatMap(lambda b: b.to_pylist())
        assert_that(as_rows, equal_to(expected_dicts(rows, CROSSES)), label="scalar columns")
        out2 = p | "lists" >> beam.Create(list_batches) | "cross lists" >> CrossFeatures([tags_cross])
        as_rows2 = out2 | "rows2" >> beam.FlatMap(lambda b: b.to_pylist())
        assert_that(as_rows2, equal_to(expected_dicts(listed, [tags_cross])), label="list columns")
        types = out | beam.Map(lambda b: str(b.schema.field("country_X_hour").type))
        assert_that(types, equal_to(["int64", "int64"]), label="int64 column")


def test_record_batch_errors_keep_the_row_and_the_rest_crosses():
    rows = [{"country": "fr", "hour": 1}, {"country": None, "hour": 2}, {"country": "us", "hour": 3}]
    good = [rows[0], rows[2]]
    with _pipeline() as p:
        crossed, rejected = p | beam.Create([_batch(rows)]) | CrossFeatures(CROSSES[:1]).with_exception_handling()
        assert_that(crossed | beam.FlatMap(lambda b: b.to_pylist()), equal_to(expected_dicts(good, CROSSES[:1])), label="good")
        assert_that(
            rejected | beam.Map(lambda r: (r.element, r.reason, r.feature, r.cross)),
            equal_to([({"country": None, "hour": 2}, errors.NULL, "country", "country_X_hour")]),
            label="bad",
        )


def test_record_batch_null_lists_are_rejected_and_inputs_can_be_dropped():
    rows = [{"tags": ["a", "b"], "hour": 1, "label": 0}, {"tags": None, "hour": 2, "label": 1}, {"tags": [], "hour": 3, "label": 1}]
    cross = Cross(["tags", "hour"], 20)
    expected = tf_bins([[["a", "b"], []], [[1], [3]]], 20)
    with _pipeline() as p:
        crossed, rejected = (
            p | beam.Create([_batch(rows)]) | CrossFeatures([cross], keep_inputs=False).with_exception_handling()
        )
        assert_that(
            crossed | beam.FlatMap(lambda b: b.to_pylist()),
            equal_to([{"label": 0, "tags_X_hour": expected[0]}, {"label": 1, "tags_X_hour": expected[1]}]),
            label="crossed",
        )
        assert_that(rejected | beam.Map(lambda r: (r.element, r.reason)), equal_to([(rows[1], errors.NULL)]), label="null")


def test_a_bad_record_batch_row_fails_the_pipeline_naming_its_row():
    batch = _batch([{"country": "fr", "hour": 1}, {"country": "us", "hour": None}])
    with pytest.raises(Exception, match=r"Feature `hour` of cross `country_X_hour`: missing values .* at row 1"), _pipeline() as p:
        _ = p | beam.Create([batch]) | CrossFeatures(CROSSES[:1])


def test_empty_pcollections():
    with _pipeline() as p:
        crossed, rejected = p | beam.Create([]) | CrossFeatures(CROSSES).with_exception_handling()
        assert_that(crossed, is_empty(), label="no crossed")
        assert_that(rejected, is_empty(), label="no errors")


BAD_ROWS = [
    ({"country": "fr"}, errors.MISSING, "hour"),
    ({"country": None, "hour": 1}, errors.NULL, "country"),
    ({"country": 1.5, "hour": 1}, errors.FLOAT, "country"),
    ({"country": "fr", "hour": True}, errors.BOOL, "hour"),
    ({"country": [["a"]], "hour": 1}, errors.NESTED, "country"),
    ({"country": "fr", "hour": 2**64}, errors.OUT_OF_RANGE, "hour"),
    ({"country": ["a", 1], "hour": 1}, errors.MIXED_KINDS, "country"),
    ({"country": {"a": 1}, "hour": 1}, errors.UNSUPPORTED, "country"),
]


def test_errors_are_routed_with_reasons_and_nothing_is_lost():
    good = make_rows(23)
    inputs = good[:10] + [row for row, _, _ in BAD_ROWS] + good[10:] + ["not a row"]
    with _pipeline() as p:
        pcoll = p | beam.Create(inputs)
        crossed, rejected = pcoll | CrossFeatures(CROSSES[:1]).with_exception_handling()
        assert_that(crossed, equal_to(expected_dicts(good, CROSSES[:1])), label="crossed")
        assert_that(
            rejected | beam.Map(lambda r: (r.element, r.reason, r.feature, r.cross)),
            equal_to([(row, reason, feature, "country_X_hour") for row, reason, feature in BAD_ROWS]
                     + [("not a row", errors.UNSUPPORTED, None, None)]),
            label="rejected",
        )
        counts = (
            (pcoll | "n in" >> beam.combiners.Count.Globally() | "in" >> beam.Map(lambda n: ("in", n)),
             crossed | "n ok" >> beam.combiners.Count.Globally() | "ok" >> beam.Map(lambda n: ("out", n)),
             rejected | "n bad" >> beam.combiners.Count.Globally() | "bad" >> beam.Map(lambda n: ("out", n)))
            | beam.Flatten() | beam.CombinePerKey(sum)
        )
        assert_that(counts, equal_to([("in", len(inputs)), ("out", len(inputs))]), label="conservation")


def test_rejected_message_names_feature_cross_and_value():
    with _pipeline() as p:
        _, rejected = p | beam.Create([{"country": "fr", "hour": 1.5}]) | CrossFeatures(CROSSES[:1]).with_exception_handling()
        assert_that(
            rejected | beam.Map(lambda r: r.message),
            equal_to(["Feature `hour` of cross `country_X_hour`: floats cannot be crossed; only strings and integers "
                      "can (bucketize or cast first). Received: value=1.5"]),
        )


def test_without_exception_handling_a_bad_row_fails_the_pipeline():
    expected = r"Feature `hour` of cross `country_X_hour`: floats .* Received: value=1\.5"
    with pytest.raises(Exception, match=expected), _pipeline() as p:
        _ = p | beam.Create(make_rows(5) + [{"country": "fr", "hour": 1.5}]) | CrossFeatures(CROSSES[:1])


def test_declared_feature_types_reject_the_other_kind():
    rows = [{"country": "fr", "hour": 1}, {"country": "us", "hour": "1"}]
    with _pipeline() as p:
        crossed, rejected = p | beam.Create(rows) | CrossFeatures(
            CROSSES[:1], feature_types={"hour": "int"}).with_exception_handling()
        assert_that(crossed, equal_to(expected_dicts(rows[:1], CROSSES[:1])), label="ok")
        assert_that(rejected | beam.Map(lambda r: (r.reason, r.feature)), equal_to([(errors.MIXED_KINDS, "hour")]), label="bad")


def test_without_declared_types_each_value_is_hashed_as_its_own_kind():
    rows = [{"country": "fr", "hour": 1}, {"country": "fr", "hour": "1"}]
    expected = [tf_bins([["fr"], [1]], 10)[0], tf_bins([["fr"], ["1"]], 10)[0]]
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures([Cross(["country", "hour"], 10, name="c")])
        assert_that(out | beam.Map(lambda r: r["c"]), equal_to(expected))


def test_tensorflow_engine_gives_identical_output_and_rejections():
    rows = make_rows(30) + [row for row, _, _ in BAD_ROWS] + [{"country": ["a", "b"], "hour": [1, 2], "device": b"d", "big": 1}]
    crosses = [*CROSSES, Cross(["country", "hour"], 7, name="oh", output_mode="one_hot")]
    with _pipeline() as p:
        pcoll = p | beam.Create(rows)
        results = {}
        for engine in ("numpy", "tensorflow"):
            ok, bad = pcoll | engine >> CrossFeatures(crosses, engine=engine).with_exception_handling()
            results[engine] = (ok, bad | f"{engine} reasons" >> beam.Map(lambda r: (r.element["country"], r.reason, r.cross)))
        numpy_ok = results["numpy"][0] | "key numpy" >> beam.Map(lambda r: repr(sorted(r.items())))
        tf_ok = results["tensorflow"][0] | "key tf" >> beam.Map(lambda r: repr(sorted(r.items())))
        joined = (
            {"numpy": numpy_ok | "kn" >> beam.Map(lambda k: (k, 1)), "tf": tf_ok | "kt" >> beam.Map(lambda k: (k, 1))}
            | beam.CoGroupByKey() | beam.Map(lambda kv: (len(kv[1]["numpy"]), len(kv[1]["tf"])))
        )
        assert_that(joined, equal_to([(1, 1)] * 30), label="same crossed rows")
        tf_reasons = results["tensorflow"][1] | "tf as list" >> beam.combiners.ToList() | beam.Map(sorted, key=repr)
        numpy_reasons = results["numpy"][1] | "np as list" >> beam.combiners.ToList() | "s" >> beam.Map(sorted, key=repr)
        assert_that(
            (tf_reasons, numpy_reasons) | "both" >> beam.Flatten() | beam.Map(repr) | beam.combiners.Count.PerElement()
            | beam.Map(lambda kv: kv[1]),
            equal_to([2]), label="same rejections",
        )


def test_one_hot_dicts_and_arrow():
    rows = make_rows(12)
    cross = Cross(["country", "hour"], 6, name="oh", output_mode="one_hot")
    ids = tf_bins([[r["country"] for r in rows], [r["hour"] for r in rows]], 6)
    one_hot = [np.eye(6, dtype=np.int64)[i].tolist() for i in ids]
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures([cross])
        assert_that(out | beam.Map(lambda r: r["oh"]), equal_to(one_hot), label="dicts")
        arrow = p | "rb" >> beam.Create([_batch(rows, ROW_SCHEMA)]) | "arrow" >> CrossFeatures([cross])
        assert_that(arrow | beam.FlatMap(lambda b: b.column("oh").to_pylist()), equal_to(one_hot), label="arrow")


def test_timestamps_and_windows_are_kept():
    rows = make_rows(6)
    with _pipeline() as p:
        stamped = p | beam.Create(list(enumerate(rows))) | beam.Map(lambda ir: TimestampedValue(ir[1], 10.0 * ir[0]))
        out = stamped | beam.WindowInto(FixedWindows(25)) | CrossFeatures(CROSSES[:1])
        seen = out | beam.Map(lambda r, t=beam.DoFn.TimestampParam, w=beam.DoFn.WindowParam: (r["country"], float(t), float(w.start)))
        assert_that(seen, equal_to([(r["country"], 10.0 * i, 25.0 * (10 * i // 25)) for i, r in enumerate(rows)]))


def test_an_element_in_several_windows_is_crossed_once_per_window():
    rows = make_rows(9)
    with _pipeline() as p:
        stamped = p | beam.Create(list(enumerate(rows))) | beam.Map(lambda ir: TimestampedValue(ir[1], 10.0 * ir[0]))
        out = stamped | beam.WindowInto(SlidingWindows(20, 10)) | CrossFeatures(CROSSES[:1])
        seen = out | beam.Map(lambda r, w=beam.DoFn.WindowParam: (r["country"], r["hour"], float(w.start)))
        # SlidingWindows(20, 10) puts the element at t = 10 * i into the windows starting at 10 * i - 10 and 10 * i.
        expected = [(r["country"], r["hour"], 10.0 * (i + shift)) for i, r in enumerate(rows) for shift in (-1, 0)]
        assert_that(seen, equal_to(expected))


def test_metrics_count_crossed_and_rejected_rows():
    p = _pipeline()
    p.not_use_test_runner_api = True
    rows = make_rows(9) + [{"country": 1.5, "hour": 1}, {"country": None, "hour": 1}, {"country": 2.5, "hour": 1}]
    _ = p | beam.Create(rows) | CrossFeatures(CROSSES[:1]).with_exception_handling()
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("beam_cross"))["counters"]
    totals = {c.key.metric.name: c.committed for c in counters}
    assert totals == {"rows_crossed": 9, "rows_rejected": 3, "rows_rejected_float": 2, "rows_rejected_null": 1}


def test_pipeline_parity_with_the_numpy_core():
    rows = make_rows(40)
    cross = CROSSES[1]
    core = cross.apply({f: [r[f] for r in rows] for f in cross.features}).tolist()
    with _pipeline() as p:
        out = p | beam.Create(rows) | CrossFeatures([cross])
        assert_that(out | beam.Map(lambda r: (r["country"], r["big"], r["three"])),
                    equal_to([(r["country"], r["big"], b) for r, b in zip(rows, core)]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"crosses": []}, ValueError, "at least one cross"),
        ({"crosses": Cross(["a", "b"], 3)}, TypeError, "must be a list of `Cross`"),
        ({"crosses": [Cross(["a", "b"], 3), Cross(["a", "b"], 4)]}, ValueError, "unique"),
        ({"crosses": [Cross(["a", "b"], 3, name="a")]}, ValueError, "named like a feature"),
        ({"crosses": [{"features": ["a", "b"], "num_bins": 0, "output_mode": "one_hot"}]}, ValueError, "num_bins` >= 1"),
        ({"crosses": CROSSES, "engine": "torch"}, ValueError, "`engine` must be one of"),
        ({"crosses": CROSSES, "keep_inputs": "no"}, TypeError, "`keep_inputs` must be a bool"),
        ({"crosses": CROSSES, "feature_types": {"hour": "float"}}, ValueError, "'string' or 'int'"),
    ],
)
def test_options_are_validated_at_construction(kwargs, error, match):
    crosses = kwargs.pop("crosses")
    with pytest.raises(error, match=match):
        CrossFeatures(crosses, **kwargs)


def test_options_are_keyword_only_and_crosses_accept_dicts():
    with pytest.raises(TypeError):
        CrossFeatures(CROSSES, False)  # noqa: FBT003 - the point is that it is refused
    transform = CrossFeatures([c.to_dict() for c in CROSSES])
    assert transform.crosses == tuple(CROSSES)


def test_label_and_display_data():
    transform = CrossFeatures(CROSSES, engine="tensorflow")
    assert transform.label == "CrossFeatures(country_X_hour, three)"
    items = {key: item.value for key, item in transform.display_data().items()}
    assert items["engine"] == "tensorflow"
    assert "batch_size" not in items
    assert Cross.from_json(items["crosses"].split("; ")[1]) == CROSSES[1]


def test_batch_size_is_deprecated_and_without_effect():
    rows = make_rows(5)
    with pytest.warns(DeprecationWarning, match=r"batch_size=\.\.\.\) has no effect"):
        transform = CrossFeatures(CROSSES[:1], batch_size=2)
    with _pipeline() as p:
        out = p | beam.Create(rows) | transform
        assert_that(out, equal_to(expected_dicts(rows, CROSSES[:1])))


def test_rejected_is_the_documented_named_tuple():
    assert Rejected._fields == ("element", "reason", "feature", "cross", "message", "source")
    assert issubclass(FeatureError, ValueError)


def _string_layouts():
    plain = pa.array(["fr", "us", "fr"])
    layouts = {
        "string": plain, "large_string": plain.cast(pa.large_string()), "binary": plain.cast(pa.binary()),
        "large_binary": plain.cast(pa.large_binary()), "dictionary": plain.dictionary_encode(),
        "large_list<large_binary>": pa.LargeListArray.from_arrays(pa.array([0, 1, 2, 3]), plain.cast(pa.large_binary())),
    }
    if hasattr(pa, "string_view"):  # pyarrow >= 16
        layouts["string_view"] = plain.cast(pa.string_view())
        layouts["binary_view"] = plain.cast(pa.binary_view())
    if hasattr(pa.compute, "run_end_encode"):
        layouts["run_end_encoded"] = pa.compute.run_end_encode(plain)
    return layouts


@pytest.mark.parametrize("layout", sorted(_string_layouts()))
def test_a_declared_kind_rejects_strings_in_every_arrow_layout(layout):
    """A string column declared `int` is rejected row by row whatever its Arrow layout (TFXIO gives
    large_list<large_binary>), and declared `string` it is crossed."""
    from beam_cross.core.elements import ElementCrosser

    column = _string_layouts()[layout]
    batch = pa.RecordBatch.from_arrays([column, pa.array([1, 2, 3])], names=["country", "hour"])
    cross = Cross(["country", "hour"], 100)
    out, rejected = ElementCrosser([cross], feature_types={"country": "int"}).cross_record_batch(batch)
    assert out is None
    assert [(r.reason, r.feature) for r in rejected] == [(errors.MIXED_KINDS, "country")] * 3
    out, rejected = ElementCrosser([cross], feature_types={"country": "string"}).cross_record_batch(batch)
    assert rejected == []
    ids = out.column(cross.name).to_pylist()
    flat = [i[0] if isinstance(i, list) else i for i in ids]
    assert flat == hashed_cross([["fr", "us", "fr"], [1, 2, 3]], 100).tolist()


class Tagged(typing.NamedTuple):
    tags: typing.Any  # lists in some rows, scalars in others: Beam can only type it Any
    hour: int


beam.coders.registry.register_coder(Tagged, beam.coders.RowCoder)


def test_a_feature_typed_any_gives_a_cross_typed_any_that_carries_lists_and_ints():
    # Typed `int`, the cross field made RowCoder fail on the first list ("an integer is required"),
    # with or without exception handling.
    rows = [Tagged(["a", "b"], 1), Tagged("x", 2), Tagged([], 3)]
    expected = [tf_bins([[r.tags], [r.hour]], 100)[0] for r in rows]  # a list for a list row, else an int
    with _pipeline() as p:
        typed = p | beam.Create(rows).with_output_types(Tagged)
        crossed, rejected = typed | CrossFeatures([Cross(["tags", "hour"], 100)]).with_exception_handling()
        assert crossed.element_type.get_type_for("tags_X_hour") == typing.Any
        assert_that(crossed | beam.Map(lambda r: r.tags_X_hour), equal_to(expected))
        assert_that(rejected, is_empty(), label="none rejected")


def test_a_stream_keeps_each_elements_timestamp_window_and_pane():
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_stream import TestStream

    rows = make_rows(6)
    stream = TestStream().add_elements([TimestampedValue(r, 10.0 * i) for i, r in enumerate(rows[:3])])
    stream = stream.advance_watermark_to(30).add_elements([TimestampedValue(r, 10.0 * (i + 3)) for i, r in enumerate(rows[3:])])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    # The FnApiRunner runs no TestStream; Beam's bundle-based DirectRunner does (in streaming mode).
    with beam.Pipeline("BundleBasedDirectRunner", options=options) as p:
        windowed = p | stream | beam.WindowInto(FixedWindows(25))
        out = windowed | CrossFeatures(CROSSES[:1])
        seen = out | beam.Map(
            lambda r, t=beam.DoFn.TimestampParam, w=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam:
            (r["country"], r["country_X_hour"], float(t), float(w.start), pane.is_first, pane.is_last))
        bins = tf_bins([[r["country"] for r in rows], [r["hour"] for r in rows]], CROSSES[0].num_bins)
        assert_that(seen, equal_to([(r["country"], b, 10.0 * i, 25.0 * (10 * i // 25), True, True)
                                    for i, (r, b) in enumerate(zip(rows, bins))]))


def test_a_named_tuple_under_postponed_annotations_declares_its_kinds_and_an_int_cross():
    # This module has `from __future__ import annotations`: Beam reads Event's fields as Any.
    events = [Event("fr", 3, 1), Event(7, 3, 1)]  # `country: str` holding an int
    with _pipeline() as p:
        crossed, rejected = (p | beam.Create(events).with_output_types(Event)
                             | CrossFeatures(CROSSES[:1]).with_exception_handling())
        assert crossed.element_type.get_type_for("country_X_hour") is int
        assert_that(crossed | beam.Map(lambda r: r.country_X_hour), equal_to(tf_bins([["fr"], [3]], 100)))
        assert_that(rejected | beam.Map(lambda r: (r.reason, r.feature)), equal_to([(errors.MIXED_KINDS, "country")]),
                    label="declared kind")
