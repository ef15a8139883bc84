"""Differential tests: ``hashed_cross`` against ``tf.sparse.cross_hashed`` / ``tf.ragged.cross_hashed``
run live on inputs drawn by Hypothesis (strings of any bytes or text, ints over each dtype's full
range, any num_bins, any int64 hash key, dense and multivalent)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_cross import DEFAULT_HASH_KEY, hashed_cross

tf = pytest.importorskip("tensorflow", reason="the differential oracle is TensorFlow (extra `tf`)")

# Every test runs on both kernels, the compiled one and the NumPy path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kernel")

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
# More examples for a one-off deep run: BEAM_CROSS_EXAMPLES=5000 pytest tests/core/test_properties.py
SETTINGS = settings(max_examples=int(os.environ.get("BEAM_CROSS_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

num_bins_strategy = st.one_of(
    st.sampled_from([0, 1, 2, 5, 10, 1000, 2**31 - 1, 2**62, 2**63 - 1]),
    st.integers(0, 2**63 - 1),
)
hash_key_strategy = st.one_of(st.none(), st.just(0), st.integers(-(2**63), 2**63 - 1))


@st.composite
def kinds(draw):
    return draw(st.sampled_from(("text", "bytes", *INT_DTYPES)))


def value_strategy(kind):
    if kind == "text":
        return st.text(max_size=80)
    if kind == "bytes":
        return st.binary(max_size=150)
    info = np.iinfo(kind)
    return st.integers(int(info.min), int(info.max))


def tf_values(kind, values):
    """A 1-D tensor holding ``values`` as TF would receive them."""
    if kind == "text":
        return tf.constant(np.array([v.encode("utf-8") for v in values], dtype=object), tf.string)
    if kind == "bytes":
        return tf.constant(np.array(values, dtype=object), tf.string)
    return tf.constant(np.array(values, dtype=kind))


def our_values(kind, values):
    """The same column as a caller would pass it: NumPy for ints, a list for strings."""
    return list(values) if kind in ("text", "bytes") else np.array(values, dtype=kind)


@st.composite
def dense_inputs(draw):
    num_columns = draw(st.integers(2, 4))
    shape_kind = draw(st.sampled_from(["n", "n1", "scalar"]))
    n = 1 if shape_kind == "scalar" else draw(st.integers(0, 8))
    columns = []
    for _ in range(num_columns):
        kind = draw(kinds())
        columns.append((kind, draw(st.lists(value_strategy(kind), min_size=n, max_size=n))))
    return shape_kind, columns


@SETTINGS
@given(dense_inputs(), num_bins_strategy, hash_key_strategy)
def test_dense_matches_tf_sparse_cross_hashed(inputs, num_bins, hash_key):
    shape_kind, columns = inputs
    n = len(columns[0][1])
    tensors = [tf.reshape(tf_values(kind, values), [-1, 1]) for kind, values in columns]
    expected = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=hash_key).values.numpy()
    features = [our_values(kind, values) for kind, values in columns]
    if shape_kind == "n1":
        features = [np.asarray(f, dtype=object if isinstance(f, list) else None).reshape(n, 1) for f in features]
    elif shape_kind == "scalar":
        features = [f[0] for f in features]
    got = hashed_cross(features, num_bins, hash_key=hash_key)
    assert got.dtype == np.int64
    assert got.shape == {"n": (n,), "n1": (n, 1), "scalar": ()}[shape_kind]
    assert got.reshape(-1).tolist() == expected.tolist()


@st.composite
def multivalent_inputs(draw):
    num_columns = draw(st.integers(2, 4))
    n = draw(st.integers(1, 6))
    max_values = 3 if num_columns < 4 else 2
    columns = []
    for j in range(num_columns):
        kind = draw(kinds())
        dense = j > 0 and draw(st.booleans())
        if dense:
            rows = draw(st.lists(value_strategy(kind), min_size=n, max_size=n))
        else:
            rows = draw(st.lists(st.lists(value_strategy(kind), max_size=max_values), min_size=n, max_size=n))
        columns.append((kind, dense, rows))
    return columns


@SETTINGS
@given(multivalent_inputs(), num_bins_strategy, hash_key_strategy)
def test_multivalent_matches_tf_ragged_cross_hashed(columns, num_bins, hash_key):
    tensors, features = [], []
    for kind, dense, rows in columns:
        if dense:
            tensors.append(tf.reshape(tf_values(kind, rows), [-1, 1]))
            features.append(our_values(kind, rows))
        else:
            flat = [v for row in rows for v in row]
            splits = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
            tensors.append(tf.RaggedTensor.from_row_splits(tf_values(kind, flat), splits))
            features.append([list(row) for row in rows])
    # tf.ragged.cross_hashed alone reads hash_key=0 literally; tf.sparse.cross_hashed and Keras
    # read it as the default key, and so does beam_cross.
    tf_key = DEFAULT_HASH_KEY if hash_key in (None, 0) else hash_key
    expected = tf.ragged.cross_hashed(tensors, num_buckets=num_bins, hash_key=tf_key).to_list()
    assert hashed_cross(features, num_bins, hash_key=hash_key).to_pylist() == expected


ARROW_STRING_TYPES = {"text": (pa.string(), pa.large_string()), "bytes": (pa.binary(), pa.large_binary())}


@st.composite
def arrow_columns(draw, kind, values):
    """``values`` as a sliced / dictionary-encoded / chunked Arrow array of a type fitting ``kind``."""
    typ = draw(st.sampled_from(ARROW_STRING_TYPES[kind])) if kind in ARROW_STRING_TYPES else pa.from_numpy_dtype(np.dtype(kind))
    before = draw(st.lists(value_strategy(kind), max_size=3))
    after = draw(st.lists(value_strategy(kind), max_size=3))
    array = pa.array(before + values + after, typ).slice(len(before), len(values))
    layout = draw(st.sampled_from(["plain", "dictionary", "chunked"]))
    if layout == "dictionary":
        return array.dictionary_encode()
    if layout == "chunked":
        cut = draw(st.integers(0, len(values)))
        return pa.chunked_array([array[:cut], array[cut:]], array.type)
    return array


@SETTINGS
@given(st.data(), num_bins_strategy, hash_key_strategy)
def test_arrow_columns_match_tf_sparse_cross_hashed(data, num_bins, hash_key):
    n = data.draw(st.integers(0, 8))
    columns = []
    for _ in range(data.draw(st.integers(2, 4))):
        kind = data.draw(kinds())
        columns.append((kind, data.draw(st.lists(value_strategy(kind), min_size=n, max_size=n))))
    tensors = [tf.reshape(tf_values(kind, values), [-1, 1]) for kind, values in columns]
    expected = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=hash_key).values.numpy()
    features = [data.draw(arrow_columns(kind, values)) for kind, values in columns]
    assert hashed_cross(features, num_bins, hash_key=hash_key).tolist() == expected.tolist()
