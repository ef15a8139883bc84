"""Unlearned transforms inside a ``preprocessing_fn``: tf.Transform analyzers learn them in its analyze pass.

- ``Bucketize(name, num_buckets=k)``: ``tft.quantiles(x, k, epsilon)`` (NaN left out, as
  ``LearnCrosses`` leaves it out) gives the ``k - 1`` boundaries, deduplicated in the graph; the ids
  are the number of boundaries ``<=`` the value, compared as float32 (``tf.searchsorted``, as
  ``Bucketize`` counts). tf.Transform's quantiles are its own approximation (``epsilon``, default
  0.001), so the boundaries are close to, not equal to, those ``LearnCrosses`` learns.
- ``Lookup(name, max_tokens=..., min_count=...)``: ``tft.vocabulary(top_k=..., frequency_threshold=
  min_count)`` (count descending, ties by token descending: Keras ``adapt``'s order), written as
  ``tfrecord_gzip`` so that any token survives; the tokens a learned ``Lookup`` never holds
  (:meth:`~beam_cross.Lookup.skipped_tokens`) are left out before counting. ``tft.apply_vocabulary``
  gives each token's position, and the ids follow the transform's ``style`` as a learned ``Lookup``'s:
  ``"keras"`` puts the OOV ids first (``Fingerprint64 % k`` for strings, ``floormod`` for ints),
  ``"feature_column"`` appends ``num_oov_indices`` OOV buckets (``len + Fingerprint64 % k``, an integer
  hashed as its decimal string) or maps OOV to ``default_value``.
"""

from __future__ import annotations

from beam_cross.core.transforms import Bucketize, Lookup
from beam_cross.tf.startup import start_up_lines_dropped
from beam_cross.tf.transform_ops import _check_dtype, _no_dropped_values, keras_lookup_ids

with start_up_lines_dropped():
    import tensorflow as tf
    import tensorflow_transform as tft

__all__ = ["learned_ids"]

VOCABULARY_FORMAT = "tfrecord_gzip"


def _flat_values(value):
    """(flat values, rebuild, dense) of a Tensor, SparseTensor or RaggedTensor."""
    if isinstance(value, tf.SparseTensor):
        return value.values, (lambda ids: tf.SparseTensor(value.indices, ids, value.dense_shape)), False
    if isinstance(value, tf.RaggedTensor):
        return value.flat_values, value.with_flat_values, False
    shape = tf.shape(value)
    return tf.reshape(value, [-1]), (lambda ids: tf.reshape(ids, shape)), True


def _bucketize(transform: Bucketize, values, epsilon: float, name: str):
    numbers = tf.cast(values, tf.float32)
    boundaries = tft.quantiles(tf.boolean_mask(numbers, tf.logical_not(tf.math.is_nan(numbers))),
                               transform.num_buckets, epsilon, name=f"quantiles_{name}")
    boundaries, _ = tf.unique(tf.reshape(tf.cast(boundaries, tf.float32), [-1]))  # sorted: unique keeps the order
    return tf.searchsorted(boundaries, numbers, side="right", out_type=tf.int64), []


def _lookup(transform: Lookup, values, kind: str, dense: bool, name: str):
    checks = _no_dropped_values(values, transform, dense, kind) if transform.style == "feature_column" else []
    keys = values if kind == "string" else tf.cast(values, tf.int64)
    skipped = [tf.equal(keys, tf.constant(t, keys.dtype)) for t in transform.skipped_tokens(kind)]
    counted = tf.boolean_mask(keys, tf.logical_not(tf.reduce_any(tf.stack(skipped), axis=0)))
    vocabulary = tft.vocabulary(counted, top_k=transform.most_tokens, frequency_threshold=transform.min_count,
                                file_format=VOCABULARY_FORMAT, name=f"vocabulary_{name}")
    k = transform.num_oov_indices
    if transform.style == "feature_column":
        ids = tft.apply_vocabulary(keys, vocabulary, default_value=transform.default_value if not k else -1,
                                   num_oov_buckets=k, file_format=VOCABULARY_FORMAT)
        return ids, checks
    found = tft.apply_vocabulary(keys, vocabulary, default_value=-1, file_format=VOCABULARY_FORMAT)
    return keras_lookup_ids(transform, found, keys, kind, checks)


def learned_ids(transform, value, *, epsilon: float = 1e-3, name: str = "learned"):
    """The ids of an unlearned ``Bucketize`` or ``Lookup`` over ``value``, learned by analyzers."""
    flat, rebuild, dense = _flat_values(value)
    kind = _check_dtype(transform, flat.dtype)
    with tf.name_scope(name):
        if isinstance(transform, Bucketize):
            ids, checks = _bucketize(transform, flat, epsilon, name)
        elif isinstance(transform, Lookup):
            ids, checks = _lookup(transform, flat, kind, dense, name)
        else:
            raise TypeError(f"{type(transform).__name__} has nothing to learn.")
        with tf.control_dependencies(checks):
            ids = tf.identity(tf.cast(ids, tf.int64))
    return rebuild(ids)
