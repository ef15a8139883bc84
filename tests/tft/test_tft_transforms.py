"""beam_cross.tft with transformed features: a tf.Transform pipeline (AnalyzeAndTransformDataset) and
its served transform_fn give the ids of ``tests/golden/transforms.json`` (TF's ``crossed_column``,
Keras ``HashedCrossing`` over Discretization / StringLookup), for a float32 feature through Bucketize,
vocabulary and identity ids. tensorflow_transform is imported inside the tests (TF_USE_LEGACY_KERAS)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from beam_cross import Cross
from tests.conftest import GOLDEN_DIR

VECTORS = {c["id"]: c for c in json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"] if "features" in c}
CASES = ["crossed_column_bucketized_x_raw", "crossed_column_vocabulary_x_identity", "feature_space_age_x_sex"]
DTYPES = {"str": tf.string, "float32": tf.float32, "int64": tf.int64}


def _case(case_id):
    case = VECTORS[case_id]
    cross = Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"], "name": "crossed"})
    columns = {}
    for name, column in case["columns"].items():
        kind = column["kind"]
        columns[name] = (kind, [v if kind == "str" else (float(v) if kind.startswith("float") else int(v)) for v in column["values"]])
    return cross, columns, [int(row[0]) for row in case["expected"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    import beam_cross.tft as bc_tft

    out = {}
    for case_id in CASES:
        cross, columns, expected = _case(case_id)
        spec = {name: tf.io.FixedLenFeature([], DTYPES[kind]) for name, (kind, _) in columns.items()}
        rows = [dict(zip(columns, values)) for values in zip(*(v for _, v in columns.values()))]
        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
        work = tmp_path_factory.mktemp(case_id)
        with beam.Pipeline("FnApiRunner") as p, tft_beam.Context(temp_dir=str(work / "tmp")):
            data = p | beam.Create(rows)
            (transformed, _), transform_fn = (data, metadata) | tft_beam.AnalyzeAndTransformDataset(
                bc_tft.make_preprocessing_fn([cross])
            )
            _ = transform_fn | tft_beam.WriteTransformFn(str(work / "fn"))
            _ = transformed | beam.Map(lambda r: int(r["crossed"])) | beam.io.WriteToText(str(work / "ids"), shard_name_template="")
        trained = [int(line) for line in (work / "ids").read_text().split()]
        out[case_id] = (columns, expected, trained, str(work / "fn"))
    return out


@pytest.mark.parametrize("case_id", CASES)
def test_training_output_has_the_ids_of_tensorflow(runs, case_id):
    _, expected, trained, _ = runs[case_id]
    assert sorted(trained) == sorted(expected)  # WriteToText keeps no order; the served check below does


@pytest.mark.parametrize("case_id", CASES)
def test_served_transform_fn_has_the_ids_of_tensorflow(runs, case_id):
    import tensorflow_transform as tft

    columns, expected, _, fn_dir = runs[case_id]
    served = tft.TFTransformOutput(fn_dir).transform_raw_features(
        {name: tf.constant(np.array(values, dtype=object if kind == "str" else kind)) for name, (kind, values) in columns.items()}
    )
    assert served["crossed"].numpy().tolist() == expected


def test_a_float_feature_is_crossed_only_through_bucketize():
    import beam_cross.tft as bc_tft

    with pytest.raises(TypeError, match="dtype=float32"):
        bc_tft.hashed_cross([tf.constant([1.5]), tf.constant(["fr"])], 10)
    cross, columns, expected = _case("crossed_column_bucketized_x_raw")
    fn = bc_tft.make_preprocessing_fn([cross])
    ids = fn({name: tf.constant(np.array(values, dtype=object if kind == "str" else kind)) for name, (kind, values) in columns.items()})
    assert ids["crossed"].numpy().tolist() == expected
