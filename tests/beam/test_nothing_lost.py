"""Nothing lost, nothing wrong: ``CrossFeatures`` with hostile rows, batched writers and thresholds.

Runs on the FnApiRunner. Expected bins come from ``tf.sparse.cross_hashed`` (``test_transforms.tf_bins``);
written files are read back and counted.
"""

# No `from __future__ import annotations`: Beam reads the batch type of `process_batch` at runtime.
import csv
import json
import os
import typing
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to
from test_transforms import tf_bins

from beam_cross import Cross, FeatureError, hashed_cross
from beam_cross.beam.transforms import CrossFeatures
from beam_cross.core import errors
from beam_cross.core.elements import ElementCrosser

CROSS = Cross(["country", "hour"], 1000, name="c")


class Event(typing.NamedTuple):
    id: int
    country: str
    hour: int


def _events(n):
    return [Event(i, f"country-{i % 7}", (i * 5) % 24 - 2) for i in range(n)]


def _expected(events):
    bins = tf_bins([[e.country for e in events], [e.hour for e in events]], CROSS.num_bins)
    return sorted((e.id, e.country, e.hour, b) for e, b in zip(events, bins))


@pytest.mark.parametrize("n", [5, 2500])
def test_write_to_json_and_csv_right_after_cross_features_write_every_row(tmp_path, n):
    events = _events(n)
    with beam.Pipeline("FnApiRunner") as p:
        crossed = p | beam.Create(events).with_output_types(Event) | CrossFeatures([CROSS])
        _ = crossed | beam.io.WriteToJson(str(tmp_path / "json" / "out"))
        _ = crossed | beam.io.WriteToCsv(str(tmp_path / "csv" / "out"))
    from_json = [json.loads(line) for path in (tmp_path / "json").glob("out*") for line in path.read_text().splitlines()]
    from_csv = [row for path in (tmp_path / "csv").glob("out*") for row in csv.DictReader(path.open())]
    assert (len(from_json), len(from_csv)) == (n, n)
    assert sorted((r["id"], r["country"], r["hour"], r["c"]) for r in from_json) == _expected(events)
    assert sorted((int(r["id"]), r["country"], int(r["hour"]), int(r["c"])) for r in from_csv) == _expected(events)


class _WriteBatches(beam.DoFn):
    """A batched consumer of dicts (``process_batch``), as Beam's DataFrame writers are of rows."""

    def __init__(self, directory):
        self._directory = directory

    def process_batch(self, batch: typing.List[typing.Any]) -> typing.Iterator[typing.List[typing.Any]]:  # noqa: UP006 - Beam reads typing generics
        with open(f"{self._directory}/{uuid.uuid4().hex}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in batch)
        yield [len(batch)]


@pytest.mark.parametrize("n", [5, 2500])
def test_a_batched_consumer_of_dicts_right_after_cross_features_gets_every_row(tmp_path, n):
    events = _events(n)
    with beam.Pipeline("FnApiRunner") as p:
        crossed = p | beam.Create([e._asdict() for e in events]) | CrossFeatures([CROSS])
        _ = crossed | beam.ParDo(_WriteBatches(str(tmp_path)))
    written = [json.loads(line) for path in tmp_path.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(written) == n
    assert sorted((r["id"], r["country"], r["hour"], r["c"]) for r in written) == _expected(events)


def _outcomes(crossed, rejected):
    """``(id, "ok", bin)`` and ``(id, reason, feature)`` for dict outputs, one PCollection."""
    return (
        crossed | "ok" >> beam.Map(lambda r: (r["id"], "ok", r["c"])),
        rejected | "bad" >> beam.Map(lambda r: (r.element["id"], r.reason, r.feature)),
    ) | beam.Flatten()


HOSTILE = [
    # numpy integers next to None, floats and strings in one column
    ({"country": "fr", "hour": np.int64(1)}, ("ok", "fr", 1)),
    ({"country": "fr", "hour": np.uint8(7)}, ("ok", "fr", 7)),
    ({"country": "fr", "hour": None}, (errors.NULL, "hour")),
    ({"country": "fr", "hour": 2.5}, (errors.FLOAT, "hour")),
    ({"country": "fr", "hour": "7"}, ("ok", "fr", "7")),
    ({"country": "fr", "hour": np.uint64(2**64 - 1)}, ("ok", "fr", -1)),
    ({"country": "fr", "hour": np.array(5)}, ("ok", "fr", 5)),
    ({"country": np.array("de"), "hour": 5}, ("ok", "de", 5)),
    ({"country": "fr", "hour": np.array(1.5)}, (errors.FLOAT, "hour")),
    ({"country": "fr", "hour": np.float16(1.5)}, (errors.FLOAT, "hour")),
    ({"country": "fr", "hour": np.bool_(True)}, (errors.BOOL, "hour")),
    ({"country": "fr", "hour": np.complex64(1)}, (errors.FLOAT, "hour")),
    ({"country": "fr", "hour": np.longdouble(1)}, (errors.FLOAT, "hour")),
    ({"country": {"fr", "de"}, "hour": 1}, (errors.UNSUPPORTED, "country")),
    ({"country": bytearray(b"fr"), "hour": 1}, (errors.UNSUPPORTED, "country")),
    ({"country": "fr", "hour": 1, "c": "already here"}, (errors.NAME_CLASH, "c")),
]


def test_routing_never_raises_and_each_row_gets_its_own_outcome():
    rows = [{"id": i, **row} for i, (row, _) in enumerate(HOSTILE)]
    good = [(i, outcome) for i, (_, outcome) in enumerate(HOSTILE) if outcome[0] == "ok"]
    bins = [tf_bins([[country], [hour]], CROSS.num_bins)[0] for _, (_, country, hour) in good]
    expected = [(i, "ok", b) for (i, _), b in zip(good, bins)]
    expected += [(i, *outcome) for i, (_, outcome) in enumerate(HOSTILE) if outcome[0] != "ok"]
    with beam.Pipeline("FnApiRunner") as p:
        crossed, rejected = p | beam.Create(rows) | CrossFeatures([CROSS]).with_exception_handling()
        assert_that(_outcomes(crossed, rejected), equal_to(expected))


def test_an_np_str_is_every_character_it_holds():
    # NumPy's str() and repr hide an np.str_'s trailing NULs; the value itself keeps them.
    crosser = ElementCrosser([CROSS])
    outputs, _ = crosser.cross_elements([{"country": np.str_("fr\x00"), "hour": 1}, {"country": "fr", "hour": 2}])
    assert [o["c"] for o in outputs] == [tf_bins([["fr\x00"], [1]], 1000)[0], tf_bins([["fr"], [2]], 1000)[0]]


def test_a_lone_surrogate_is_rejected_beside_good_rows():
    # Not in a pipeline: Beam's own coders cannot encode a lone surrogate (they fail while
    # sampling element sizes), so such a string cannot travel through a Beam PCollection at all.
    crosser = ElementCrosser([CROSS])
    rows = [{"country": "fr", "hour": 1}, {"country": "\ud800", "hour": 1}, {"country": "de", "hour": np.int64(2)}]
    outputs, rejected = crosser.cross_elements(rows)
    assert [o["c"] if o else None for o in outputs] == [*tf_bins([["fr"], [1]], 1000), None, *tf_bins([["de"], [2]], 1000)]
    assert (rejected[1].reason, rejected[1].feature) == (errors.UNSUPPORTED, "country")
    assert "valid Unicode" in rejected[1].message


def _malformed_batch(_):
    tags = pa.ListArray.from_arrays(pa.array([0, 2, 1, 3], pa.int32()), pa.array(["a", "b", "c"]))
    return pa.RecordBatch.from_arrays([pa.array([0, 1, 2]), tags, pa.array([1, 2, 3])], ["id", "tags", "hour"])


def test_record_batches_that_cannot_be_crossed_have_every_row_rejected():
    duplicate = pa.RecordBatch.from_arrays([pa.array([10, 11]), pa.array(["fr", "de"]), pa.array(["x", "y"]), pa.array([1, 2])],
                                           ["id", "country", "country", "hour"])
    named_like_cross = pa.RecordBatch.from_pylist([{"id": 20, "country": "fr", "hour": 1, "c": 0}])
    fine = pa.RecordBatch.from_pylist([{"id": 30, "country": "fr", "hour": 1}])
    tags_cross = Cross(["tags", "hour"], 10, name="c")
    with beam.Pipeline("FnApiRunner") as p:
        crossed, rejected = (
            p | beam.Create([duplicate, named_like_cross, fine]) | CrossFeatures([CROSS]).with_exception_handling()
        )
        assert_that(crossed | beam.FlatMap(lambda b: b.column("id").to_pylist()), equal_to([30]), label="crossed")
        ids = rejected | beam.Map(lambda r: (r.element.column("id")[0].as_py() if isinstance(r.element, pa.RecordBatch)
                                               else r.element["id"], r.reason, r.feature))
        assert_that(ids, equal_to([(10, errors.NAME_CLASH, "country"), (11, errors.NAME_CLASH, "country"),
                                   (20, errors.NAME_CLASH, "c")]), label="rejected")
        # Built in the pipeline: Arrow cannot serialize a malformed array, so it never crosses a shuffle.
        ok, bad = (p | "one" >> beam.Create([0]) | "malformed" >> beam.Map(_malformed_batch)
                   | "cross malformed" >> CrossFeatures([tags_cross]).with_exception_handling())
        assert_that(ok, equal_to([]), label="nothing crossed")
        assert_that(bad | beam.Map(lambda r: (r.element, r.reason, r.feature)),
                    equal_to([({"id": i, "hour": i + 1}, errors.MALFORMED, "tags") for i in range(3)]), label="malformed")


def test_malformed_list_offsets_are_a_feature_error_naming_the_row():
    tags = _malformed_batch(0).column("tags")
    with pytest.raises(FeatureError, match=r"Feature `tags`: the list offsets decrease .* at row 1") as info:
        hashed_cross({"tags": tags, "hour": [1, 2, 3]}, 10)
    assert info.value.reason == errors.MALFORMED


def test_malformed_string_offsets_are_a_feature_error_naming_the_row():
    offsets = pa.py_buffer(np.array([0, 3, 1, 4], np.int32).tobytes())
    names = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(b"abcd"))
    with pytest.raises(FeatureError, match=r"Feature `name`: the string offsets decrease .* at row 1"):
        hashed_cross({"name": names, "hour": [1, 2, 3]}, 10)
    tags = pa.ListArray.from_arrays(pa.array([0, 1, 3], pa.int32()), names)
    with pytest.raises(FeatureError, match=r"Feature `tags`: the string offsets decrease .* at row 1"):
        hashed_cross({"tags": tags, "hour": [1, 2]}, 10)
    batch = pa.RecordBatch.from_arrays([names, pa.array([1, None, 3])], ["country", "hour"])
    crossed, rejected = ElementCrosser([CROSS]).cross_record_batch(batch)
    assert crossed is None
    assert [(r.element, r.reason, r.feature) for r in rejected] == [({"hour": h}, errors.MALFORMED, "country") for h in (1, None, 3)]


def test_a_float_beside_an_int_in_the_core_is_rejected_naming_its_row():
    with pytest.raises(FeatureError, match=r"floats cannot be crossed.* at row 1") as info:
        hashed_cross([[7, np.float16(1.5)], [1, 1]], 1000)
    assert (info.value.feature, info.value.row, info.value.reason) == ("features[0]", 1, errors.FLOAT)


def test_without_exception_handling_a_field_named_like_the_cross_fails_naming_it():
    with pytest.raises(Exception, match=r"the element already has a field `c`"), beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([{"country": "fr", "hour": 1, "c": 0}]) | CrossFeatures([CROSS])


def _mostly_bad(n_bad, n):
    return [{"id": i, "country": "fr", "hour": 1.5 if i < n_bad else i} for i in range(n)]


def test_threshold_fails_a_bundle_with_too_many_rejected_rows():
    with pytest.raises(Exception, match=r"rejected 5 of the 10 rows of a bundle \(50.00%\).*threshold=0.4"), \
            beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create(_mostly_bad(5, 10)) | CrossFeatures([CROSS]).with_exception_handling(threshold=0.4)


def test_threshold_lets_a_bundle_at_the_threshold_pass():
    with beam.Pipeline("FnApiRunner") as p:
        crossed, rejected = p | beam.Create(_mostly_bad(5, 10)) | CrossFeatures([CROSS]).with_exception_handling(threshold=0.5)
        assert_that(_outcomes(crossed, rejected) | beam.Map(lambda o: o[1] == "ok"), equal_to([True] * 5 + [False] * 5))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.5", True, None])
def test_threshold_is_validated(threshold):
    with pytest.raises(ValueError, match=r"`threshold` must be a number from 0 to 1. Received: threshold="):
        CrossFeatures([CROSS]).with_exception_handling(threshold=threshold)


def test_a_record_batch_in_two_windows_is_crossed_once_per_window():
    from apache_beam.transforms.window import SlidingWindows, TimestampedValue

    batch = pa.RecordBatch.from_pylist([{"id": 1, "country": "fr", "hour": 3}, {"id": 2, "country": "de", "hour": 4}])
    bins = tf_bins([["fr", "de"], [3, 4]], CROSS.num_bins)
    with beam.Pipeline("FnApiRunner") as p:
        stamped = p | beam.Create([batch]) | beam.Map(lambda b: TimestampedValue(b, 15.0))
        crossed = stamped | beam.WindowInto(SlidingWindows(20, 10)) | CrossFeatures([CROSS])
        seen = crossed | beam.FlatMap(lambda b, w=beam.DoFn.WindowParam: [(r["id"], r["c"], float(w.start)) for r in b.to_pylist()])
        assert_that(seen, equal_to([(i, b, start) for i, b in zip((1, 2), bins) for start in (0.0, 10.0)]))


def test_outcomes_do_not_depend_on_the_hash_seed():
    import subprocess
    import sys

    script = (
        "from beam_cross import Cross; from beam_cross.core.elements import ElementCrosser\n"
        "rows = [{'country': {'fr', 'de', 'us'}, 'hour': 1}, {'country': 'fr', 'hour': 1}]\n"
        "out, rejected = ElementCrosser([Cross(['country', 'hour'], 1000, name='c')]).cross_elements(rows)\n"
        "print(rejected[0].reason, out[1]['c'])\n"
    )
    runs = {
        subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout
        for seed in ("1", "2", "3")
    }
    expected_bin = tf_bins([["fr"], [1]], 1000)[0]
    assert len(runs) == 1
    reason, crossed = runs.pop().split()
    assert (reason, int(crossed)) == (errors.UNSUPPORTED, expected_bin)


def test_a_record_batch_with_a_duplicate_uncrossed_column_is_crossed_and_its_rejected_rows_keep_both():
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2]), pa.array(["fr", "de"]), pa.array([3, None]), pa.array(["x", "y"]), pa.array(["p", "q"])],
        ["id", "country", "hour", "label", "label"],
    )
    crossed, rejected = ElementCrosser([CROSS]).cross_record_batch(batch)
    assert crossed.schema.names == ["id", "country", "hour", "label", "label", "c"]
    assert crossed.column("c").to_pylist() == tf_bins([["fr"], [3]], CROSS.num_bins)
    assert [(r.reason, r.feature) for r in rejected] == [(errors.NULL, "hour")]
    assert rejected[0].element.equals(batch.slice(1, 1))  # a dict would lose one of the two labels

