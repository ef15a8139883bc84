"""Turning one feature column (scalar, list, NumPy, Arrow) into uint64 fingerprints.

Strings (``str`` as UTF-8, ``bytes`` as given) become their FarmHash ``Fingerprint64``; integers
of any width become the 64 bits of their int64 value, exactly as ``tf.sparse.cross_hashed`` sees
them. A multivalent column (lists per row) keeps its row splits. Which values can be crossed is
the rule of :mod:`beam_cross.core.errors`, applied to each value whatever its neighbours.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Mapping, Set
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core._fingerprint import BOTH_KINDS, fingerprint64_fixed, fingerprint64_objects, object_fingerprints
from beam_cross.core.arrow_values import (
    DEDUP_SAMPLE,
    arrow_fingerprints,
    check_offsets,
    int_bits,
    is_list_type,
    plain,
    row_of,
    value_error,
)
from beam_cross.core.errors import FeatureError

_DEDUP_MIN_ROWS = 64  # Python objects: worth it from a few dozen rows (a Beam batch of dicts)


@dataclass(frozen=True)
class FeatureColumn:
    """One feature as fingerprints.

    ``fingerprints`` holds one uint64 per value. ``row_splits`` is None for a single-valued column;
    for a multivalent one, row ``i`` owns ``fingerprints[row_splits[i]:row_splits[i + 1]]``.
    ``shape`` is the caller's shape for a single-valued column: ``()``, ``(n,)`` or ``(n, 1)``.
    """

    fingerprints: np.ndarray
    row_splits: np.ndarray | None
    shape: tuple

    @property
    def num_rows(self) -> int:
        return len(self.row_splits) - 1 if self.row_splits is not None else len(self.fingerprints)


# The value rule lives in beam_cross.core.errors; this name is kept for the modules that import it here.
kind_of = errors.value_kind


_NOT_A_LIST = "a multivalent column needs a list (or None) in every row, not a scalar."
_is_list = errors.is_list_value


def _first_bad_value(values, feature) -> FeatureError | None:
    """The error for the first value of ``values`` that cannot be crossed, or None if all can
    (slow path, only run once something failed). The row is the caller's row."""
    first_row = next((v for v in values if v is not None), None)
    multivalent = _is_list(first_row)
    first_kind = None
    for row, value in enumerate(values):
        if multivalent and value is None:
            continue  # a None list is "no values": the row has no crosses
        if multivalent and not _is_list(value):
            if kind_of(value) == errors.UNSUPPORTED:  # a set or a dict: say why it is no list
                return value_error(feature, errors.UNSUPPORTED, value, row)
            return FeatureError(feature, errors.SHAPE, _NOT_A_LIST, value, row)
        for item in value if multivalent else [value]:
            kind = kind_of(item)
            if kind not in (errors.STRING, errors.INT):
                return value_error(feature, kind, item, row)
            if first_kind is None:
                first_kind = kind
            elif kind != first_kind:
                return value_error(feature, errors.MIXED_KINDS, item, row)
    return None


def canonical_fingerprints(items, kind: str, feature="feature") -> np.ndarray:
    """Fingerprints of values that :func:`beam_cross.core.errors.value_kind` found all of ``kind``,
    converted one by one (the slow path: values of types the fast paths do not know exactly)."""
    if kind == errors.INT:
        return np.fromiter((errors.canonical(v, kind) for v in items), np.uint64, len(items))
    return fingerprint64_objects([errors.canonical(v, kind) for v in items], len(items))


def _object_addresses(values: np.ndarray) -> np.ndarray:
    """The object pointers of a 1-D object array, as uint64 (identical objects, identical keys)."""
    pointer_array = ctypes.c_uint64 * len(values)
    return np.frombuffer(pointer_array.from_address(values.ctypes.data), np.uint64).copy()


def _from_arrow(array, feature) -> FeatureColumn:
    if isinstance(array, pa.ChunkedArray):
        for chunk in array.chunks:
            check_offsets(plain(chunk), feature)
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    array = plain(array)
    check_offsets(array, feature)
    if is_list_type(array.type):
        if array.offset or array.null_count:
            # Null lists carry no values: the row simply has no crosses, as a missing VarLen
            # feature in a tf.Example.
            array = pa.array(array.to_pylist(), type=array.type)  # normalise (rare path)
        splits = array.offsets.to_numpy().astype(np.int64, copy=False)
        values = array.values.slice(splits[0], splits[-1] - splits[0])
        try:
            fingerprints, _ = arrow_fingerprints(values, feature)
        except FeatureError as error:
            if error.reason == errors.NESTED:
                raise value_error(feature, errors.NESTED, values[0].as_py(), row_of(splits, 0)) from None
            row = row_of(splits, error.row)
            raise FeatureError(feature, error.reason, error.detail, error.value, row) from None
        return FeatureColumn(fingerprints, splits - splits[0] if splits[0] else splits, (len(array),))
    fingerprints, _ = arrow_fingerprints(array, feature)
    return FeatureColumn(fingerprints, None, (len(array),))


_NONE = type(None)
# np.bytes_ is left out: its value is its bytes less trailing NULs (the value rule), which only the
# slow path strips.
_FAST_STRING_TYPES = frozenset({str, bytes, np.str_})
_BYTES_TYPES = frozenset({bytes})
_ROW_LIST_TYPES = frozenset({list, tuple, np.ndarray, _NONE})
_MULTIVALENT_SHAPE = "a multivalent column must be 1-D (one list per row)."


def _arrow_value_type(types: set):
    """The Arrow type for values whose exact Python types are ``types``, if every one of them is
    crossed as it is (see :mod:`beam_cross.core.errors`); None sends the column to the slow path."""
    if types <= _FAST_STRING_TYPES:
        return pa.binary() if types & _BYTES_TYPES else pa.string()
    if types <= errors.INT_TYPES:
        return pa.int64()
    return None


def _from_objects(values: np.ndarray, feature, shape) -> FeatureColumn:
    """An object array of str / bytes / int, or of lists of them (multivalent).

    The fast paths hand the column to Arrow only when the exact type of every value is one the
    rule crosses unchanged (Arrow's own inference would cast a NumPy float next to an int); every
    other column is checked and converted value by value, so a value's outcome never depends on
    its neighbours."""
    values = np.ascontiguousarray(values.reshape(-1))
    fingerprints, kinds = object_fingerprints(values)  # the compiled kernel: exact str, bytes, int
    if kinds is not None and kinds != BOTH_KINDS:  # both: the slow path names the mixed value
        return FeatureColumn(fingerprints, None, shape)
    try:
        column = _fast_objects(values, feature, shape)
    except FeatureError as error:
        if error.reason in (errors.SHAPE, errors.MALFORMED):
            raise
        column = None
    except (pa.ArrowException, OverflowError, UnicodeError, ValueError, TypeError):
        column = None  # e.g. integers above int64 (uint64 range), lone surrogates: checked below
    return column if column is not None else _canonical_column(values, feature, shape)


def _canonical_column(values: np.ndarray, feature, shape) -> FeatureColumn:
    bad = _first_bad_value(values, feature)
    if bad is not None:
        raise bad
    if any(_is_list(v) for v in values):
        if shape != (len(values),):
            raise FeatureError(feature, errors.SHAPE, _MULTIVALENT_SHAPE, f"shape={shape}")
        rows = [list(v) if v is not None else [] for v in values]
        flat = [item for row in rows for item in row]
        splits = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(row) for row in rows], out=splits[1:])
    else:
        flat, splits = list(values), None
    kind = kind_of(flat[0]) if flat else errors.INT
    fingerprints = canonical_fingerprints(flat, kind, feature)
    return FeatureColumn(fingerprints, splits, (len(values),) if splits is not None else shape)


def _distinct_objects(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """``(order, distinct)`` with ``distinct[order] == values``, when many rows share one object
    (values drawn from a vocabulary), so that each distinct object is fingerprinted once; else
    ``(None, values)``. Equal but distinct objects are still correct, just not shared."""
    if len(values) < _DEDUP_MIN_ROWS:
        return None, values
    addresses = _object_addresses(values)
    if len(values) > DEDUP_SAMPLE and len(np.unique(addresses[:DEDUP_SAMPLE])) * 2 > DEDUP_SAMPLE:
        return None, values  # a long column of mostly distinct objects: not worth encoding
    encoded = pa.array(addresses).dictionary_encode()
    if len(encoded.dictionary) * 2 > len(values):
        return None, values
    first = np.empty(len(encoded.dictionary), np.int64)
    codes = encoded.indices.to_numpy()
    first[codes[::-1]] = np.arange(len(values) - 1, -1, -1)
    return codes, values[first]


def _fast_objects(values: np.ndarray, feature, shape) -> FeatureColumn | None:
    num_rows = len(values)
    order, distinct = _distinct_objects(values)
    types = set(map(type, distinct))  # the same types as all values': the same objects
    if types and types <= _ROW_LIST_TYPES and types != {_NONE}:
        if shape != (num_rows,):
            raise FeatureError(feature, errors.SHAPE, _MULTIVALENT_SHAPE, f"shape={shape}")
        lists = _fast_list_array(distinct, types)
        if lists is None:
            return None
        return _from_arrow(lists.take(pa.array(order)) if order is not None else lists, feature)
    arrow_type = _arrow_value_type(types)
    if arrow_type is None:
        return None
    if arrow_type == pa.int64():
        fingerprints, _ = arrow_fingerprints(pa.array(distinct, arrow_type, from_pandas=False), feature)
    else:  # str / bytes: one call into the compiled FarmHash per distinct object
        fingerprints = fingerprint64_objects(distinct, len(distinct))
    if order is not None:
        fingerprints = fingerprints[order]
    return FeatureColumn(fingerprints, None, shape)


def _fast_list_array(values: np.ndarray, types: set) -> pa.Array | None:
    """Rows of lists as an Arrow list array, if every item's exact type is crossed as it is."""
    rows = values
    if np.ndarray in types:  # arrays as Python values: NumPy scalars become ints / str / bytes
        if any(type(v) is np.ndarray and v.ndim != 1 for v in values):
            return None
        rows = [v.tolist() if type(v) is np.ndarray else v for v in values]
    present = rows if _NONE not in types else [v for v in rows if v is not None]
    value_type = _arrow_value_type(set(map(type, itertools.chain.from_iterable(present))))
    if value_type is None:
        return None
    return pa.array(rows, pa.large_list(value_type), from_pandas=False)


def _has_inner_nul(flat: np.ndarray) -> bool:
    """Whether a 'U' / 'S' array holds a NUL followed by more characters (trailing NULs are padding)."""
    width = flat.dtype.itemsize // (4 if flat.dtype.kind == "U" else 1)
    if not flat.size or width < 2:
        return False
    codes = np.ascontiguousarray(flat).view(np.uint32 if flat.dtype.kind == "U" else np.uint8).reshape(len(flat), width)
    return bool(((codes[:, :-1] == 0) & (codes[:, 1:] != 0)).any())


def _from_numpy(values: np.ndarray, feature) -> FeatureColumn:
    shape = values.shape
    if values.ndim > 2 or (values.ndim == 2 and shape[1] != 1):
        raise FeatureError(
            feature, errors.SHAPE,
            "a column must have shape (), (n,) or (n, 1); pass lists per row for a multivalent feature.",
            f"shape={shape}",
        )
    kind = values.dtype.kind
    if kind in "iu":
        return FeatureColumn(int_bits(values.reshape(-1)), None, shape)
    if kind in "US":
        flat = values.reshape(-1)
        fingerprints, bad = fingerprint64_fixed(flat)  # the compiled kernel
        if fingerprints is not None:
            return FeatureColumn(fingerprints, None, shape)
        if bad >= 0:
            raise value_error(feature, errors.UNSUPPORTED, flat[bad].item(), bad)
        if _has_inner_nul(flat):  # Arrow's NumPy conversion would cut these strings at the NUL
            return _from_objects(flat.astype(object), feature, shape)
        try:
            array = pa.array(flat, pa.large_string() if kind == "U" else pa.large_binary())  # never chunked
        except UnicodeError:  # lone surrogates
            raise _first_bad_value(values.reshape(-1).tolist(), feature) from None
        return FeatureColumn(arrow_fingerprints(array, feature)[0], None, shape)
    if kind == "O":
        return _from_objects(values, feature, shape)
    reason = {"f": errors.FLOAT, "c": errors.FLOAT, "b": errors.BOOL}.get(kind, errors.UNSUPPORTED)
    first = values.reshape(-1)[0].item() if values.size else f"dtype={values.dtype}"
    detail = errors.detail_for(reason, first) + f" (dtype {values.dtype})"
    raise FeatureError(feature, reason, detail, first, 0 if values.size else None)


def feature_column(values, feature="feature") -> FeatureColumn:
    """Fingerprints of one feature column.

    ``values`` is a scalar (str, bytes, int), a 1-D or ``(n, 1)`` array-like, a list of lists
    (multivalent), or a pyarrow ``Array`` / ``ChunkedArray`` (``ListArray`` for multivalent).
    ``feature`` names the column in errors.

    >>> feature_column(["a", "b"], "country").fingerprints.dtype
    dtype('uint64')
    >>> feature_column([[1, 2], []], "hour").row_splits.tolist()
    [0, 2, 2]
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _from_arrow(values, feature)
    if isinstance(values, np.ndarray):
        return _from_numpy(values, feature)
    if isinstance(values, (str, bytes, int, float, complex, np.generic)) or values is None:
        kind = kind_of(values)  # a scalar: a column of one row, shape ()
        if kind in (errors.STRING, errors.INT):
            return FeatureColumn(canonical_fingerprints([values], kind, feature), None, ())
        raise value_error(feature, kind, values, None)
    if isinstance(values, (Mapping, Set, bytearray, memoryview)):  # unordered, keyed or a buffer of bytes
        raise FeatureError(
            feature, errors.UNSUPPORTED,
            "a column must be a sequence of values (list, tuple, array), not a dict or a set (nor a bytearray / memoryview).",
            values,
        )
    try:
        items = list(values)
    except TypeError:
        raise value_error(feature, errors.UNSUPPORTED, values, None) from None
    return _from_objects(np.fromiter(items, dtype=object, count=len(items)), feature, (len(items),))
