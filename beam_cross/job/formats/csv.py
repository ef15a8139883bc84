"""CSV (RFC 4180): a header row, then one record per row; read as typed Arrow columns and written by Arrow.

Records: a quoted value may hold the delimiter, doubled quotes (``""``) and line breaks; a quote
inside an unquoted value is data, as Python's ``csv`` and pyarrow read it (``5"screen``). A record
ends at a line break outside quotes (``\\r\\n`` or ``\\n``; a ``\\r`` elsewhere outside quotes rejects
its record rather than split it). Blank lines are not records; a quoted value still open at the end
of the file rejects its record.

Where records are found: with no quote in a block, every line break ends a record; otherwise the
quotes of the block are walked once (a quote opens a value only at the start of a field) and only
the line breaks outside quoted values end records. A file is split into byte ranges read apart; a
range past byte 0 starts after its first line break, which is a record start unless a quoted
value holds a line break just there. The previous range, which reads on to the end of its last
record, then ends elsewhere, and the run's coverage check fails naming the file and byte (nothing
committed). So a file whose sampled head shows quoted line breaks is read whole, by one worker.

Cells are read as bytes, then converted column by column with the checks Arrow's CSV reader does
not make: integers are strict (an optional sign and ASCII digits: ``1_3``, `` 13``, ``0x1f`` and
non-ASCII digits are not integers) and text must be valid UTF-8. An empty cell is a missing value;
``""`` is the empty string; a list column holds its values separated by ``|`` (an empty cell is an
empty list).

>>> import pyarrow as pa
>>> schema = pa.schema([("city", pa.string()), ("hour", pa.int64())])
>>> block = parse_csv_block(b'paris,13\\r\\nlyon,1_3\\n\\n"nice,\\nsud",7\\n', ["city", "hour"], schema)
>>> block.rows.to_pylist()
[{'city': 'paris', 'hour': 13}, {'city': 'nice,\\nsud', 'hour': 7}]
>>> [(line, reason) for line, reason, _, _ in block.rejected]
[(1, 'type')]
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job.errors import InputError, ReadError
from beam_cross.job.formats import compression
from beam_cross.job.formats.base import (
    BOM,
    LIST_SEPARATOR,
    OVERSIZED,
    PARSE,
    Facts,
    Format,
    Piece,
    Writer,
    text_of,
)
from beam_cross.job.formats.csv_cells import INT_PATTERN, convert_column, to_number
from beam_cross.job.formats.text import Parsed, join_spans, line_cut, record_blocks

_QUOTE, _COMMA, _NEWLINE, _CR = 34, 44, 10, 13


# -- records ---------------------------------------------------------------------------------------------
def quoted_spans(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opening, closing) positions of the quoted values of ``data`` (a block starting at a record);
    a value still open at the end has closing position ``len(data)``."""
    quotes = np.flatnonzero(data == _QUOTE)
    if not len(quotes):
        return quotes, quotes
    before = data[np.maximum(quotes - 1, 0)]
    opens_field = (quotes == 0) | (before == _COMMA) | (before == _NEWLINE)
    positions, starts = quotes.tolist(), opens_field.tolist()
    opening, closing = [], []
    i, count = 0, len(positions)
    while i < count:
        if not starts[i]:
            i += 1  # a quote inside an unquoted value: data
            continue
        opening.append(positions[i])
        i += 1
        while i < count:
            if i + 1 < count and positions[i + 1] == positions[i] + 1:
                i += 2  # "" inside a quoted value: one quote
                continue
            break
        closing.append(positions[i] if i < count else len(data))
        i += 1
    return np.asarray(opening, np.int64), np.asarray(closing, np.int64)


def _inside(positions: np.ndarray, opening: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """Which of ``positions`` fall inside a quoted value."""
    index = np.searchsorted(opening, positions, side="right") - 1
    inside = index >= 0
    inside[inside] = positions[inside] < closing[index[inside]]
    return inside


def record_breaks(block: bytes) -> tuple[np.ndarray, bool]:
    """(positions of the line breaks that end records, whether the block ends inside a quoted value)."""
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    if block.find(b'"') < 0:
        return newlines, False
    opening, closing = quoted_spans(data)
    open_at_end = bool(len(closing)) and closing[-1] == len(data)
    return newlines[~_inside(newlines, opening, closing)], open_at_end


def record_cut(buffer: bytes, limit: int, eof: bool) -> int:
    """:func:`~beam_cross.job.formats.text.line_cut` for CSV records (line breaks outside quotes)."""
    if buffer.find(b'"') < 0:
        return line_cut(buffer, limit, eof)
    breaks, _ = record_breaks(buffer)
    starts = np.concatenate(([0], breaks + 1))
    last = int(np.searchsorted(starts, limit, side="left")) - 1  # the last record that starts before limit
    if last < len(breaks):
        return int(breaks[last]) + 1
    if eof:
        return len(buffer)
    return int(breaks[-1]) + 1 if len(breaks) else 0


# -- a block of records to Arrow ----------------------------------------------------------------------
def parse_csv_block(block: bytes, header: list[str], schema: pa.Schema, max_line: int = 1 << 24,
                    at_end: bool = True) -> Parsed:
    """The rows of a block of whole CSV records (no header line) whose columns are ``header``, typed by
    ``schema``; ``at_end``: the block ends the file (a quoted value open at its end is not closed)."""
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    lines = len(newlines) + (bool(block) and not block.endswith(b"\n"))
    has_quotes = block.find(b'"') >= 0
    opening = closing = np.zeros(0, np.int64)
    if has_quotes:
        opening, closing = quoted_spans(data)
        breaks = newlines[~_inside(newlines, opening, closing)]
    else:
        breaks = newlines
    ends_with_break = len(breaks) and breaks[-1] == len(block) - 1
    ends = breaks if ends_with_break or not block else np.append(breaks, len(block))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    record_lines = np.searchsorted(newlines, starts) if has_quotes else np.arange(len(ends))
    length = ends - starts
    cr_end = np.zeros(len(ends), bool)
    has_end = length > 0
    cr_end[has_end] = data[ends[has_end] - 1] == _CR
    blank = (length == 0) | ((length == 1) & cr_end)
    problems: dict[int, tuple[str, str]] = {}
    for record in np.flatnonzero(length > max_line).tolist():
        problems[record] = (OVERSIZED, f"the record is longer than {max_line} bytes")
    if has_quotes and len(closing) and closing[-1] == len(block) and len(ends):
        problems.setdefault(len(ends) - 1, (PARSE, "a quoted value is not closed before the end of the file"
                                           if at_end else "a quoted value is not closed within the record limit"))
    if block.count(b"\r") != block.count(b"\r\n"):
        returns = np.flatnonzero(data == _CR)
        lone = returns[(returns + 1 >= len(data)) | (data[np.minimum(returns + 1, len(data) - 1)] != _NEWLINE)]
        lone = lone[(lone + 1 < len(data)) | (lone + 1 != ends[-1] if len(ends) else True)]
        if has_quotes:
            lone = lone[~_inside(lone, opening, closing)]
        for record in np.unique(np.searchsorted(ends, lone)).tolist():
            if record < len(ends):
                problems.setdefault(record, (PARSE, "a carriage return outside quotes inside the record "
                                                    "(only CRLF and LF line ends are read)"))
    feed = ~blank
    feed[list(problems)] = False
    fed = np.flatnonzero(feed)
    rejected = [(int(record_lines[r]), reason, message, text_of(block[starts[r]:ends[r]]))
                for r, (reason, message) in problems.items()]
    skipped = []

    def handler(row):
        skipped.append(row.number - 1)
        record = fed[row.number - 1]
        rejected.append((int(record_lines[record]), PARSE, f"expected {row.expected_columns} fields as in the header "
                         f"{header}, got {row.actual_columns}", text_of(row.text.encode("utf-8", "surrogateescape"))))
        return "skip"

    multiline = has_quotes and len(breaks) != len(newlines)
    if len(fed):
        joined = block if len(fed) == len(ends) and block.endswith(b"\n") else join_spans(block, starts, ends, feed)
        table = pcsv.read_csv(
            io.BytesIO(joined),
            read_options=pcsv.ReadOptions(column_names=header, use_threads=False, block_size=len(joined) + 1),
            parse_options=pcsv.ParseOptions(newlines_in_values=multiline, invalid_row_handler=handler),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.binary() for name in header}, strings_can_be_null=True, null_values=[""],
                quoted_strings_can_be_null=False, check_utf8=False,
            ),
        )
    else:
        table = pa.table({name: pa.array([], pa.binary()) for name in header})
    keep = np.ones(len(fed), bool)
    keep[skipped] = False
    row_records = fed[keep]
    if table.num_rows != len(row_records):  # Arrow found other records than these: never guess
        raise ValueError(f"CSV block parsed into {table.num_rows} rows from {len(row_records)} records")
    row_lines = record_lines[row_records]
    columns, bad = [], np.zeros(table.num_rows, bool)
    messages: dict[int, tuple[str, str]] = {}
    for field in schema:
        converted, column_problems = convert_column(table.column(field.name).combine_chunks(), field)
        columns.append(converted)
        for row, problem in column_problems.items():
            if not bad[row]:
                bad[row] = True
                messages[row] = problem
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    if bad.any():
        for row, (reason, message) in messages.items():
            record = int(row_records[row])
            rejected.append((int(record_lines[record]), reason, message, text_of(block[starts[record]:ends[record]])))
        batch = batch.filter(pa.array(~bad))
        row_lines = row_lines[~bad]
    rejected.sort(key=lambda item: item[0])
    return Parsed(batch, np.asarray(row_lines, np.int64), rejected, lines)


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
        if pc.all(pc.match_substring_regex(text, INT_PATTERN)).as_py() and not to_number(text, pa.field(name, pa.int64()), pa.int64())[1]:
            kinds[name] = "int"
        elif not to_number(text, pa.field(name, pa.float64()), pa.float64())[1]:
            kinds[name] = "float"
        else:
            kinds[name] = "string"
    return kinds


def _header(line: bytes, path: str) -> list[str]:
    try:
        names = next(csv.reader([line.rstrip(b"\r").decode("utf-8")]), [])
    except UnicodeDecodeError:
        raise InputError(f"The header of {path} is not UTF-8 text.") from None
    return names


# -- the format ---------------------------------------------------------------------------------------------
class CsvFormat(Format):
    name = "csv"
    title = "CSV"
    extensions = (".csv",)
    splits = True
    same_columns = True

    def inspect(self, path, sample_bytes, declared):
        head = compression.head(path, sample_bytes + 1).removeprefix(BOM)
        line, _, rest = head.partition(b"\n")
        names = _header(line, path)
        if not names:
            raise InputError(f"Input file {path} has no header row: a CSV file starts with its column names.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(f"The header of {path} names columns {duplicates} more than once. Received: header={names}")
        complete = len(head) <= sample_bytes
        if not complete:
            rest = rest[: record_cut(rest, len(rest) + 1, False)]
        breaks, _ = record_breaks(rest)
        multiline = rest.find(b'"') >= 0 and len(breaks) != rest.count(b"\n")
        kinds = infer_csv_types(rest, names)
        types = {n: {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}.get(k) for n, k in kinds.items()}
        return Facts(tuple(names), types, whole=multiline)

    def read(self, handle, start, stop, schema, extent, *, context):
        header = list(context.header) or list(schema.names)
        number = 0  # lines before the block, from the item's first line
        for offset, block, snippet, end in record_blocks(handle, start, stop, extent, block_bytes=context.block_bytes,
                                                          max_record=context.max_record_bytes, cut=record_cut):
            skip = 0
            if offset == 0 and block is not None:
                block = block.removeprefix(BOM)
                cut = record_cut(block, 1, True)
                names = _header(block[:cut].rstrip(b"\n"), context.path)
                if names != header:
                    raise ReadError(f"{context.path}: its header is now {names}, not {header} as planned: the file "
                                    "changed during the run")
                block, skip = block[cut:], block.count(b"\n", 0, cut)
            if block is None:
                yield Piece(pa.RecordBatch.from_pylist([], schema=schema), np.zeros(0, np.int64),
                            [(number, OVERSIZED, f"the record is longer than {context.max_record_bytes} bytes",
                              text_of(snippet))], number, 1, 0 if context.compressed else end - offset)
                number = extent.lines
                continue
            parsed = parse_csv_block(block, header, schema, context.max_record_bytes, at_end=True)
            base = number + skip
            rejected = [(base + line, reason, message, raw) for line, reason, message, raw in parsed.rejected]
            yield Piece(parsed.rows, base + parsed.row_lines, rejected, base, parsed.rows.num_rows + len(rejected),
                        0 if context.compressed else end - offset)
            number = extent.lines

    def writer(self, path):
        return CsvWriter(path)


def _csv_column(column: pa.Array) -> pa.Array:
    from beam_cross.job.formats.jsonl import json_values

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_struct(kind) or pa.types.is_map(kind) or (is_list_type(kind) and pa.types.is_nested(kind.value_type)):
        return json_values(column)  # a nested value: its JSON text in the cell
    if is_list_type(kind):
        values = pc.cast(column, pa.list_(pa.string())) if not pa.types.is_binary(kind.value_type) else column
        return pc.binary_join(values, LIST_SEPARATOR)
    return column


class CsvWriter(Writer):
    """``pyarrow.csv``: a header row; lists written ``|``-separated, as the reader expects."""

    _writer = None

    def _write(self, batch):
        batch = pa.RecordBatch.from_arrays([_csv_column(c) for c in batch.columns], names=batch.schema.names)
        if self._writer is None:
            self._writer = pcsv.CSVWriter(self._handle, batch.schema, write_options=pcsv.WriteOptions(quoting_style="needed"))
        self._writer.write_batch(batch)

    def _finish(self):
        if self._writer is not None:
            self._writer.close()


FORMAT = CsvFormat()
