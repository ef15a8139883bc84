"""``hashed_cross``: the crossing core, bit for bit ``tf.sparse.cross_hashed``, in NumPy."""

from __future__ import annotations

import operator
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from beam_cross.core._fingerprint import fold_bins
from beam_cross.core.columns import FeatureColumn, feature_column
from beam_cross.core.errors import SHAPE, FeatureError
from beam_cross.core.transforms import Transform, transformed_column

DEFAULT_HASH_KEY = 0xDECAFCAFFE  # TensorFlow's default seed for cross hashing
_INT64_MAX = 2**63 - 1


def check_num_bins(num_bins) -> int:
    """``num_bins`` as an int, or a ``TypeError`` / ``ValueError`` in the house style."""
    if isinstance(num_bins, (bool, np.bool_)) or not isinstance(num_bins, (int, np.integer)):
        raise TypeError(f"`num_bins` must be an int. Received: num_bins={num_bins!r}")
    if not 0 <= num_bins <= _INT64_MAX:
        raise ValueError(
            "`num_bins` must be a non-negative int64 (0 means the full hash, modulo 2**63 - 1). "
            f"Received: num_bins={num_bins!r}"
        )
    return operator.index(num_bins)


def check_hash_key(hash_key) -> int:
    """The seed as TF uses it: None and 0 mean the default key (TF's ``hash_key or default``)."""
    if hash_key is None:
        return DEFAULT_HASH_KEY
    if isinstance(hash_key, (bool, np.bool_)) or not isinstance(hash_key, (int, np.integer)):
        raise TypeError(f"`hash_key` must be an int or None. Received: hash_key={hash_key!r}")
    if not -(2**63) <= hash_key <= _INT64_MAX:
        raise ValueError(f"`hash_key` must fit in int64. Received: hash_key={hash_key!r}")
    return operator.index(hash_key) or DEFAULT_HASH_KEY


def _columns(features) -> list[FeatureColumn]:
    if isinstance(features, Mapping):
        named = list(features.items())
    elif isinstance(features, (list, tuple)):
        named = [(f"features[{i}]", column) for i, column in enumerate(features)]
    else:
        raise TypeError(
            "`features` must be a list, tuple or dict of two or more columns. "
            f"Received: features of type {type(features).__name__}"
        )
    if len(named) < 2:
        raise ValueError(f"A cross needs at least two features. Received: {len(named)} feature(s)")
    named = [(name.name, values, name) if isinstance(name, Transform) else (name, values, None) for name, values in named]
    columns = [
        transformed_column(values, transform) if transform is not None else feature_column(values, str(name))
        for name, values, transform in named
    ]
    named = [(name, values) for name, values, _ in named]
    first_name = named[0][0]
    multivalent = any(c.row_splits is not None for c in columns)
    for (name, _), column in zip(named[1:], columns[1:]):
        if multivalent:
            if column.num_rows != columns[0].num_rows:
                raise FeatureError(
                    name, SHAPE, f"all features must have the same number of rows as `{first_name}` "
                    f"({columns[0].num_rows}).", f"{column.num_rows} rows",
                )
        elif column.shape != columns[0].shape:
            raise FeatureError(
                name, SHAPE, f"all features must have the same shape as `{first_name}` {columns[0].shape}.",
                f"shape={column.shape}",
            )
    return columns


def _modulus(num_bins: int) -> int:
    return num_bins if num_bins > 0 else _INT64_MAX


def _cartesian_fold(columns: list[FeatureColumn], seed: int, modulus: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, every combination of one value per column (last column fastest), folded into bins."""
    num_rows = columns[0].num_rows
    counts = [
        np.diff(c.row_splits) if c.row_splits is not None else np.ones(num_rows, np.int64)
        for c in columns
    ]
    per_row = np.ones(num_rows, np.int64)
    for count in counts:
        per_row *= count
    splits = np.zeros(num_rows + 1, np.int64)
    np.cumsum(per_row, out=splits[1:])
    row = np.repeat(np.arange(num_rows), per_row)
    rest = np.arange(splits[-1], dtype=np.int64) - splits[row]
    picks = [None] * len(columns)
    for j in range(len(columns) - 1, -1, -1):
        count = counts[j][row]
        position = rest % count if len(row) else rest
        rest //= np.maximum(count, 1)
        start = columns[j].row_splits[row] if columns[j].row_splits is not None else row
        picks[j] = columns[j].fingerprints[start + position]
    return splits, fold_bins(seed, picks, modulus).view(np.int64)


def hashed_cross(features, num_bins, *, hash_key=None):
    """Crosses two or more features into bins, bit for bit as ``tf.sparse.cross_hashed``.

    For each row the features are fingerprinted (strings: FarmHash ``Fingerprint64`` of their
    UTF-8 bytes; integers: their int64 bits), folded left with ``FingerprintCat64`` from
    ``hash_key``, and taken modulo ``num_bins``. The order of ``features`` matters.

    Args:
        features: a list/tuple of columns, or a dict of named columns (names appear in errors).
            A column is a scalar, a 1-D array-like, an ``(n, 1)`` array, or a pyarrow Array of
            strings, bytes or integers. Lists of lists and pyarrow ListArrays are multivalent.
            A dict key may be a transform (:class:`~beam_cross.Bucketize`, ``Lookup``, ``Identity``,
            ``Hash``) of its column: its int64 ids are crossed (floats are crossed this way only).
        num_bins: the number of bins, ``>= 0``. ``0`` keeps the whole hash, modulo ``2**63 - 1``.
        hash_key: the int64 seed. ``None`` and ``0`` mean ``0xDECAFCAFFE``, as in ``tf.sparse.cross_hashed``
            and Keras (``tf.ragged.cross_hashed`` alone reads ``0`` literally); a negative key is
            used as its 64-bit two's complement.

    Returns:
        An int64 ``np.ndarray`` of the dense inputs' shape; or, when any feature is multivalent,
        a ``pyarrow.ListArray`` of int64 holding, per row, the bins of the cartesian product of
        its values (last feature fastest; an empty feature gives an empty row), in the order
        ``tf.ragged.cross_hashed`` gives them.

    >>> hashed_cross([["A", "B", "A", "B", "A"], [101, 101, 101, 102, 102]], num_bins=5)
    array([1, 4, 1, 1, 3])
    >>> hashed_cross([[["a", "b"], []], [1, 2]], num_bins=10).to_pylist()
    [[5, 3], []]
    >>> from beam_cross.core.transforms import Bucketize
    >>> hashed_cross({Bucketize("age", [18, 25]): [17.0, 18.5, 30.0], "country": ["fr", "fr", "us"]}, 1000)
    array([116,  20, 471])
    """
    num_bins = check_num_bins(num_bins)
    hash_key = check_hash_key(hash_key)
    return fold_columns(_columns(features), num_bins, hash_key)


def fold_columns(columns: list[FeatureColumn], num_bins: int, hash_key: int | None = None):
    """The bins of fingerprinted columns: :func:`hashed_cross` after each column went through
    :func:`~beam_cross.core.columns.feature_column`. ``num_bins`` and ``hash_key`` are already checked
    and the columns agree in rows; callers that fingerprint columns themselves (a batch of Beam
    elements) fold here without converting their fingerprints again.

    >>> fold_columns([feature_column(["A", "B"]), feature_column([101, 101])], num_bins=5).tolist()
    [1, 4]
    """
    # A negative key is used as its 64-bit two's complement, as TF's uint64 cast of the int64 attr.
    seed = (hash_key or DEFAULT_HASH_KEY) % 2**64
    if all(c.row_splits is None for c in columns):
        bins = fold_bins(seed, [c.fingerprints for c in columns], _modulus(num_bins))
        return bins.view(np.int64).reshape(columns[0].shape)
    splits, bins = _cartesian_fold(columns, seed, _modulus(num_bins))
    values = pa.array(bins)
    if splits[-1] <= np.iinfo(np.int32).max:
        return pa.ListArray.from_arrays(pa.array(splits.astype(np.int32)), values)
    return pa.LargeListArray.from_arrays(pa.array(splits), values)
