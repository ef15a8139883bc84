"""``CrossFeatures`` on pyarrow Tables (Beam's Parquet IO, real files) and pandas DataFrames.

Expected ids come from ``beam_cross.hashed_cross`` (itself checked against TensorFlow in
``test_cross.py``) on the same values; every input row must come out crossed or rejected.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import apache_beam as beam
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import Cross, hashed_cross
from beam_cross.beam.frames import output_schema
from beam_cross.beam.transforms import CrossFeatures
from beam_cross.core import errors

CROSSES = [Cross(["country", "hour"], 1000), Cross(["tags", "hour"], 50, name="tags_hour")]
SCHEMA = pa.schema([("row_id", pa.int64()), ("country", pa.string()), ("hour", pa.int64()),
                    ("tags", pa.list_(pa.string()))])


def make_rows(start, n):
    rows = []
    for i in range(start, start + n):
        rows.append({
            "row_id": i,
            "country": None if i % 17 == 5 else ["fr", "us", "日本", ""][i % 4],
            "hour": (i * 7) % 24,
            "tags": None if i % 23 == 9 else [["a", "b"], [], ["c"]][i % 3],
        })
    return rows


def expected_crossed(rows):
    """row_id -> the row with its cross columns, from ``hashed_cross`` on the same values."""
    countries = hashed_cross([[r["country"] for r in rows], [r["hour"] for r in rows]], 1000).tolist()
    tags = hashed_cross([[r["tags"] for r in rows], [r["hour"] for r in rows]], 50).to_pylist()
    return {r["row_id"]: {**r, "country_X_hour": c, "tags_hour": t} for r, c, t in zip(rows, countries, tags)}


def bad_reason(row):
    return errors.NULL if row["country"] is None or row["tags"] is None else None


def test_parquet_batched_read_cross_write_keeps_every_row(tmp_path):
    inputs = []
    for part, (start, n) in enumerate([(0, 130), (130, 70)]):
        rows = make_rows(start, n)
        inputs += rows
        pq.write_table(pa.Table.from_pylist(rows, SCHEMA), tmp_path / f"in-{part}.parquet", row_group_size=40)
    good = [r for r in inputs if bad_reason(r) is None]
    bad = [r for r in inputs if bad_reason(r) is not None]
    assert good and bad
    out_schema = output_schema(SCHEMA, CROSSES)
    with beam.Pipeline("FnApiRunner") as p:
        tables = p | beam.io.ReadFromParquetBatched(str(tmp_path / "in-*.parquet"))
        crossed, rejected = tables | CrossFeatures(CROSSES).with_exception_handling()
        _ = crossed | beam.io.WriteToParquetBatched(str(tmp_path / "out" / "crossed"), schema=out_schema)
        _ = (rejected
             | beam.Map(lambda r: json.dumps({"row_id": r.element["row_id"], "reason": r.reason,
                                              "feature": r.feature, "kind": type(r).__name__}))
             | beam.io.WriteToText(str(tmp_path / "out" / "rejected")))
    written = pa.concat_tables(pq.read_table(f) for f in sorted(glob.glob(str(tmp_path / "out" / "crossed*"))))
    assert written.schema.equals(out_schema)
    got = {row["row_id"]: row for row in written.to_pylist()}
    assert written.num_rows == len(got) == len(good)
    assert got == expected_crossed(good)
    rejected_rows = [json.loads(line) for f in glob.glob(str(tmp_path / "out" / "rejected*"))
                     for line in Path(f).read_text().splitlines()]
    assert sorted(r["row_id"] for r in rejected_rows) == sorted(r["row_id"] for r in bad)
    by_id = {r["row_id"]: r for r in bad}
    for record in rejected_rows:
        row = by_id[record["row_id"]]
        assert record == {"row_id": row["row_id"], "reason": errors.NULL, "kind": "Rejected",
                          "feature": "country" if row["country"] is None else "tags"}
    assert len(got) + len(rejected_rows) == len(inputs)


def test_tables_come_back_as_tables_and_empty_tables_are_kept():
    rows = [r for r in make_rows(0, 12) if bad_reason(r) is None]
    table = pa.Table.from_batches([pa.RecordBatch.from_pylist(rows[:5], SCHEMA),
                                   pa.RecordBatch.from_pylist(rows[5:], SCHEMA)])  # two chunks
    empty = SCHEMA.empty_table()
    with beam.Pipeline("FnApiRunner") as p:
        out = p | beam.Create([table, empty]) | CrossFeatures(CROSSES, keep_inputs=False)
        assert_that(out | beam.Map(lambda t: (type(t).__name__, t.num_rows, t.schema.names)),
                    equal_to([("Table", len(rows), ["row_id", "country_X_hour", "tags_hour"]),
                              ("Table", 0, ["row_id", "country_X_hour", "tags_hour"])]), label="tables")
        expected = [{"row_id": i, "country_X_hour": e["country_X_hour"], "tags_hour": e["tags_hour"]}
                    for i, e in expected_crossed(rows).items()]
        assert_that(out | beam.FlatMap(lambda t: t.to_pylist()), equal_to(expected), label="rows")


def _frame_rows(frame):
    return [(label, *row) for label, row in zip(frame.index.tolist(), frame.itertuples(index=False, name=None))]


def test_dataframes_in_dataframes_out_with_their_index_and_bad_rows_routed():
    first = pd.DataFrame({"country": ["fr", None, "us", "de"], "hour": [1, 2, 3, 4]}, index=[10, 11, 12, 13])
    second = pd.DataFrame({"country": ["jp", "fr"], "hour": [5, 6]})  # a RangeIndex
    mixed = pd.DataFrame({"country": ["fr", 7, "us"], "hour": [7, 8, 9]}, index=["a", "b", "c"])  # not Arrow-typable
    cross = [Cross(["country", "hour"], 100)]

    def expected(frame, keep):
        kept = frame.loc[keep]
        ids = hashed_cross([kept["country"].tolist(), kept["hour"].tolist()], 100).tolist()
        return [(label, c, h, i) for label, c, h, i in zip(kept.index, kept["country"], kept["hour"], ids)]

    with beam.Pipeline("FnApiRunner") as p:
        crossed, rejected = (p | beam.Create([first, second, mixed])
                             | CrossFeatures(cross, feature_types={"country": "string"}).with_exception_handling())
        assert_that(crossed | "kinds" >> beam.Map(lambda f: type(f).__name__),
                    equal_to(["DataFrame"] * 3), label="kinds")
        assert_that(
            crossed | beam.FlatMap(_frame_rows),
            equal_to(expected(first, [10, 12, 13]) + expected(second, [0, 1]) + expected(mixed, ["a", "c"])),
            label="rows",
        )
        assert_that(rejected | beam.Map(lambda r: (r.element, r.reason, r.feature)),
                    equal_to([({"country": None, "hour": 2}, errors.NULL, "country"),
                              ({"country": 7, "hour": 8}, errors.MIXED_KINDS, "country")]), label="rejected")


def test_a_bad_dataframe_row_fails_naming_the_feature_and_row():
    frame = pd.DataFrame({"country": ["fr", "us"], "hour": [1.0, 2.5]})
    expected = r"Feature `hour` of cross `country_X_hour`: floats .* Received: value=1\.0 at row 0"
    with pytest.raises(Exception, match=expected), beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([frame]) | CrossFeatures([Cross(["country", "hour"], 100)])


def test_an_element_that_is_not_a_row_is_named_in_plain_words():
    cross = [Cross(["country", "hour"], 100)]
    series = pd.Series(["fr", "us"])
    with beam.Pipeline("FnApiRunner") as p:
        _, rejected = (p | beam.Create([series, [1, 2]]).with_output_types(object)
                       | CrossFeatures(cross).with_exception_handling())
        # What was received, in words (a pandas repr after the colon varies across pandas versions).
        assert_that(rejected | beam.Map(lambda r: (r.reason, r.feature, r.message.split(" Received: ")[1])
                                        if isinstance(r.element, list) else
                                        (r.reason, r.feature, r.message.split(" Received: ")[1].split(":")[0])),
                    equal_to([(errors.UNSUPPORTED, None, "a pandas.Series of 2 items"),
                              (errors.UNSUPPORTED, None, "a list of 2 items: [1, 2]")]))
    expected = r"pandas DataFrames; this element is none of them\. Received: a list of 2 items"
    with pytest.raises(Exception, match=expected), beam.Pipeline("FnApiRunner") as p:
        _ = p | beam.Create([[1, 2]]).with_output_types(object) | CrossFeatures(cross)


def test_output_schema_checks_its_arguments():
    with pytest.raises(TypeError, match="`input_schema` must be a pyarrow.Schema. Received: input_schema=1"):
        output_schema(1, CROSSES)
    with pytest.raises(ValueError, match=r"needs features \['tags'\], which the input does not have"):
        output_schema(pa.schema([("country", pa.string()), ("hour", pa.int64())]), CROSSES)
