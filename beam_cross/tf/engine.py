"""The optional TensorFlow engine: the same crosses computed by ``tf.sparse.cross_hashed`` itself.

Used by ``CrossFeatures(..., engine="tensorflow")``. TensorFlow is imported on first use only, so
workers that never run this engine never load it. Rows are checked by :mod:`beam_cross.core.batches`
first (both engines reject exactly the same rows); this module only computes the bins of the
rows kept, from their raw values.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core.batches import as_python
from beam_cross.core.spec import Cross
from beam_cross.tf.startup import start_up_lines_dropped


def _import_tensorflow():
    try:
        with start_up_lines_dropped():
            import tensorflow as tf
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "engine='tensorflow' needs TensorFlow. Install it with `pip install beam-cross[tf]`."
        ) from error
    return tf


def _row_items(raw, row):
    """The row's values as plain ints (their 64 bits) and bytes (UTF-8 for str), as TF takes them."""
    value = raw[row]
    items = list(value) if errors.is_list_value(value) else [value]
    return [errors.canonical(item, errors.value_kind(item)) for item in items]


def _as_int64(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value  # uint64 beyond int64: same 64 bits


def _ragged(tf, rows_items, kind):
    lengths = [len(items) for items in rows_items]
    flat = [item for items in rows_items for item in items]
    if kind == "int":
        values = tf.constant(np.array([_as_int64(v) for v in flat], np.int64), tf.int64)
    else:
        values = tf.constant(np.array(flat, dtype=object) if flat else np.zeros(0, object), tf.string)
    return tf.RaggedTensor.from_row_lengths(values, tf.constant(lengths, tf.int64))


def cross_with_tensorflow(cross: Cross, columns, kept: np.ndarray) -> pa.Array:
    """The bins of rows ``kept``, as a list-typed Arrow array, from ``tf.sparse.cross_hashed``.

    Rows are grouped by the kinds of their values (a TF tensor holds one dtype) and each group is
    crossed as ragged (sparse) inputs, so multivalent rows get the cartesian cross TF defines.
    """
    tf = _import_tensorflow()
    raws = [as_python(c.raw) if isinstance(c.raw, (pa.Array, pa.ChunkedArray)) else c.raw for c in columns]
    per_row = [[_row_items(raw, row) for row in kept.tolist()] for raw in raws]
    groups: dict[tuple, list[int]] = {}
    for position in range(len(kept)):
        signature = tuple(
            (errors.INT if isinstance(items[position][0], int) else errors.STRING) if items[position] else errors.STRING
            for items in per_row
        )
        groups.setdefault(signature, []).append(position)
    results: list = [None] * len(kept)
    for signature, positions in groups.items():
        inputs = [
            _ragged(tf, [items[p] for p in positions], kind).to_sparse()
            for items, kind in zip(per_row, signature)
        ]
        # hash_key=None lets TF use its default key, as the core does.
        crossed = tf.sparse.cross_hashed(inputs, num_buckets=cross.num_bins, hash_key=cross.hash_key)
        for p, bins in zip(positions, tf.RaggedTensor.from_sparse(crossed).to_list()):
            results[p] = bins
    return pa.array(results, pa.list_(pa.int64()))
