"""The transforms as TensorFlow ops (beam_cross.tf.transform_ops) against ``tests/golden/transforms.json``
(ids of the Keras layers and TF feature columns), on dense, ragged and sparse tensors, eager and in a
``tf.function``; refusals at graph time (dtype) and at run time (the core's reasons)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from beam_cross import Bucketize, Identity, Lookup
from beam_cross.core.transforms import transform_from_dict
from beam_cross.tf.transform_ops import lookup_table, transform_ids
from tests.conftest import GOLDEN_DIR

CASES = [c for c in json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"] if "transform" in c]


def _tensor(kind, values):
    if kind == "str":
        return tf.constant(np.array([v.encode() for v in values], dtype=object), tf.string)
    return tf.constant(np.array([float(v) if kind.startswith("float") else int(v) for v in values], dtype=kind))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_ops_give_the_golden_ids(case):
    transform = transform_from_dict(case["transform"])
    column = case["column"]
    if column["dense"]:
        kept = [i for i, v in enumerate(case["expected"]) if v is not None]
        values = _tensor(column["kind"], [column["values"][i] for i in kept])
        want = [int(case["expected"][i]) for i in kept]
        assert transform_ids(transform, values).numpy().tolist() == want
        traced = tf.function(lambda x: transform_ids(transform, x))
        assert traced(values).numpy().tolist() == want
        if isinstance(transform, Lookup):  # a table built beforehand (as a saved layer owns it) gives the same ids
            assert transform_ids(transform, values, table=lookup_table(transform)).numpy().tolist() == want
        return
    rows = column["values"]
    flat = _tensor(column["kind"], [v for row in rows for v in row])
    ragged = tf.RaggedTensor.from_row_lengths(flat, [len(row) for row in rows])
    want = [[int(v) for v in row] for row in case["expected"]]
    assert transform_ids(transform, ragged).to_list() == want
    assert tf.RaggedTensor.from_sparse(transform_ids(transform, ragged.to_sparse())).to_list() == want


@pytest.mark.parametrize(
    ("transform", "value", "error", "match"),
    [
        (Bucketize("age", [1]), tf.constant(["x"]), TypeError, r"`Bucketize` of feature `age` takes ints or floats\. Received: a tensor with dtype=string"),
        (Lookup("w", ["a"]), tf.constant([1.5]), TypeError, "dtype=float32"),
        (Lookup("w", ["a"], num_oov_indices=0), tf.constant(["b"]), tf.errors.InvalidArgumentError, r"\(oov\)"),
        (Identity("i", 3), tf.constant([3], tf.int64), tf.errors.InvalidArgumentError, r"\(out_of_range\)"),
        (Identity("i", 3, default_value=0), tf.constant([-1], tf.int64), tf.errors.InvalidArgumentError, r"\(no_id\)"),
        (Lookup("w", ["a"], style="feature_column"), tf.constant([""]), tf.errors.InvalidArgumentError, r"\(no_id\)"),
    ],
)
def test_refusals(transform, value, error, match):
    with pytest.raises(error, match=match):
        transform_ids(transform, value)


def test_a_table_is_for_a_lookup_only():
    with pytest.raises(TypeError, match="`table` is for a Lookup only"):
        transform_ids(Bucketize("age", [1]), tf.constant([1.0]), table=lookup_table(Lookup("w", ["a"])))
    with pytest.raises(TypeError, match="must be a Lookup"):
        lookup_table(Bucketize("age", [1]))
