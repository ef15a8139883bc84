"""JSON Lines blocks as Arrow: complete lines in, a typed RecordBatch plus per-line rejections out.

Blocks, records and reasons are those of :mod:`beam_cross.job.text_formats`: parsing is Arrow's
(``pyarrow.json``) on the whole block, and only the lines Arrow refuses are looked at one by one.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from beam_cross.job.text_formats import (
    ENCODING,
    OVERSIZED,
    PARSE,
    TYPE,
    UNKNOWN_COLUMN,
    Parsed,
    join_lines,
    line_bounds,
    one_batch,
    schema_text,
    text_of,
    unknown_message,
)

_JSON_WHITESPACE = np.zeros(256, bool)
_JSON_WHITESPACE[[9, 10, 13, 32]] = True


def _json_problem(raw: bytes, schema: pa.Schema, arrow_error: str) -> tuple[str, str]:
    """Why one JSON line was refused, in words."""
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
    if arrow_error == _NESTED:
        return UNKNOWN_COLUMN, (f"an object holds keys that its column's type, inferred from the first lines of each "
                                f"file, does not have; schema: {schema_text(schema)}")
    return TYPE, f"a value does not match its column's type ({arrow_error}); schema: {schema_text(schema)}"


_NESTED = "nested keys outside the schema"


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
    whole = None if rejected else block  # Arrow skips blank lines itself: no copy needed
    _parse_json_lines(block, starts, ends, np.flatnonzero(feed), schema, tables, lines, rejected, whole)
    if tables:
        batch = one_batch(pa.concat_tables([t.select(schema.names) for t in tables]), schema)
        row_lines = np.concatenate(lines)
    else:
        batch, row_lines = pa.RecordBatch.from_pylist([], schema=schema), np.zeros(0, np.int64)
    rejected.sort(key=lambda item: item[0])
    return Parsed(batch, row_lines.astype(np.int64), rejected, len(ends))


def _parse_json_lines(block, starts, ends, fed, schema, tables, lines, rejected, data=None):
    """Arrow on the lines ``fed`` (``data``: those lines, if at hand); on an error, halves until the
    refused lines are found one by one."""
    if not len(fed):
        return
    if data is None:
        data = join_lines(block, starts, ends, fed)
    try:
        table = _read_json(data, schema)
        table.validate(full=True)  # Arrow's JSON parser lets invalid UTF-8 through into strings
        error = None if table.num_rows == len(fed) else f"{table.num_rows} rows from {len(fed)} lines"
        if error is None and table.select(schema.names).schema.types != schema.types:
            error = _NESTED
    except (pa.ArrowInvalid, UnicodeDecodeError, pa.ArrowNotImplementedError) as exc:
        table, error = None, str(exc)
    if error is not None:
        if len(fed) == 1:
            line = int(fed[0])
            raw = block[starts[line]:ends[line]]
            reason, message = _json_problem(raw, schema, error)
            rejected.append((line, reason, message, text_of(raw)))
            return
        middle = len(fed) // 2
        _parse_json_lines(block, starts, ends, fed[:middle], schema, tables, lines, rejected)
        _parse_json_lines(block, starts, ends, fed[middle:], schema, tables, lines, rejected)
        return
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

