"""CSV cells to typed Arrow columns, with the checks Arrow's CSV reader does not make.

Cells come as bytes and are converted column by column: integers are strict (an optional sign and
ASCII digits: ``1_3``, `` 13``, ``0x1f`` and non-ASCII digits are not integers), text must be valid
UTF-8, and a list column holds its values separated by ``|`` (an empty cell is an empty list).

>>> import pyarrow as pa
>>> column, problems = convert_column(pa.array([b"13", b"1_3", None]), pa.field("hour", pa.int64()))
>>> column.to_pylist(), sorted(problems)
([13, None, None], [1])
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job.formats.base import ENCODING, LIST_SEPARATOR, TYPE

INT_PATTERN = r"^[+-]?[0-9]+$"


def _column_problem(field, value, kind):
    return (TYPE if kind != "utf8" else ENCODING,
            f"column `{field.name}` must be {'UTF-8 text' if kind == 'utf8' else field.type}. Received: value={value!r}")


def _to_text(values: pa.Array, field) -> tuple[pa.Array, dict[int, tuple[str, str]]]:
    try:
        return values.cast(pa.string()), {}
    except pa.ArrowInvalid:
        problems, good = {}, []
        for index, value in enumerate(values.to_pylist()):
            try:
                good.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                problems[index] = _column_problem(field, value, "utf8")
                good.append(None)
        return pa.array(good, pa.string()), problems


def to_number(text: pa.Array, field, kind: pa.DataType):
    problems = {}
    if pa.types.is_integer(kind):
        try:  # Arrow's parse is strict but for a "+" sign (refused) and "0x" hex (accepted)
            converted = text.cast(kind)
            if not pc.any(pc.match_substring(text, "x", ignore_case=True)).as_py():
                return converted, problems
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        strict = pc.match_substring_regex(text, INT_PATTERN).fill_null(True)
        if not pc.all(strict).as_py():
            for index in np.flatnonzero(~strict.to_numpy(zero_copy_only=False)).tolist():
                problems[index] = _column_problem(field, text[index].as_py(), "int")
            text = pc.if_else(strict, text, pa.scalar(None, pa.string()))
        text = pc.replace_substring_regex(text, r"^\+", "")
    try:
        return text.cast(kind), problems
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        good = []
        for index, value in enumerate(text.to_pylist()):
            try:
                good.append(None if value is None else pa.array([value]).cast(kind)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                problems[index] = _column_problem(field, value, "number")
                good.append(None)
        return pa.array(good, kind), problems


def convert_column(values: pa.Array, field: pa.Field) -> tuple[pa.Array, dict[int, tuple[str, str]]]:
    """CSV cells (binary) as ``field.type``; the problems of the cells that do not convert, by row."""
    kind = field.type
    text, problems = _to_text(values, field)
    if is_list_type(kind):
        lists = pc.split_pattern(text.fill_null(""), LIST_SEPARATOR)
        lists = pc.if_else(pc.equal(text.fill_null(""), ""), pa.scalar([], lists.type), lists)
        flat = pc.list_flatten(lists)
        inner, flat_problems = convert_column(flat.cast(pa.binary()), pa.field(field.name, kind.value_type))
        parents = pc.list_parent_indices(lists).to_numpy()
        for index, problem in flat_problems.items():
            problems.setdefault(int(parents[index]), problem)
        return pa.ListArray.from_arrays(lists.offsets, inner, type=pa.list_(kind.value_type)), problems
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return text.cast(kind), problems
    if pa.types.is_binary(kind):
        return values, {}
    converted, more = to_number(text, field, kind)
    for index, problem in more.items():
        problems.setdefault(index, problem)
    return converted, problems
