"""JSON Lines: one JSON object per line; read as typed Arrow columns, written column by column.

Parsing is Arrow's (``pyarrow.json``) on a whole block of lines; the lines it refuses are found in
one pass: Arrow names the row where it stopped, that line is judged by Python's ``json`` (which
says why it is refused), and parsing goes on after it. Where refusals are dense, or Arrow names no
row, every remaining line of the block is judged by ``json`` and the good ones parsed together, so
a block costs at most a few times its clean time, whatever its share of bad lines. A key outside
the schema rejects its row (``unknown_column``); blank lines are not records.

>>> import pyarrow as pa
>>> block = parse_jsonl_block(b'{"a": 1}\\n{"a": \\n{"a": 3}\\n', pa.schema([("a", pa.int64())]))
>>> block.rows.to_pylist(), [(line, reason) for line, reason, _, _ in block.rejected]
([{'a': 1}, {'a': 3}], [(1, 'parse')])
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job.formats import compression
from beam_cross.job.formats.base import (
    BOM,
    ENCODING,
    OVERSIZED,
    PARSE,
    TYPE,
    UNKNOWN_COLUMN,
    Facts,
    Format,
    Piece,
    Writer,
    empty_batch,
    one_batch,
    schema_text,
    text_of,
    unknown_message,
)
from beam_cross.job.formats.text import Parsed, line_bounds, line_cut, record_blocks

_JSON_WHITESPACE = np.zeros(256, bool)
_JSON_WHITESPACE[[9, 10, 13, 32]] = True
_NESTED = "nested keys outside the schema"
_ROW = re.compile(r" in row (\d+)")
_DENSE = 8  # refusals in a block (more than one line in 64) after which Python's json judges the rest


def _json_problem(raw: bytes, schema: pa.Schema, arrow_error: str) -> tuple[str, str] | None:
    """Why one JSON line is refused, in words; None when Python's json finds nothing wrong with it."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError as error:
        return ENCODING, f"the line is not UTF-8: {error}"
    except ValueError as error:
        return PARSE, f"invalid JSON: {error}"
    if not isinstance(value, dict):
        return PARSE, f"a JSON Lines row must be an object. Received: {type(value).__name__}"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return ENCODING, "a string holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text"
    unknown = [key for key in value if schema.get_field_index(key) < 0]
    if unknown:
        return UNKNOWN_COLUMN, unknown_message(unknown, schema)
    if arrow_error is None:
        return None
    if arrow_error == _NESTED:
        return UNKNOWN_COLUMN, (f"an object holds keys that its column's type, inferred from the first lines of each "
                                f"file, does not have; schema: {schema_text(schema)}")
    return TYPE, f"a value does not match its column's type ({arrow_error}); schema: {schema_text(schema)}"


def _read_json(data: bytes, schema: pa.Schema) -> pa.Table:
    return pjson.read_json(
        io.BytesIO(data),
        read_options=pjson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
        parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=False),
    )


def parse_jsonl_block(block: bytes, schema: pa.Schema, max_line: int = 1 << 24) -> Parsed:
    """The rows of a block of JSON Lines, typed by ``schema``; keys outside it reject their row."""
    starts, ends = line_bounds(block)
    data = np.frombuffer(block, np.uint8)
    feed = ends > starts
    maybe_blank = np.flatnonzero(feed)
    maybe_blank = maybe_blank[_JSON_WHITESPACE[data[starts[maybe_blank]]]]  # a line of content may start with one
    for line in maybe_blank.tolist():
        feed[line] = bool(block[starts[line]:ends[line]].strip())
    rejected = []
    for line in np.flatnonzero(feed & (ends - starts > max_line)).tolist():
        rejected.append((line, OVERSIZED, f"the line is longer than {max_line} bytes", text_of(block[starts[line]:ends[line]])))
        feed[line] = False
    tables, lines = [], []
    fed = np.flatnonzero(feed)
    whole = block if not rejected and len(fed) == len(ends) else None
    _parse_lines(block, starts, ends, fed, schema, tables, lines, rejected, whole)
    if tables:
        batch = one_batch(pa.concat_tables([t.select(schema.names) for t in tables]), schema)
        row_lines = np.concatenate(lines)
    else:
        batch, row_lines = empty_batch(schema), np.zeros(0, np.int64)
    rejected.sort(key=lambda item: item[0])
    return Parsed(batch, row_lines.astype(np.int64), rejected, len(ends))


def _arrow(block, starts, ends, fed, schema, data=None):
    """(table, None) for the lines ``fed``, or (None, (Arrow's error, the fed index it names or None))."""
    if data is None:
        data = b"\n".join(block[s:e] for s, e in zip(starts[fed].tolist(), ends[fed].tolist())) + b"\n"
    try:
        table = _read_json(data, schema)
        table.validate(full=True)  # Arrow's JSON parser lets invalid UTF-8 through into strings
    except (pa.ArrowInvalid, UnicodeDecodeError, pa.ArrowNotImplementedError) as error:
        found = _ROW.search(str(error))
        row = int(found.group(1)) if found else None
        return None, (str(error), row if row is not None and row < len(fed) else None)
    if table.num_rows != len(fed):
        return None, (f"{table.num_rows} rows from {len(fed)} lines", None)
    if table.select(schema.names).schema.types != schema.types:
        return None, (_NESTED, None)
    return table, None


def _parse_lines(block, starts, ends, fed, schema, tables, lines, rejected, data=None):
    """Arrow on the lines ``fed``; each line it refuses is rejected with Python's reason (one pass)."""
    refused, total = 0, len(fed)
    while len(fed):
        if refused >= _DENSE and refused * 64 > total - len(fed):  # dense refusals: Python judges the rest
            _judge_each(block, starts, ends, fed, schema, tables, lines, rejected)
            return
        table, problem = _arrow(block, starts, ends, fed, schema, data)
        data = None
        if problem is None:
            _keep(table, fed, block, starts, ends, schema, tables, lines, rejected)
            return
        error, row = problem
        if row is None:
            _judge_each(block, starts, ends, fed, schema, tables, lines, rejected, error)
            return
        if row:
            table, before = _arrow(block, starts, ends, fed[:row], schema)
            if before is not None:  # Arrow stopped later than the first bad line: judge these one by one
                _judge_each(block, starts, ends, fed[:row + 1], schema, tables, lines, rejected, before[0])
                refused += 1
                fed = fed[row + 1:]
                continue
            _keep(table, fed[:row], block, starts, ends, schema, tables, lines, rejected)
        _judge_each(block, starts, ends, fed[row:row + 1], schema, tables, lines, rejected, error)
        refused += 1
        fed = fed[row + 1:]


def _judge_each(block, starts, ends, fed, schema, tables, lines, rejected, error=None):
    """Every line of ``fed`` judged by Python's json; the good ones parsed by Arrow together, and
    those Arrow still refuses parsed one by one."""
    good = []
    for line in fed.tolist():
        raw = block[starts[line]:ends[line]]
        problem = _json_problem(raw, schema, None)
        if problem is None:
            good.append(line)
        else:
            rejected.append((line, *problem, text_of(raw)))
    good = np.asarray(good, np.int64)
    if not len(good):
        return
    table, problem = _arrow(block, starts, ends, good, schema)
    if problem is None:
        _keep(table, good, block, starts, ends, schema, tables, lines, rejected)
        return
    for line in good.tolist():  # values that Python accepts and Arrow's types do not: rare, line by line
        one = np.asarray([line], np.int64)
        table, problem = _arrow(block, starts, ends, one, schema)
        if problem is None:
            _keep(table, one, block, starts, ends, schema, tables, lines, rejected)
        else:
            raw = block[starts[line]:ends[line]]
            reason, message = _json_problem(raw, schema, problem[0])
            rejected.append((line, reason, message, text_of(raw)))


def _keep(table, fed, block, starts, ends, schema, tables, lines, rejected):
    extra = [name for name in table.column_names if schema.get_field_index(name) < 0]
    if extra:
        present = np.zeros(table.num_rows, bool)
        for name in extra:
            present |= table.column(name).is_valid().to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(present).tolist():
            line = int(fed[row])
            names = [n for n in extra if table.column(n)[row].is_valid]
            rejected.append((line, UNKNOWN_COLUMN, unknown_message(names, schema), text_of(block[starts[line]:ends[line]])))
        table = table.select(schema.names).filter(pa.array(~present))
        fed = fed[~present]
    tables.append(table)
    lines.append(fed)


def infer_json_schema(block: bytes, declared=()) -> dict[str, pa.DataType | None]:
    """Arrow types of the keys of the JSON objects in ``block`` (in order of first appearance).

    Values are read with Python's ``json``; lines that are not objects are left for the reader to
    reject. A key holding only nulls has type None (no evidence); strings stay strings. Keys in
    ``declared`` are listed but not typed.
    """
    values: dict[str, list] = {}
    for raw in block.splitlines():
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            json.dumps(row, ensure_ascii=False).encode("utf-8")  # a lone surrogate is rejected by the reader
        except ValueError:  # UnicodeError included
            continue
        if isinstance(row, dict):
            for key, value in row.items():
                values.setdefault(key, []).append(value)
    types = {}
    for key, seen in values.items():
        if key in declared or all(v is None for v in seen):
            types[key] = None
            continue
        try:
            types[key] = pa.array(seen).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise ValueError(f"key `{key}` holds values of several types ({error}); declare its type with `--schema`") from None
    return types


# -- the format ---------------------------------------------------------------------------------------------
class JsonlFormat(Format):
    name = "jsonl"
    title = "JSON Lines"
    extensions = (".jsonl", ".json", ".ndjson")
    splits = True
    typed_values = True

    def inspect(self, path, sample_bytes, declared):
        head = compression.head(path, sample_bytes + 1).removeprefix(BOM)
        if len(head) > sample_bytes:
            head = head[: head.rfind(b"\n") + 1]
        types = infer_json_schema(head, declared)
        return Facts(tuple(types), types)

    def read(self, handle, start, stop, schema, extent, *, context):
        number = 0
        for offset, block, snippet, end in record_blocks(handle, start, stop, extent, block_bytes=context.block_bytes,
                                                          max_record=context.max_record_bytes, cut=line_cut):
            progress = 0 if context.compressed else end - offset
            if block is None:
                yield Piece(empty_batch(schema), np.zeros(0, np.int64),
                            [(number, OVERSIZED, f"the line is longer than {context.max_record_bytes} bytes",
                              text_of(snippet))], number, 1, progress)
            else:
                if offset == 0 and block.startswith(BOM):
                    block = block[len(BOM):]
                parsed = parse_jsonl_block(block, schema, context.max_record_bytes)
                rejected = [(number + line, reason, message, raw) for line, reason, message, raw in parsed.rejected]
                yield Piece(parsed.rows, number + parsed.row_lines, rejected, number,
                            parsed.rows.num_rows + len(rejected), progress)
            number = extent.lines

    def writer(self, path):
        return JsonlWriter(path)


# -- writing, column by column -------------------------------------------------------------------------
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_strings(column: pa.Array) -> pa.Array:
    """JSON string literals of a string column (nulls stay null)."""
    if pc.any(pc.match_substring_regex(column, _NEEDS_ESCAPE)).as_py():
        column = pc.replace_substring(column, "\\", "\\\\")
        column = pc.replace_substring(column, '"', '\\"')
        for code in range(0x20):
            char = chr(code)
            if pc.any(pc.match_substring(column, char)).as_py():
                column = pc.replace_substring(column, char, _SHORT_ESCAPES.get(char, f"\\u{code:04x}"))
    return pc.binary_join_element_wise('"', column, '"', "")


def json_default(value):
    """``json.dumps``' fallback: bytes as text (invalid UTF-8 backslash-escaped), the rest as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _json_python(column: pa.Array) -> pa.Array:
    return pa.array([json.dumps(v, default=json_default) for v in column.to_pylist()], pa.string())


def json_values(column: pa.Array) -> pa.Array:
    """One JSON text per value of ``column`` ("null" for nulls), computed column-wise where possible."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        texts = pc.cast(column, pa.string())
    elif pa.types.is_floating(kind):
        texts = pc.cast(column, pa.string())
        texts = pc.if_else(pc.match_substring_regex(texts, "^-?[0-9]+$"), pc.binary_join_element_wise(texts, ".0", ""), texts)
        texts = pc.if_else(pc.is_finite(column), texts, pa.scalar(None, pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = _json_strings(pc.cast(column, pa.string()))
    elif is_list_type(kind) and (pa.types.is_integer(kind.value_type) or pa.types.is_string(kind.value_type)
                                 or pa.types.is_large_string(kind.value_type) or pa.types.is_dictionary(kind.value_type)):
        inner = json_values(column.flatten()).fill_null("null")
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32))
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, inner), ",")
        texts = pc.if_else(pc.is_valid(column), pc.binary_join_element_wise("[", joined, "]", ""),
                           pa.scalar(None, pa.string()))
    else:
        return _json_python(column)
    return texts.fill_null("null")


def json_lines(batch: pa.RecordBatch) -> pa.Array:
    """One JSON object per row, each ending with a newline (a string array)."""
    pieces = []
    for index, name in enumerate(batch.schema.names):
        pieces.append(("{" if index == 0 else ",") + json.dumps(name) + ":")
        pieces.append(json_values(batch.column(index)))
    pieces.append("}\n")
    return pc.binary_join_element_wise(*pieces, "")


def _payload(strings: pa.Array) -> memoryview:
    """The bytes of a string array without nulls, concatenated (no copy)."""
    positions = np.frombuffer(strings.buffers()[1], np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    return memoryview(strings.buffers()[2])[positions[0]:positions[-1]]


class JsonlWriter(Writer):
    """One JSON object per line, built column by column with Arrow compute kernels."""

    def _write(self, batch):
        self._handle.write(_payload(json_lines(batch)))


FORMAT = JsonlFormat()
