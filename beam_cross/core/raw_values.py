"""A feature's raw values before a transform: flat, grouped by kind, with the row splits of a multivalent column.

A transform (:mod:`beam_cross.core.transforms`) needs the values themselves, not their fingerprints:
the number a bucket is counted from, the token a vocabulary is searched for. :func:`raw_values`
reads a column in every layout the core crosses (scalar, list, list of lists, NumPy, Arrow) into a
:class:`RawValues`: per kind (``"int"``, ``"float"``, ``"string"``), the positions of the values of
that kind and the values themselves (int64 / uint64 and float arrays, a ``binary`` or ``large_binary`` Arrow array).

The value rule of :mod:`beam_cross.core.errors` applies, except that a float is a value here (only
``Bucketize`` takes it); ``None``, bools, nested lists and other types are a :class:`FeatureError`.

>>> raw = raw_values([["a", "b"], []], "tags")
>>> raw.row_splits.tolist(), raw.parts[0].kind, raw.parts[0].data.to_pylist()
([0, 2, 2], 'string', [b'a', b'b'])
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core.arrow_values import check_offsets, is_list_type, plain, row_of, value_error
from beam_cross.core.errors import FeatureError

INT, FLOAT, STRING = "int", "float", "string"
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Part:
    """The values of one kind: ``positions`` in the flat column (None: all of them) and ``data``."""

    kind: str
    positions: np.ndarray | None
    data: object  # np.ndarray (int64 / uint64 / float) or a pyarrow binary / large_binary Array

    def value(self, index: int):
        """The value at ``index`` of ``data``, as a Python value (for error messages): a string as the
        ``str`` it was (its UTF-8 bytes if they are not valid UTF-8)."""
        item = self.data[index]
        value = item.as_py() if isinstance(item, pa.Scalar) else item.item()
        if self.kind == STRING and isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return value
        return value


@dataclass(frozen=True)
class RawValues:
    """A column's values: ``parts`` by kind, ``size`` values in all, ``row_splits`` (None when
    single-valued, of ``shape``) for a multivalent column."""

    parts: tuple[Part, ...]
    size: int
    row_splits: np.ndarray | None
    shape: tuple

    def row(self, position: int) -> int | None:
        """The row of the value at flat ``position`` (None for a scalar column)."""
        if self.shape == ():
            return None
        return position if self.row_splits is None else row_of(self.row_splits, position)


def _numpy_part(flat: np.ndarray, feature) -> Part:
    kind = flat.dtype.kind
    if kind in "iu":
        return Part(INT, None, flat if flat.dtype == np.uint64 else flat.astype(np.int64, copy=False))
    if kind == "f":
        return Part(FLOAT, None, flat)
    if kind in "US":
        return Part(STRING, None, _binary(flat.tolist()))
    reason = errors.BOOL if kind == "b" else (errors.FLOAT if kind == "c" else errors.UNSUPPORTED)
    first = flat[0].item() if len(flat) else f"dtype={flat.dtype}"
    raise FeatureError(feature, reason, errors.detail_for(reason, first) + f" (dtype {flat.dtype})", first, 0)


def _binary(items) -> pa.Array:
    return pa.array([errors.canonical(v, STRING) for v in items], pa.large_binary())


def _arrow_part(array: pa.Array, feature, splits=None) -> Part:
    array = plain(array)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.null_count:
        position = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        row = position if splits is None else row_of(splits, position)
        raise value_error(feature, errors.NULL, None, row)
    kind = array.type
    if pa.types.is_integer(kind):
        numbers = array.to_numpy(zero_copy_only=False)
        return Part(INT, None, numbers if numbers.dtype == np.uint64 else numbers.astype(np.int64, copy=False))
    if pa.types.is_floating(kind):
        return Part(FLOAT, None, array.to_numpy(zero_copy_only=False))
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return Part(STRING, None, array.view(pa.binary()))  # the same buffers, read as bytes
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        return Part(STRING, None, array.view(pa.large_binary()))
    if pa.types.is_null(kind) and len(array) == 0:
        return Part(INT, None, np.zeros(0, np.int64))
    reason = errors.BOOL if pa.types.is_boolean(kind) else (errors.NESTED if is_list_type(kind) else errors.UNSUPPORTED)
    first = array[0].as_py() if len(array) else None
    raise value_error(feature, reason, first, 0 if splits is None else row_of(splits, 0))


def _from_arrow(array, feature) -> RawValues:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    array = plain(array)
    check_offsets(array, feature)
    if is_list_type(array.type):
        if array.offset or array.null_count:  # null lists hold no values (as in columns.py)
            array = pa.array(array.to_pylist(), type=array.type)
        splits = array.offsets.to_numpy().astype(np.int64, copy=False)
        values = array.values.slice(splits[0], splits[-1] - splits[0])
        splits = splits - splits[0]
        return RawValues((_arrow_part(values, feature, splits),), len(values), splits, (len(array),))
    return RawValues((_arrow_part(array, feature),), len(array), None, (len(array),))


def _scalar_kind(value, feature, row):
    kind = errors.value_kind(value)
    if kind in (INT, STRING):
        return kind
    if kind == errors.FLOAT and not isinstance(value, (complex, np.complexfloating)):
        return FLOAT
    raise value_error(feature, kind, value, row)


def _from_objects(items: list, feature, shape) -> RawValues:
    """Python values, one per row, each a scalar or (all of them) a list of scalars."""
    listed = [errors.is_list_value(v) for v in items]
    splits = None
    if any(listed):
        for row, (value, is_list) in enumerate(zip(items, listed)):
            if not is_list and value is not None:
                raise FeatureError(feature, errors.SHAPE, "a multivalent column needs a list (or None) in every row, not a scalar.", value, row)
        rows = [list(v) if v is not None else [] for v in items]
        splits = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=splits[1:])
        flat = [v for r in rows for v in r]
    else:
        flat = items
    by_kind: dict[str, list] = {INT: [], FLOAT: [], STRING: []}
    positions: dict[str, list] = {INT: [], FLOAT: [], STRING: []}
    for position, value in enumerate(flat):
        row = position if splits is None else row_of(splits, position)
        if isinstance(value, np.ndarray):
            value = value[()] if value.ndim == 0 else value
        kind = _scalar_kind(value, feature, row if shape != () else None)
        by_kind[kind].append(value)
        positions[kind].append(position)
    parts = []
    for kind, values in by_kind.items():
        if not values:
            continue
        where = None if len(values) == len(flat) else np.asarray(positions[kind], np.int64)
        if kind == STRING:
            data = _binary(values)
        elif kind == INT:
            data = _int_array(values)
        else:
            data = np.array(values, np.float64)  # float16 / float32 values are exact in float64
        parts.append(Part(kind, where, data))
    return RawValues(tuple(parts), len(flat), splits, shape if splits is None else (len(items),))


def _int_array(values: list) -> np.ndarray:
    ints = [int(v) for v in values]
    if ints and max(ints) > _INT64_MAX:  # the uint64 range: its 64 bits, as the value rule keeps them
        return np.array([v % 2**64 for v in ints], np.uint64)
    return np.array(ints, np.int64)


def raw_values(values, feature="feature") -> RawValues:
    """The values of one column, by kind (see the module docstring); ``feature`` names it in errors."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _from_arrow(values, feature)
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
            raise FeatureError(feature, errors.SHAPE, "a column must have shape (), (n,) or (n, 1).", f"shape={values.shape}")
        flat = values.reshape(-1)
        return RawValues((_numpy_part(flat, feature),), len(flat), None, values.shape)
    if isinstance(values, np.ndarray):
        return _from_objects(list(values.reshape(-1)), feature, values.shape)
    if isinstance(values, (str, bytes, int, float, np.generic)) or values is None:
        return _from_objects([values], feature, ())
    if isinstance(values, (Mapping, Set, bytearray, memoryview)):
        raise FeatureError(feature, errors.UNSUPPORTED, "a column must be a sequence of values (list, tuple, array).", values)
    items = list(values)
    return _from_objects(items, feature, (len(items),))
