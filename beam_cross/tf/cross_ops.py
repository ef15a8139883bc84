"""The cross itself as TensorFlow ops, for graphs: the one op the served layer and tf.Transform share.

:func:`crossed_ids` crosses int64 / string tensors (dense, sparse or ragged) with
``tf.ragged.cross_hashed``, which keeps the given order for every kind of input (``tf.sparse.cross_hashed``
puts sparse inputs first). TensorFlow only: no Keras, no tf.Transform.

>>> import tensorflow as tf
>>> crossed_ids([tf.constant(["A", "B"]), tf.constant([101, 102])], num_bins=5, hash_key=None).numpy().tolist()
[1, 1]
"""

from __future__ import annotations

from beam_cross.core.cross import check_hash_key
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import tensorflow as tf

__all__ = ["as_int64_or_string", "crossed_ids"]

COMPOSITE = (tf.SparseTensor, tf.RaggedTensor)


def as_int64_or_string(value):
    """A string or integer tensor as TF's cross kernel reads it: strings as they are, integers as
    int64 (uint64 keeps its 64 bits, as the core does; other ints are cast)."""
    if value.dtype in (tf.string, tf.int64):
        return value
    if value.dtype == tf.uint64:
        return tf.nest.map_structure(lambda t: tf.bitcast(t, tf.int64), value, expand_composites=True)
    return tf.cast(value, tf.int64)  # sign-extends signed ints, zero-extends unsigned ones


def as_ragged(value) -> tf.RaggedTensor:
    """A ragged view of a dense (one value per row), sparse or ragged tensor."""
    if isinstance(value, tf.RaggedTensor):
        return value
    if isinstance(value, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(value)
    return tf.RaggedTensor.from_tensor(tf.reshape(value, [-1, 1]))


def crossed_ids(values, num_bins: int, hash_key):
    """The int64 ids of the cross of ``values`` (int64 / string tensors, in crossing order).

    All dense: a dense tensor of the first value's shape (one id per row). Otherwise, per row, the
    cartesian product of the rows' values (last input fastest): a ``tf.RaggedTensor`` if any value is
    ragged, else a ``tf.SparseTensor``."""
    crossed = tf.ragged.cross_hashed([as_ragged(v) for v in values], num_buckets=num_bins,
                                     hash_key=check_hash_key(hash_key))
    if not any(isinstance(v, COMPOSITE) for v in values):
        ids = tf.reshape(crossed.flat_values, tf.shape(values[0], out_type=tf.int64))
        ids.set_shape(values[0].shape)
        return ids
    if any(isinstance(v, tf.RaggedTensor) for v in values):
        return crossed
    return crossed.to_sparse()
