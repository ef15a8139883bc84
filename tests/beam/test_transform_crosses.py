"""CrossFeatures with transformed features (Bucketize, Lookup, Identity, Hash): dicts, Rows, RecordBatches
with Arrow float columns, Tables and DataFrames give the ids of ``tests/golden/transforms.json`` (made by
running TF's ``crossed_column`` and Keras ``HashedCrossing`` over preprocessors); a value a transform
cannot take is a rejected row with a reason."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import Bucketize, Cross, CrossFeatures, FeatureError, Lookup
from beam_cross.beam.frames import output_schema
from tests.conftest import GOLDEN_DIR

VECTORS = json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"]
CROSS_CASES = {c["id"]: c for c in VECTORS if "features" in c}
RUNNER = "FnApiRunner"


def _case(case_id):
    case = CROSS_CASES[case_id]
    cross = Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"], "name": "crossed"})
    columns = {}
    for name, column in case["columns"].items():
        kind = column["kind"]
        columns[name] = [v if kind == "str" else (float(v) if kind.startswith("float") else int(v)) for v in column["values"]]
    expected = [int(row[0]) for row in case["expected"]]
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return cross, rows, columns, expected


@pytest.mark.parametrize("case_id", sorted(CROSS_CASES))
def test_dicts_get_the_ids_of_tensorflow(case_id):
    cross, rows, _, expected = _case(case_id)
    with beam.Pipeline(RUNNER) as p:
        out = p | beam.Create(rows) | CrossFeatures([cross])
        assert_that(out | beam.Map(lambda r: (tuple(sorted((k, v) for k, v in r.items() if k != "crossed")), r["crossed"])),
                    equal_to([(tuple(sorted(r.items())), e) for r, e in zip(rows, expected)]))


def test_record_batches_tables_and_data_frames_with_a_float_column():
    cross, rows, columns, expected = _case("crossed_column_bucketized_x_raw")
    batch = pa.record_batch({"age": pa.array(columns["age"], pa.float32()), "country": pa.array(columns["country"])})
    pytest.importorskip("pandas")
    with beam.Pipeline(RUNNER) as p:
        batches = p | "Batches" >> beam.Create([batch.slice(0, 10), batch.slice(10)]) | "CrossBatches" >> CrossFeatures([cross])
        assert_that(batches | beam.FlatMap(lambda b: b.column("crossed").to_pylist()), equal_to(expected), label="batches")
        tables = p | "Tables" >> beam.Create([pa.Table.from_batches([batch])]) | "CrossTables" >> CrossFeatures([cross])
        assert_that(tables | "TableIds" >> beam.FlatMap(lambda t: t.column("crossed").to_pylist()), equal_to(expected), label="tables")
        frames = p | "Frames" >> beam.Create([batch.to_pandas()]) | "CrossFrames" >> CrossFeatures([cross])
        assert_that(frames | "FrameIds" >> beam.FlatMap(lambda f: f["crossed"].tolist()), equal_to(expected), label="frames")
    schema = output_schema(batch.schema, [cross])
    assert schema.field("crossed").type == pa.int64()


def test_list_columns_are_transformed_value_by_value():
    cross = Cross([Bucketize("age", [18, 25]), "country"], 1000, name="crossed")
    lists = pa.record_batch({"age": pa.array([[17.0, 30.0], []], pa.list_(pa.float64())), "country": pa.array([["fr"], ["us"]])})
    want = cross.apply({"age": [[17.0, 30.0], []], "country": [["fr"], ["us"]]}).to_pylist()
    with beam.Pipeline(RUNNER) as p:
        out = p | beam.Create([lists]) | CrossFeatures([cross])
        assert_that(out | beam.FlatMap(lambda b: b.column("crossed").to_pylist()), equal_to(want))


def test_schema_rows_type_a_bucketized_cross_as_int():
    cross, rows, _, expected = _case("crossed_column_bucketized_x_raw")
    with beam.Pipeline(RUNNER) as p:
        out = p | beam.Create([beam.Row(age=r["age"], country=r["country"]) for r in rows]) | CrossFeatures([cross])
        assert out.element_type.get_type_for("crossed") is int
        assert_that(out | beam.Map(lambda r: r.crossed), equal_to(expected))


def test_values_a_transform_cannot_take_are_rejected_with_a_reason():
    cross = Cross([Bucketize("age", [18]), Lookup("country", ["fr"], num_oov_indices=0)], 10)
    rows = [{"age": "old", "country": "fr"}, {"age": 3, "country": 1.5}, {"age": 30, "country": "de"},
            {"age": None, "country": "fr"}, {"country": "fr"}, {"age": 30, "country": "fr"}]
    good = cross.apply({"age": [30], "country": ["fr"]}).tolist()
    with beam.Pipeline(RUNNER) as p:
        crossed, errors = p | beam.Create(rows) | CrossFeatures([cross]).with_exception_handling()
        assert_that(crossed | beam.Map(lambda r: r["age_X_country"]), equal_to(good), label="crossed")
        assert_that(errors | beam.Map(lambda r: (r.element.get("age", "-"), r.reason, r.feature)),
                    equal_to([("old", "wrong_kind", "age"), (3, "float", "country"), (30, "oov", "country"),
                              (None, "null", "age"), ("-", "missing", "age")]), label="reasons")


def test_a_bad_value_fails_the_pipeline_without_error_handling():
    cross = Cross([Bucketize("age", [18]), "country"], 10)
    # The runner may wrap the FeatureError; its message names the feature, the problem and the value.
    with pytest.raises(Exception, match=r"Feature `age` of cross `age_X_country`: `Bucketize` takes ints or floats, not strings"), \
            beam.Pipeline(RUNNER) as p:
        _ = p | beam.Create([{"age": "x", "country": "fr"}]) | CrossFeatures([cross])


def test_hashed_cross_raises_the_feature_error():
    with pytest.raises(FeatureError, match=r"Feature `age`: `Bucketize` takes ints or floats, not strings") as caught:
        Cross([Bucketize("age", [18]), "country"], 10).apply({"age": ["x"], "country": ["fr"]})
    assert caught.value.reason == "wrong_kind" and caught.value.row == 0


def test_the_tensorflow_engine_crosses_the_same_ids():
    cross, rows, _, expected = _case("crossed_column_vocabulary_x_identity")
    with beam.Pipeline(RUNNER) as p:
        out = p | beam.Create(rows) | CrossFeatures([cross], engine="tensorflow")
        assert_that(out | beam.Map(lambda r: r["crossed"]), equal_to(expected))


def test_numpy_columns_of_a_cross_spec_round_trip_through_yaml():
    yaml = pytest.importorskip("yaml")
    cross, _, columns, expected = _case("feature_space_age_x_sex")
    again = Cross.from_dict(yaml.safe_load(yaml.safe_dump(cross.to_dict())))
    assert again == cross
    np.testing.assert_array_equal(again.apply({k: np.array(v) for k, v in columns.items()}), expected)
