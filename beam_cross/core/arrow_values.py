"""Arrow arrays as fingerprints: plain layouts, string / binary / integer values, checked offsets.

Used by :mod:`beam_cross.core.columns` for Arrow input and for Python values it converts to Arrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core import errors
from beam_cross.core._fingerprint import compiled, fingerprint64_buffers, offset_steps
from beam_cross.core.errors import FeatureError

STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                 pa.types.is_large_binary)
# Deduplicate strings when a sample of this many values has at most half distinct values.
DEDUP_SAMPLE = 4096


def value_error(feature, reason, value, row) -> FeatureError:
    return FeatureError(feature, reason, errors.detail_for(reason, value), value, row)


def plain(array: pa.Array) -> pa.Array:
    """The same values in a layout this module reads: view and run-end encoded arrays (as written
    by Polars, DuckDB or Arrow compute) become plain large strings / binaries / lists."""
    kind = array.type
    if _is_type(kind, "is_run_end_encoded"):
        return plain(pc.run_end_decode(array))
    if _is_type(kind, "is_string_view"):
        return array.cast(pa.large_string())
    if _is_type(kind, "is_binary_view"):
        return array.cast(pa.large_binary())
    if _is_type(kind, "is_list_view") or _is_type(kind, "is_large_list_view"):
        # Rebuilt from flatten + lengths: Arrow's own cast to a list type can give corrupt offsets.
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        return pa.LargeListArray.from_arrays(pa.array(offsets), pc.list_flatten(array))
    return array


def is_list_type(kind: pa.DataType) -> bool:
    """Whether an Arrow type is a list or a large list (the layouts of a multivalent column)."""
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


_WRAPPERS = ("is_list", "is_large_list", "is_list_view", "is_large_list_view", "is_dictionary", "is_run_end_encoded")
_STRINGS = ("is_string", "is_large_string", "is_binary", "is_large_binary", "is_string_view", "is_binary_view")


def arrow_kind(kind: pa.DataType) -> str | None:
    """``"int"`` or ``"string"`` for an Arrow type of integers or of strings / binaries, in any layout
    this module reads (plain, large, view, dictionary, run-end encoded, as list items); else None."""
    while any(_is_type(kind, test) for test in _WRAPPERS):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return "int"
    return "string" if any(_is_type(kind, test) for test in _STRINGS) else None


def column_kind(kind: pa.DataType) -> str | None:
    """:func:`arrow_kind`, and ``"float"`` for floating-point values (in any of those layouts): the kind
    :func:`beam_cross.core.spec.check_crosses_against` checks a cross against."""
    found = arrow_kind(kind)
    if found is None:
        while any(_is_type(kind, test) for test in _WRAPPERS):
            kind = kind.value_type
        if pa.types.is_floating(kind):
            return "float"
    return found


def column_kinds(schema: pa.Schema) -> dict[str, str | None]:
    """Column name -> :func:`column_kind` of an Arrow schema (a name given twice keeps its first kind)."""
    kinds: dict[str, str | None] = {}
    for field in schema:
        kinds.setdefault(field.name, column_kind(field.type))
    return kinds


def _is_type(kind: pa.DataType, test: str) -> bool:
    check = getattr(pa.types, test, None)  # absent in older pyarrow, which cannot make such arrays
    return bool(check and check(kind))


def arrow_fingerprints(array: pa.Array, feature) -> tuple[np.ndarray, str]:
    """Fingerprints of a flat Arrow array, and its kind (``"string"`` or ``"int"``)."""
    array = plain(array)
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise value_error(feature, errors.NULL, None, row)
    kind = array.type
    if pa.types.is_dictionary(kind):
        values, value_kind = arrow_fingerprints(array.dictionary, feature)
        return values[array.indices.to_numpy(zero_copy_only=False)], value_kind
    if any(test(kind) for test in STRING_TYPES):
        # The compiled kernel hashes a short string faster than Arrow finds its duplicates.
        if len(array) > 2 * DEDUP_SAMPLE and not compiled():
            sample = array.slice(0, DEDUP_SAMPLE)
            if len(sample.unique()) * 2 <= DEDUP_SAMPLE:
                encoded = array.dictionary_encode()
                return arrow_fingerprints(encoded, feature)
        offset_type = np.int64 if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) else np.int32
        _, offsets_buffer, data_buffer = array.buffers()
        offsets = np.frombuffer(offsets_buffer, offset_type, len(array) + 1, array.offset * offset_type().itemsize)
        data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
        if len(offsets) and offsets[0]:
            data = data[offsets[0] : offsets[-1]]
            offsets = offsets - offsets[0]
        return fingerprint64_buffers(offsets, data), "string"
    if pa.types.is_integer(kind):
        numbers = array.to_numpy(zero_copy_only=False)
        return int_bits(numbers), "int"
    if pa.types.is_null(kind) and len(array) == 0:
        return np.zeros(0, np.uint64), "int"
    reason = {
        pa.types.is_floating: errors.FLOAT,
        pa.types.is_boolean: errors.BOOL,
        pa.types.is_null: errors.NULL,
        pa.types.is_list: errors.NESTED,
        pa.types.is_large_list: errors.NESTED,
        pa.types.is_fixed_size_list: errors.NESTED,
    }
    for test, why in reason.items():
        if test(kind):
            return _raise_first(array, feature, why)
    raise FeatureError(feature, errors.UNSUPPORTED, f"Arrow type {kind} cannot be crossed; only strings, binary and integers can.", array.slice(0, 3).to_pylist())


def _raise_first(array, feature, why):
    raise value_error(feature, why, array[0].as_py() if len(array) else None, 0)


def int_bits(numbers: np.ndarray) -> np.ndarray:
    if numbers.dtype == np.uint64:
        return numbers.view(np.uint64)
    return numbers.astype(np.int64, copy=False).view(np.uint64)


def check_offsets(array, feature) -> None:
    """Raises a ``malformed`` FeatureError naming the first bad row when the offsets of a list,
    string or binary array decrease or run past its values (Arrow builds such arrays without
    checking them, and reading them gives wrong values or NumPy errors)."""
    kind = array.type
    if is_list_type(kind):
        offsets, size, what = array.offsets.to_numpy(), len(array.values), "list"
    elif any(test(kind) for test in STRING_TYPES):
        width = np.dtype(np.int64 if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) else np.int32)
        _, offsets_buffer, data_buffer = array.buffers()
        if offsets_buffer is None:
            return
        offsets = np.frombuffer(offsets_buffer, width, len(array) + 1, array.offset * width.itemsize)
        size, what = (data_buffer.size if data_buffer is not None else 0), "string"
    else:
        return
    row, _ = offset_steps(offsets)
    if row >= 0:
        raise FeatureError(feature, errors.MALFORMED, f"the {what} offsets decrease (each row's end must not come before its start).",
                           f"offsets {int(offsets[row])} -> {int(offsets[row + 1])}", row)
    if len(offsets) and (offsets[0] < 0 or offsets[-1] > size):
        raise FeatureError(feature, errors.MALFORMED, f"the {what} offsets point outside the values.",
                           f"offsets {int(offsets[0])}..{int(offsets[-1])} for {size} values")
    if what == "list":
        try:
            check_offsets(array.values, feature)
        except FeatureError as error:
            raise FeatureError(feature, error.reason, error.detail, error.value, row_of(offsets, error.row)) from None


def row_of(splits, value_index):
    if value_index is None:
        return None
    return int(np.searchsorted(splits, value_index, side="right") - 1)
