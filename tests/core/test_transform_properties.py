"""Property tests: the core's transforms against the live Keras layer / TF feature column they are named
after, on generated vocabularies, boundaries and values (floats with NaN and infinities, int64
extremes, any Unicode text), on both kernels."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_cross import Bucketize, Hash, Identity, Lookup

tf = pytest.importorskip("tensorflow", reason="the differential oracle is TensorFlow (extra `tf`)")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.usefixtures("kernel")
SETTINGS = settings(max_examples=int(os.environ.get("BEAM_CROSS_EXAMPLES", "100")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
NEAR_2_24 = st.integers(2**24 - 8, 2**24 + 8) | st.integers(2**53 - 4, 2**53 + 4) | st.integers(-(2**60), 2**60)


def _boundaries(values):
    b32 = np.unique(np.asarray(values, np.float64).astype(np.float32))
    return [float(b) for b in b32 if np.isfinite(b)]


@SETTINGS
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=8), st.lists(FLOATS, min_size=1, max_size=30))
def test_bucketize_floats_equal_discretization(kernel, boundaries, values):
    boundaries = _boundaries(boundaries)
    expected = keras.layers.Discretization(bin_boundaries=boundaries)(np.array(values, np.float64))
    np.testing.assert_array_equal(Bucketize("x", boundaries)(values), np.asarray(expected))


@SETTINGS
@given(st.lists(st.integers(-(2**61), 2**61).map(float), min_size=1, max_size=8), st.lists(NEAR_2_24 | INT64, min_size=1, max_size=30))
def test_bucketize_ints_equal_discretization(kernel, boundaries, values):
    boundaries = _boundaries(boundaries)
    expected = keras.layers.Discretization(bin_boundaries=boundaries)(tf.constant(values, tf.int64))
    np.testing.assert_array_equal(Bucketize("x", boundaries)(values), np.asarray(expected))


@pytest.mark.parametrize("vocabulary", [["", "\x00"], ["a", "a\x00\x00"]])
def test_a_vocabulary_repeating_a_token_without_its_trailing_nuls_is_refused_as_keras_refuses_it(kernel, vocabulary):
    with pytest.raises(ValueError):
        keras.layers.StringLookup(vocabulary=vocabulary)
    with pytest.raises(ValueError, match="trailing NULs"):
        Lookup("w", vocabulary)


# Unique once trailing NULs are dropped: Keras reads the vocabulary through NumPy, which drops them, and
# refuses a vocabulary that repeats a token then (as Lookup does, tested above).
@SETTINGS
@given(st.lists(TEXT.filter(lambda t: t.rstrip("\x00") != "[UNK]"), min_size=1, max_size=12,
                unique_by=lambda t: t.rstrip("\x00")),
       st.lists(TEXT, max_size=20), st.sampled_from([1, 2, 3, 7]), st.data())
def test_string_lookup_equals_keras(kernel, vocabulary, others, k, data):
    values = others + data.draw(st.lists(st.sampled_from(vocabulary), max_size=10))
    layer = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=k)
    expected = layer(tf.constant([v.encode() for v in values], tf.string)) if values else np.zeros(0, np.int64)
    np.testing.assert_array_equal(Lookup("w", vocabulary, num_oov_indices=k)(values), np.asarray(expected))


@SETTINGS
@given(st.lists(INT64.filter(lambda v: v != -1), min_size=1, max_size=12, unique=True),
       st.lists(INT64 | st.integers(-10, 10), min_size=1, max_size=20), st.sampled_from([1, 3, 4]))
def test_integer_lookup_equals_keras(kernel, vocabulary, values, k):
    layer = keras.layers.IntegerLookup(vocabulary=vocabulary, num_oov_indices=k)
    expected = layer(tf.constant(values, tf.int64))
    np.testing.assert_array_equal(Lookup("n", vocabulary, num_oov_indices=k)(values), np.asarray(expected))


@SETTINGS
@given(st.lists(TEXT, min_size=1, max_size=20) | st.lists(INT64, min_size=1, max_size=20), st.integers(1, 2**31))
def test_hash_equals_keras_hashing(kernel, values, num_bins):
    tensor = tf.constant(values, tf.int64) if isinstance(values[0], int) else tf.constant([v.encode() for v in values])
    expected = keras.layers.Hashing(num_bins)(tensor)
    np.testing.assert_array_equal(Hash("h", num_bins)(values), np.asarray(expected))


def _feature_column_ids(column, tensor):
    from tensorflow.python.feature_column import feature_column_v2 as fcv2

    ids = column.get_sparse_tensors(fcv2.FeatureTransformationCache({column.key: tensor}), None).id_tensor
    return ids.values.numpy()


@SETTINGS
@given(st.lists(TEXT.filter(bool), min_size=1, max_size=10, unique=True), st.lists(TEXT.filter(bool), min_size=1, max_size=20),
       st.sampled_from([0, 1, 3]), st.integers(-5, 5))
def test_vocabulary_list_equals_feature_columns(kernel, vocabulary, values, k, default):
    options = {"num_oov_buckets": k} if k else {"default_value": default}
    column = tf.feature_column.categorical_column_with_vocabulary_list("w", vocabulary, **options)
    expected = _feature_column_ids(column, tf.constant([[v.encode()] for v in values]))
    transform = Lookup("w", vocabulary, num_oov_indices=k, style="feature_column", default_value=None if k else default)
    np.testing.assert_array_equal(transform(values), expected)


@SETTINGS
@given(st.integers(1, 1000), st.data())
def test_identity_equals_feature_columns(kernel, num_buckets, data):
    default = data.draw(st.integers(0, num_buckets - 1))
    values = data.draw(st.lists((INT64 | st.integers(-3, num_buckets + 3)).filter(lambda v: v != -1), min_size=1, max_size=20))
    column = tf.feature_column.categorical_column_with_identity("i", num_buckets, default_value=default)
    expected = _feature_column_ids(column, tf.constant([[v] for v in values], tf.int64))
    np.testing.assert_array_equal(Identity("i", num_buckets, default_value=default)(values), expected)
