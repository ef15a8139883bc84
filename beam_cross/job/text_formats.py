"""CSV blocks as Arrow, and what the text readers share: line bounds, reasons, the ``Parsed`` block.

A block of complete lines goes in; a typed RecordBatch plus per-line rejections comes out (JSON Lines:
:mod:`beam_cross.job.json_lines`).

A *block* is a ``bytes`` of whole lines (each ending in ``\\n``, the last one may not) cut from a file by
:mod:`beam_cross.job.readers`. Records are lines: a line break is ``\\n`` (a ``\\r`` before it is part of
the line end), blank lines are not records, and every other line becomes exactly one row or one
rejection. Parsing is Arrow's (``pyarrow.csv`` / ``pyarrow.json``) on the whole block; only the lines
Arrow refuses are looked at one by one, so a clean block costs no Python per row.

CSV cells are read as bytes, then converted column by column with the checks Arrow's CSV reader does
not make: integers are strict (an optional sign and ASCII digits: ``1_3``, `` 13``, ``0x1f`` and
non-ASCII digits are not integers), text must be valid UTF-8, and a line holding an odd number of
``"`` (a quoted value with a line break in it) or a lone ``\\r`` is rejected rather than merged with
its neighbour. An empty cell is a missing value; ``""`` is the empty string; a list column holds its
values separated by ``|`` (an empty cell is an empty list).

>>> import pyarrow as pa
>>> schema = pa.schema([("city", pa.string()), ("hour", pa.int64())])
>>> block = parse_csv_block(b"paris,13\\r\\nlyon,1_3\\n\\nnice,7\\n", ["city", "hour"], schema)
>>> block.rows.to_pylist()
[{'city': 'paris', 'hour': 13}, {'city': 'nice', 'hour': 7}]
>>> [(line, reason) for line, reason, _, _ in block.rejected]
[(1, 'type')]
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from beam_cross.core.arrow_values import is_list_type

# Reasons of rows rejected while reading (the crossing reasons are in beam_cross.core.errors).
PARSE = "parse"  # not CSV / JSON / a tf.Example, wrong number of fields, a corrupt record
TYPE = "type"  # a value does not parse as its column's declared or inferred type
ENCODING = "encoding"  # text that is not UTF-8 (or a JSON "\ud800" lone surrogate escape)
OVERSIZED = "oversized"  # a line or record longer than the reader's limit
UNKNOWN_COLUMN = "unknown_column"  # a JSON key / tf.Example feature that the schema does not have

LIST_SEPARATOR = "|"
INT_PATTERN = r"^[+-]?[0-9]+$"
SNIPPET_CHARS = 1000  # how much of a rejected line its record keeps


@dataclass
class Parsed:
    """One block parsed: the good rows, the line (0-based in the block) of each, the rejections."""

    rows: pa.RecordBatch
    row_lines: np.ndarray  # int64, the block line of each good row
    rejected: list  # (block line, reason, message, raw text)
    lines: int  # lines in the block (blank ones included)


def one_batch(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """``table`` as one RecordBatch of ``schema`` (an empty one when it has no rows)."""
    if table.schema != schema:
        table = table.cast(schema)
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)


def text_of(raw: bytes) -> str:
    """A rejected line as text for its record: decoded leniently, line end removed, shortened."""
    text = raw.rstrip(b"\r\n")[: SNIPPET_CHARS * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."


def line_bounds(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the lines of ``block``; an end excludes its ``\\n`` (a ``\\r`` before it stays)."""
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    if not block.endswith(b"\n") and block:
        ends = np.append(ends, len(block))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


def _per_line_count(data: np.ndarray, byte: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many times ``byte`` occurs in each line [start, end)."""
    found = np.flatnonzero(data == byte)
    return np.searchsorted(found, ends) - np.searchsorted(found, starts)


def join_lines(block: bytes, starts, ends, keep) -> bytes:
    return b"\n".join(block[s:e] for s, e in zip(starts[keep].tolist(), ends[keep].tolist())) + b"\n"


# -- CSV ------------------------------------------------------------------------------------------------
def _csv_line_flags(block, starts, ends, max_line):
    """Per line: blank, and the rejection (reason, message) of lines refused before parsing."""
    data = np.frombuffer(block, np.uint8)
    length = ends - starts
    cr_end = np.zeros(len(ends), bool)
    has_end = ends > starts
    cr_end[has_end] = data[ends[has_end] - 1] == 13
    blank = (length == 0) | ((length == 1) & cr_end)
    problems = {}
    for line in np.flatnonzero(length > max_line).tolist():
        problems[line] = (OVERSIZED, f"the line is longer than {max_line} bytes")
    if block.find(b'"') >= 0:
        odd = _per_line_count(data, 34, starts, ends) % 2 == 1
        for line in np.flatnonzero(odd).tolist():
            problems.setdefault(line, (PARSE, "unbalanced quotes: a quoted value may not hold a line break"))
    if block.count(b"\r") != block.count(b"\r\n"):
        lone = _per_line_count(data, 13, starts, ends) - cr_end
        for line in np.flatnonzero(lone > 0).tolist():
            problems.setdefault(line, (PARSE, "a carriage return inside the line (only CRLF line ends are read)"))
    return blank, problems


def parse_csv_block(block: bytes, header: list[str], schema: pa.Schema, max_line: int = 1 << 24) -> Parsed:
    """The rows of a block of CSV lines (no header line) whose columns are ``header``, typed by ``schema``."""
    starts, ends = line_bounds(block)
    blank, problems = _csv_line_flags(block, starts, ends, max_line)
    feed = ~blank
    feed[list(problems)] = False
    fed_lines = np.flatnonzero(feed)
    rejected = [(line, reason, message, text_of(block[starts[line]:ends[line]])) for line, (reason, message) in problems.items()]
    skipped = []

    def handler(row):
        skipped.append(row.number - 1)
        line = fed_lines[row.number - 1]
        rejected.append((int(line), PARSE, f"expected {row.expected_columns} fields as in the header {header}, "
                                          f"got {row.actual_columns}", text_of(row.text.encode("utf-8", "surrogateescape"))))
        return "skip"

    data = block if len(fed_lines) == len(ends) else join_lines(block, starts, ends, feed)
    if len(fed_lines):
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=header, use_threads=False, block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(newlines_in_values=False, invalid_row_handler=handler),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.binary() for name in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=False, check_utf8=False,
            ),
        )
    else:
        table = pa.table({name: pa.array([], pa.binary()) for name in header})
    keep = np.ones(len(fed_lines), bool)
    keep[skipped] = False
    row_lines = fed_lines[keep]
    if table.num_rows != len(row_lines):  # cannot happen with one record per line; never guess
        raise ValueError(f"CSV block parsed into {table.num_rows} rows from {len(row_lines)} lines")
    columns, bad = [], np.zeros(table.num_rows, bool)
    messages: dict[int, tuple[str, str]] = {}
    for field in schema:
        converted, problems = convert_column(table.column(field.name).combine_chunks(), field)
        columns.append(converted)
        for row, problem in problems.items():
            if not bad[row]:
                bad[row] = True
                messages[row] = problem
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    if bad.any():
        for row, (reason, message) in messages.items():
            line = int(row_lines[row])
            rejected.append((line, reason, message, text_of(block[starts[line]:ends[line]])))
        batch = batch.filter(pa.array(~bad))
        row_lines = row_lines[~bad]
    rejected.sort(key=lambda item: item[0])
    return Parsed(batch, row_lines.astype(np.int64), rejected, len(ends))


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


def _to_number(text: pa.Array, field, kind: pa.DataType):
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
    converted, more = _to_number(text, field, kind)
    for index, problem in more.items():
        problems.setdefault(index, problem)
    return converted, problems


def infer_csv_types(block: bytes, header: list[str]) -> dict[str, str | None]:
    """The type each column's cells show in ``block``: ``int``, ``float``, ``string`` or None (no value)."""
    parsed = parse_csv_block(block, header, pa.schema([(name, pa.binary()) for name in header]))
    kinds = {}
    for name in header:
        cells = parsed.rows.column(name).drop_null()
        if len(cells) == 0:
            kinds[name] = None
            continue
        try:
            text = cells.cast(pa.string())
        except pa.ArrowInvalid:
            kinds[name] = "string"
            continue
        if pc.all(pc.match_substring_regex(text, INT_PATTERN)).as_py() and not _to_number(text, pa.field(name, pa.int64()), pa.int64())[1]:
            kinds[name] = "int"
        elif not _to_number(text, pa.field(name, pa.float64()), pa.float64())[1]:
            kinds[name] = "float"
        else:
            kinds[name] = "string"
    return kinds


def unknown_message(names, schema) -> str:
    return (f"key(s) {sorted(names)} are not in the input schema {schema_text(schema)}, which is inferred "
            f"from the first lines of each file; declare them with `--schema name:type`")


def schema_text(schema: pa.Schema) -> str:
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"
