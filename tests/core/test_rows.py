"""The core's one-row fast path (:class:`beam_cross.core.rows.RowPlan`), on both kernels.

A dict of plain values (exact ``str``, ``bytes``, ``int`` in int64 / uint64) gets the bins
``tf.sparse.cross_hashed`` gives its values; every other dict gets None (the general path crosses it
and says why), and the output keeps or drops the inputs as the plan says.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_cross.core.rows import RowPlan
from beam_cross.core.spec import Cross

pytestmark = pytest.mark.usefixtures("kernel")

tf = pytest.importorskip("tensorflow", reason="tf.sparse.cross_hashed is the oracle")

CROSSES = [
    Cross(["country", "hour"], 1000),
    Cross(["device", "hour", "country"], 0, hash_key=-7),
    Cross(["hour", "n"], 2**63 - 1, name="big"),
]


def tf_bins(columns, cross):
    """One bin per row: ``tf.sparse.cross_hashed`` of dense (n, 1) columns."""
    tensors = []
    for column in columns:
        if isinstance(column[0], int):
            tensors.append(tf.constant(np.array([v - 2**64 if v >= 2**63 else v for v in column], np.int64)[:, None]))
        else:
            as_bytes = [v.encode("utf-8") if isinstance(v, str) else v for v in column]
            tensors.append(tf.constant(np.array(as_bytes, dtype=object)[:, None], tf.string))
    crossed = tf.sparse.cross_hashed(tensors, num_buckets=cross.num_bins, hash_key=cross.hash_key)
    return tf.sparse.to_dense(crossed).numpy()[:, 0].tolist()


texts = st.one_of(st.text(st.characters(exclude_categories=["Cs"]), max_size=80), st.binary(max_size=80))
ints = st.integers(-(2**63), 2**64 - 1)
rows = st.fixed_dictionaries({"country": texts, "device": texts, "hour": ints, "n": ints, "other": st.integers()})


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, min_size=1, max_size=30))
def test_plain_rows_get_the_bins_of_tf_sparse_cross_hashed(batch):
    plan = RowPlan(CROSSES)
    outs = [plan.cross(row) for row in batch]
    for cross in CROSSES:
        expected = tf_bins([[row[f] for row in batch] for f in cross.features], cross)
        assert [out[cross.name] for out in outs] == expected
    assert [{k: v for k, v in out.items() if k not in {c.name for c in CROSSES}} for out in outs] == batch


@pytest.mark.parametrize(
    "value",
    [1.5, None, True, np.int64(3), np.str_("fr"), ["a"], ("a",), 2**64, -(2**63) - 1, "\ud800", bytearray(b"x")],
    ids=repr,
)
def test_any_other_value_is_left_to_the_general_path(value):
    plan = RowPlan(CROSSES[:1])
    assert plan.cross({"country": value, "hour": 1}) is None
    assert plan.cross({"country": "fr", "hour": value}) is None


def test_an_absent_feature_a_clashing_name_and_a_declared_kind_are_left_to_the_general_path():
    plan = RowPlan(CROSSES[:1], feature_types={"hour": "int", "country": "string"})
    assert plan.cross({"country": "fr"}) is None
    assert plan.cross({"country": "fr", "hour": 1, "country_X_hour": 0}) is None
    assert plan.cross({"country": 7, "hour": 1}) is None
    assert plan.cross({"country": "fr", "hour": "1"}) is None
    assert plan.cross({"country": "fr", "hour": 1}) is not None


def test_without_keep_inputs_the_consumed_features_are_dropped_and_the_rest_kept_in_order():
    plan = RowPlan(CROSSES[:1], keep_inputs=False, guarded=())
    row = {"id": 3, "country": "fr", "label": "x", "hour": 13}
    out = plan.cross(row)
    assert list(out) == ["id", "label", "country_X_hour"]
    assert out["country_X_hour"] == tf_bins([["fr"], [13]], CROSSES[0])[0]
    assert row == {"id": 3, "country": "fr", "label": "x", "hour": 13}  # the input is not changed


def test_one_hot_crosses_are_refused():
    with pytest.raises(ValueError, match="int-mode crosses only"):
        RowPlan([Cross(["a", "b"], 4, output_mode="one_hot")])
