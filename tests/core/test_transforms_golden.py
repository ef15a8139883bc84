"""The core's transforms against ``tests/golden/transforms.json``: ids made by running Keras
``Discretization`` / ``StringLookup`` / ``IntegerLookup`` / ``Hashing`` and TF's feature columns
(``bucketized_column``, ``categorical_column_with_vocabulary_list``, ``categorical_column_with_identity``,
``crossed_column``), on both kernels. A null id is a value TF drops before the lookup: the core refuses
it (reason ``no_id``)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from beam_cross import Cross, FeatureError, hashed_cross
from beam_cross.core import errors
from beam_cross.core.transforms import transform_from_dict
from tests.conftest import GOLDEN_DIR

pytestmark = pytest.mark.usefixtures("kernel")

DOCUMENT = json.loads((GOLDEN_DIR / "transforms.json").read_text())
TRANSFORM_CASES = [c for c in DOCUMENT["vectors"] if "transform" in c]
CROSS_CASES = [c for c in DOCUMENT["vectors"] if "features" in c]


def decode(column):
    kind = column["kind"]

    def one(v):
        if kind == "str":
            return v
        return float(v) if kind.startswith("float") else int(v)

    if column["dense"]:
        return kind, [one(v) for v in column["values"]]
    return kind, [[one(v) for v in row] for row in column["values"]]


def as_array(kind, values):
    return np.array(values, dtype=object if kind == "str" else kind)


def test_the_golden_file_says_where_it_comes_from():
    provenance = DOCUMENT["provenance"]
    assert provenance["tensorflow"] and provenance["keras"] and "feature_column" in provenance["feature_columns"]
    assert len(TRANSFORM_CASES) >= 50 and len(CROSS_CASES) >= 4


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=[c["id"] for c in TRANSFORM_CASES])
def test_transform_ids_equal_tensorflow(case):
    transform = transform_from_dict(case["transform"])
    kind, values = decode(case["column"])
    expected = case["expected"]
    if not case["column"]["dense"]:
        got = transform(values).to_pylist()
        assert got == [[int(v) for v in row] for row in expected]
        arrow = pa.array(values, pa.list_(pa.string() if kind == "str" else pa.from_numpy_dtype(np.dtype(kind))))
        assert transform(arrow).to_pylist() == got
        return
    kept = [i for i, v in enumerate(expected) if v is not None]
    want = np.array([int(expected[i]) for i in kept], np.int64)
    taken = [values[i] for i in kept]
    np.testing.assert_array_equal(transform(taken), want)  # Python values
    np.testing.assert_array_equal(transform(as_array(kind, taken)), want)  # NumPy
    arrow_type = pa.string() if kind == "str" else pa.from_numpy_dtype(np.dtype(kind))
    np.testing.assert_array_equal(transform(pa.array(taken, arrow_type)), want)  # Arrow
    for i, v in enumerate(expected):
        if v is None:  # TF dropped the value (feature columns' '' / -1): no id, a FeatureError
            with pytest.raises(FeatureError) as caught:
                transform([values[i]])
            assert caught.value.reason == errors.NO_ID


@pytest.mark.parametrize("case", CROSS_CASES, ids=[c["id"] for c in CROSS_CASES])
def test_crosses_of_transforms_equal_tensorflow(case):
    cross = Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"]})
    assert Cross.from_dict(json.loads(cross.to_json())) == cross
    columns = {name: as_array(*decode(column)) for name, column in case["columns"].items()}
    expected = [[int(v) for v in row] for row in case["expected"]]
    assert all(len(row) == 1 for row in expected)  # dense inputs, one cross per row
    flat = np.array([row[0] for row in expected], np.int64)
    np.testing.assert_array_equal(cross.apply(columns), flat)
    as_lists = {name: [[v] for v in values.tolist()] for name, values in columns.items()}
    assert cross.apply(as_lists).to_pylist() == expected
    by_transform = dict(zip(cross.inputs, (columns[f] for f in cross.features)))
    np.testing.assert_array_equal(hashed_cross(by_transform, case["num_bins"]), flat)
