"""The transforms of a cross as TensorFlow ops, for graphs (a tf.Transform ``preprocessing_fn``, a served model).

:func:`transform_ids` applies :class:`~beam_cross.Bucketize`, ``Lookup``, ``Identity`` or ``Hash`` to a
dense ``tf.Tensor``, a ``tf.SparseTensor`` or a ``tf.RaggedTensor`` with the ops of the layer or feature
column it is named after (``tf.raw_ops.Bucketize`` on float32, a static hash table, ``floormod``,
``tf.strings.to_hash_bucket_fast``), giving the int64 ids of :mod:`beam_cross.core.transforms`. Where
the core refuses a value (an OOV value without OOV ids, an identity out of range without default, a
value feature columns drop from a dense input), the graph fails at run time with the same words.
A wrong dtype (a string into ``Bucketize``, a float into a ``Lookup``) is a ``TypeError`` when the
graph is built. TensorFlow only: no Keras, no tf.Transform.

>>> import tensorflow as tf
>>> from beam_cross import Bucketize, Lookup
>>> transform_ids(Bucketize("age", [18, 25]), tf.constant([17.0, 18.0, 30.0])).numpy().tolist()
[0, 1, 2]
>>> transform_ids(Lookup("w", ["a", "b", "c"], num_oov_indices=3), tf.constant(["a", "zz", "yy", "xx"])).numpy().tolist()
[3, 1, 1, 2]
"""

from __future__ import annotations

import functools
import re

from beam_cross.core import errors
from beam_cross.core.transforms import Bucketize, Hash, Identity, Lookup, Transform
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import tensorflow as tf

__all__ = ["lookup_table", "transform_ids"]


def _check_dtype(transform: Transform, dtype: tf.DType) -> str:
    kind = "string" if dtype == tf.string else "int" if dtype.is_integer else "float" if dtype.is_floating else None
    if kind not in transform.takes:
        takes = " or ".join(f"{k}s" for k in transform.takes)
        raise TypeError(f"`{type(transform).__name__}` of feature `{transform.name}` takes {takes}. "
                        f"Received: a tensor with dtype={dtype.name}")
    return kind


def _assert(condition, transform: Transform, reason: str, detail: str):
    return tf.debugging.Assert(condition, [f"Feature `{transform.name}` ({reason}): {detail}"])


def _no_dropped_values(values, transform: Transform, dense: bool, kind: str):
    """Feature columns drop '' / -1 from a dense input (no id): refused, as the core refuses it."""
    if not dense:
        return []
    ignored = tf.equal(values, "" if kind == "string" else tf.constant(-1, values.dtype))
    return [_assert(tf.logical_not(tf.reduce_any(ignored)), transform, errors.NO_ID, errors.DETAILS[errors.NO_ID])]


def _as_int64(values):
    if values.dtype == tf.uint64:
        return tf.bitcast(values, tf.int64)
    return tf.cast(values, tf.int64)


def _hash_strings(values, kind, buckets):
    strings = values if kind == "string" else tf.strings.as_string(values)
    return tf.strings.to_hash_bucket_fast(strings, buckets)


def _bucketize(transform: Bucketize, values, kind, dense):
    ids = tf.raw_ops.Bucketize(input=tf.cast(values, tf.float32), boundaries=list(transform.boundaries))
    return tf.cast(ids, tf.int64), []


def lookup_table(transform: Lookup) -> tf.lookup.StaticHashTable:
    """The static hash table of a ``Lookup``'s vocabulary (token -> its position, else -1).

    :func:`transform_ids` builds one per call; a layer or module that is saved (``model.export``,
    ``tf.saved_model.save``) builds it once, keeps it as an attribute (so it is tracked) and passes it.
    """
    if not isinstance(transform, Lookup):
        raise TypeError(f"`transform` must be a Lookup. Received: transform={transform!r}")
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(transform.lookup_tokens), tf.string if transform.takes == ("string",) else tf.int64),
            tf.range(len(transform.vocabulary), dtype=tf.int64),
        ),
        default_value=-1,
    )


def keras_lookup_ids(transform: Lookup, found, keys, kind, checks):
    """(ids, checks) of a Keras-style lookup from the vocabulary positions ``found`` (-1: OOV) of
    ``keys``: the OOV ids first (0; ``Fingerprint64 % k`` for strings, ``floormod`` for ints), the
    vocabulary from ``k``; with no OOV id, an OOV value fails the graph's check."""
    oov = tf.less(found, 0)
    k = transform.num_oov_indices
    if k == 0:
        return found, [*checks, _assert(tf.logical_not(tf.reduce_any(oov)), transform, errors.OOV,
                                        errors.DETAILS[errors.OOV])]
    hashed = tf.zeros_like(found) if k == 1 else (
        _hash_strings(keys, kind, k) if kind == "string" else tf.math.floormod(keys, tf.constant(k, tf.int64)))
    return tf.where(oov, hashed, found + k), checks


def _lookup(transform: Lookup, values, kind, dense, table=None):
    checks = _no_dropped_values(values, transform, dense, kind) if transform.style == "feature_column" else []
    keys = values if kind == "string" else _as_int64(values)
    found = (table if table is not None else lookup_table(transform)).lookup(keys)
    oov = tf.less(found, 0)
    k = transform.num_oov_indices
    if transform.style == "keras":
        return keras_lookup_ids(transform, found, keys, kind, checks)
    if k:
        fallback = len(transform.vocabulary) + _hash_strings(keys, kind, k)
    else:
        fallback = tf.fill(tf.shape(found), tf.constant(transform.default_value, tf.int64))
    return tf.where(oov, fallback, found), checks


def _identity(transform: Identity, values, kind, dense):
    checks = _no_dropped_values(values, transform, dense, kind)
    ids = _as_int64(values)
    outside = tf.logical_or(tf.less(ids, 0), tf.greater_equal(ids, transform.num_buckets))
    if transform.default_value is None:
        detail = f"`Identity` takes integers in [0, {transform.num_buckets}) without a `default_value`."
        checks.append(_assert(tf.logical_not(tf.reduce_any(outside)), transform, errors.OUT_OF_RANGE, detail))
        return ids, checks
    return tf.where(outside, tf.constant(transform.default_value, tf.int64), ids), checks


def _hash(transform: Hash, values, kind, dense):
    return _hash_strings(values, kind, transform.num_bins), []


_OPS = {Bucketize: _bucketize, Lookup: _lookup, Identity: _identity, Hash: _hash}


def transform_ids(transform: Transform, value, *, name=None, table=None):
    """The int64 ids of ``transform`` over ``value`` (a Tensor, SparseTensor or RaggedTensor), of the same kind.

    Args:
        transform: a :class:`~beam_cross.Bucketize`, ``Lookup``, ``Identity`` or ``Hash``.
        value: the raw feature: a dense tensor (one value per row; feature columns' dropped values
            apply), or a ``SparseTensor`` / ``RaggedTensor`` (several values per row, each transformed).
        name: a name scope for the ops.
        table: for a ``Lookup``, its :func:`lookup_table` built beforehand (a saved model must own
            it); ``None`` builds one.
    """
    if not isinstance(transform, Transform):
        raise TypeError(f"`transform` must be a Bucketize, Lookup, Identity or Hash. Received: transform={transform!r}")
    if not isinstance(value, (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)):
        raise TypeError(f"`value` must be a tf.Tensor, tf.SparseTensor or tf.RaggedTensor. Received: {type(value).__name__}")
    if table is not None and not isinstance(transform, Lookup):
        raise TypeError(f"`table` is for a Lookup only. Received: table for {transform!r}")
    kind = _check_dtype(transform, value.dtype)
    op = functools.partial(_lookup, table=table) if isinstance(transform, Lookup) else _OPS[type(transform)]
    with tf.name_scope(name or re.sub(r"[^A-Za-z0-9_.-]", "_", f"{transform.kind}_{transform.name}")):
        if isinstance(value, tf.SparseTensor):
            ids, checks = op(transform, value.values, kind, dense=False)
            with tf.control_dependencies(checks):
                return tf.SparseTensor(value.indices, tf.identity(ids), value.dense_shape)
        if isinstance(value, tf.RaggedTensor):
            ids, checks = op(transform, value.flat_values, kind, dense=False)
            with tf.control_dependencies(checks):
                return value.with_flat_values(tf.identity(ids))
        ids, checks = op(transform, value, kind, dense=True)
        with tf.control_dependencies(checks):
            return tf.identity(ids)
