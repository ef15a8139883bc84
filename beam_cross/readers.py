"""Columnar, splittable reading of the ``beam-cross`` inputs: ``plan_input`` and ``ReadChunks``.

``plan_input(pattern, input_format=None, schema_text=None)`` runs on the launching machine and reads
metadata only (file listing, Parquet footers, CSV headers and a bounded sample of the start of each
text/TFRecord file): it returns an :class:`InputPlan` with the files, the format, the Arrow schema,
the columns known to be float, and a progress total (rows from Parquet footers, else bytes). Bad input
arguments raise :class:`InputError`.

``ReadChunks(files, fmt, schema)`` is a ``PBegin -> PCollection[Chunk]`` transform with one output.
Each file is cut into work items (byte ranges of ``range_bytes`` for uncompressed CSV, JSON Lines and
Parquet; one item per TFRecord or compressed file), spread with a ``Reshuffle`` so that many workers
read one large file, and read by a ``DoFn`` into :class:`Chunk` objects: a RecordBatch of the good
rows, typed by the schema, plus the rejected records of the same block, each with a reason and a
``file:line`` (``file:record N`` for TFRecord). ``rows_read`` counts every record once, so summing it
over the chunks gives the records of the input, and ``chunk.locate(indices)`` gives the place of good
rows (for rejections made after reading). A text range reads the lines that *start* in it, so ranges
never lose or repeat a line; line numbers are only counted from the file's start when a rejection
needs one. Memory is bounded by a block (``block_bytes`` of text, a Parquet batch, 20,000 records).

The work items go through ``beam.Create`` and a ``ParDo`` rather than a ``BoundedSource`` read:
Beam 2.77's DaskRunner turns ``beam.io.Read`` into nothing, while this shape runs on every runner.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_cross import binary_formats, text_formats
from beam_cross.io import FORMATS, InputError, arrow_schema, format_of, parse_schema
from beam_cross.sources import rejection

RANGE_BYTES = 64 << 20
BLOCK_BYTES = 4 << 20
MAX_LINE_BYTES = 16 << 20
SAMPLE_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
UNITS = {"csv": "line", "jsonl": "line", "tfrecord": "record", "parquet": "row"}

__all__ = ["Chunk", "InputError", "InputPlan", "ReadChunks", "plan_input", "read_item"]


@dataclass(frozen=True, eq=False)
class Chunk:
    """Rows read from one block of one file, with the rejected records of that block.

    ``rows`` holds the good rows typed by the schema (possibly none); ``rejected`` holds records
    shaped by :func:`beam_cross.sources.rejection`; ``rows_read == rows.num_rows + len(rejected)``.
    ``progress`` is the part of :attr:`InputPlan.total` this chunk stands for.
    """

    rows: pa.RecordBatch
    rejected: tuple
    source: str
    rows_read: int
    path: str = ""
    unit: str = "line"  # "line" (1-based), "record" or "row" (0-based)
    first: int | None = None  # the number of the block's first line/record/row; None: not counted yet
    offset: int = 0  # the byte offset of the block's first line (to count ``first`` when needed)
    positions: np.ndarray | None = None  # per row: its line/record/row relative to ``first``
    progress: int = 0

    def locate(self, indices) -> list[str]:
        """``file:line`` (``file:record N``, ``file:row N``) of the good rows at ``indices``."""
        first = self.first if self.first is not None else lines_before(self.path, self.offset) + 1
        where = (lambda n: f"{self.path}:{n}") if self.unit == "line" else (lambda n: f"{self.path}:{self.unit} {n}")
        return [where(first + (int(self.positions[i]) if self.positions is not None else int(i))) for i in indices]


@dataclass(frozen=True)
class InputPlan:
    files: tuple[str, ...]
    format: str
    schema: pa.Schema
    float_columns: tuple[str, ...]  # crossing these needs bucketizing first
    total: int  # rows (Parquet) or bytes (other formats) of the input, for progress
    total_unit: str  # "rows" or "bytes"


# -- launcher side --------------------------------------------------------------------------------------
def list_files(pattern: str) -> list[tuple[str, int]]:
    """``(path, size)`` of the files of a path, a glob or a directory, sorted (``_*`` and ``.*`` skipped)."""
    if os.path.isdir(pattern) or (pattern.endswith("/") and "://" in pattern):
        pattern = FileSystems.join(pattern.rstrip("/"), "*")
    found = sorted(
        (m.path, m.size_in_bytes) for result in FileSystems.match([pattern]) for m in result.metadata_list
        if not os.path.basename(m.path).startswith((".", "_"))
    )
    if not found:
        raise InputError(f"`--input` matches no file. Received: input={pattern!r}")
    return found


def _format(files, input_format) -> str:
    if input_format is not None:
        if input_format not in FORMATS:
            raise InputError(f"`--input_format` must be one of {FORMATS}. Received: input_format={input_format!r}")
        return input_format
    formats = {}
    for path, _ in files:
        formats.setdefault(format_of(path), path)
    if len(formats) > 1:
        raise InputError(
            f"The input mixes formats ({', '.join(f'{f} such as {p}' for f, p in sorted(formats.items()))}); "
            f"read one format per run, or pass `--input_format` if every file is of one format."
        )
    return next(iter(formats))


def _head(path: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a file (decompressed), cut after its last complete line."""
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        data = handle.read(limit + 1)
    if data.startswith(BOM):
        data = data[len(BOM):]
    if len(data) > limit:
        data = data[: data.rfind(b"\n") + 1]
    return data


def csv_header(path: str, sample_bytes: int = SAMPLE_BYTES) -> tuple[list[str], bytes]:
    """The column names of a CSV file and its sampled lines after the header."""
    head = _head(path, sample_bytes)
    line, _, rest = head.partition(b"\n")
    try:
        names = next(csv.reader([line.rstrip(b"\r").decode("utf-8")]), [])
    except UnicodeDecodeError:
        raise InputError(f"The header of {path} is not UTF-8 text.") from None
    if not names:
        raise InputError(f"Input file {path} has no header row: a CSV file starts with its column names.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"The header of {path} names columns {duplicates} more than once. Received: header={names}")
    return names, rest


def _merge(found: dict, path: str, types: dict, describe) -> None:
    for name, kind in types.items():
        if kind is None:
            found.setdefault(name, None)
        elif found.get(name) is None:
            found[name] = kind
        elif found[name] != kind:
            raise InputError(
                f"Column `{name}` is {describe(found[name])} in the first lines of one file and {describe(kind)} in "
                f"{path}; declare its type with `--schema {name}:type`."
            )


def plan_input(pattern: str, *, input_format: str | None = None, schema_text: str | None = None,
               sample_bytes: int = SAMPLE_BYTES) -> InputPlan:
    """The files, format, schema and progress total of an input, from metadata and file heads only.

    Inferred types come from a bounded sample at the start of *each* file, and files must agree, so
    a file's column types never depend on which other files are in the run.
    """
    files = list_files(pattern)
    fmt = _format(files, input_format)
    try:
        declared = arrow_schema(parse_schema(schema_text)) if schema_text else pa.schema([])
    except ValueError as error:
        raise InputError(str(error)) from None
    non_empty = [path for path, size in files if size > 0]
    if not non_empty:
        raise InputError(f"Every input file is empty: {[p for p, _ in files]}")
    total, unit = sum(size for _, size in files), "bytes"
    if fmt == "parquet":
        if schema_text:
            raise InputError("`--schema` does not apply to Parquet input: its column types come from the files.")
        schema, total, unit = None, 0, "rows"
        for path in non_empty:
            with FileSystems.open(path) as handle:
                metadata = pq.ParquetFile(handle).metadata
            total += metadata.num_rows
            file_schema = metadata.schema.to_arrow_schema()
            if schema is None:
                schema = file_schema
            elif file_schema.remove_metadata() != schema.remove_metadata():
                raise InputError(f"Parquet file {path} has schema {file_schema}, unlike the first file's {schema}.")
    else:
        found: dict = {}
        order: list[str] = []
        for path in non_empty:
            if fmt == "csv":
                names, sample = csv_header(path, sample_bytes)
                if order and set(names) != set(order):
                    raise InputError(f"{path} has columns {names}, unlike the first file's {order}.")
                order = order or names
                kinds = text_formats.infer_csv_types(sample, names)
                types = {n: {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}.get(k) for n, k in kinds.items()}
            elif fmt == "jsonl":
                try:
                    types = text_formats.infer_json_schema(_head(path, sample_bytes), declared.names)
                except ValueError as error:
                    raise InputError(f"{path}: {error}") from None
            else:
                try:
                    types = binary_formats.infer_example_types(_sample_records(path, sample_bytes), declared.names)
                except ValueError as error:
                    raise InputError(f"{path}: {error}") from None
            _merge(found, path, {n: t for n, t in types.items() if declared.get_field_index(n) < 0}, str)
            order += [n for n in types if n not in order]
        for field in declared:
            if fmt == "csv" and field.name not in order:
                raise InputError(f"`--schema` declares column `{field.name}`, which the CSV header does not have: {order}")
            if field.name not in order:
                order.append(field.name)
        schema = pa.schema([declared.field(n) if declared.get_field_index(n) >= 0 else pa.field(n, found.get(n) or pa.string())
                            for n in order])
    if not len(schema):
        raise InputError(f"No column found in the first lines of {non_empty[0]} (is it {fmt}?); pass `--input_format`.")
    floats = tuple(f.name for f in schema if _is_float(f.type))
    return InputPlan(tuple(p for p, _ in files), fmt, schema, floats, total, unit)


def _is_float(kind) -> bool:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return pa.types.is_floating(kind)


def _sample_records(path: str, sample_bytes: int) -> list[bytes]:
    records, size = [], 0
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        try:
            for _, record, problem in binary_formats.tfrecord_frames(handle, path, MAX_LINE_BYTES):
                if problem is None:
                    records.append(record)
                    size += len(record)
                if size > sample_bytes or len(records) >= 10_000:
                    break
        except binary_formats.CorruptFile:
            pass  # the read will report it
    return records


# -- worker side ----------------------------------------------------------------------------------------
def lines_before(path: str, offset: int) -> int:
    """How many line breaks a file holds before byte ``offset`` (read only when a line number is needed)."""
    count = 0
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        while offset > 0:
            data = handle.read(min(offset, BLOCK_BYTES))
            if not data:
                break
            count += data.count(b"\n")
            offset -= len(data)
    return count


def _line_blocks(handle, start: int, stop: float, block_bytes: int, max_line: int):
    """``(offset, lines, snippet, end offset)`` for the lines that start in ``[start, stop)``.

    ``lines`` holds whole lines (the last one of the file may lack its ``\\n``); an oversized line
    with no line break within ``max_line`` bytes comes alone as ``(offset, None, its first bytes)``
    and is skipped without being held in memory.
    """
    offset, buffer, eof = start, b"", False
    if start > 0:  # the line that holds byte start - 1 belongs to the previous range
        handle.seek(start - 1)
        offset = start - 1
        while True:
            data = handle.read(block_bytes)
            found = data.find(b"\n")
            if found >= 0 or not data:
                offset, buffer, eof = offset + found + 1, data[found + 1:], not data
                break
            offset += len(data)
        if eof:
            return
    while offset < stop:
        if not eof and (len(buffer) < block_bytes or buffer.find(b"\n") < 0):
            data = handle.read(block_bytes)
            eof = not data
            buffer += data
            continue
        if not buffer:
            return
        cut = buffer.rfind(b"\n")
        if cut < 0 and not eof:  # no line break in more than a block: an oversized line
            if len(buffer) <= max_line:
                data = handle.read(block_bytes)
                eof = not data
                buffer += data
                continue
            snippet, skipped = buffer[: text_formats.SNIPPET_CHARS * 4], len(buffer)
            while True:
                data = handle.read(block_bytes)
                found = data.find(b"\n")
                if found >= 0 or not data:
                    end = offset + skipped + (found + 1 if found >= 0 else len(data))
                    yield offset, None, snippet, end
                    offset, buffer, eof = end, data[found + 1:] if found >= 0 else b"", not data
                    break
                skipped += len(data)
            continue
        end = len(buffer) if cut < 0 else cut + 1
        if offset + end > stop:  # keep the lines that start before stop
            end = buffer.find(b"\n", int(stop - offset) - 1) + 1 or len(buffer)
        yield offset, buffer[:end], None, offset + end
        offset, buffer = offset + end, buffer[end:]


def _first_line(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        data = handle.read(64 << 10)
        while b"\n" not in data and len(data) < MAX_LINE_BYTES:
            more = handle.read(64 << 10)
            if not more:
                break
            data += more
    return data.removeprefix(BOM).partition(b"\n")[0].rstrip(b"\r")


def _text_chunks(path, fmt, schema, start, stop, block_bytes, max_line):
    header = None
    if fmt == "csv":
        header = next(csv.reader([_first_line(path).decode("utf-8", "replace")]), [])
        absent = [name for name in schema.names if name not in header]
        if absent:
            raise InputError(f"{path} has no column {absent}; its header is {header}")
    compressed = CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED
    base = 0 if start == 0 else None  # line breaks before the range's first line
    first_offset, done, skip_header = None, 0, fmt == "csv" and start == 0
    consumed = start if start == 0 else None
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        for offset, block, snippet, end in _line_blocks(handle, start, stop, block_bytes, max_line):
            first_offset = offset if first_offset is None else first_offset
            size, consumed = end - (offset if consumed is None else consumed), end
            if offset == 0 and block is not None and block.startswith(BOM):
                block = block[len(BOM):]
            if skip_header and block is not None:
                cut = block.find(b"\n") + 1 or len(block)
                offset, block, done, skip_header = offset + cut, block[cut:], done + 1, False
            if block is None:
                parsed = text_formats.Parsed(pa.RecordBatch.from_pylist([], schema=schema), np.zeros(0, np.int64),
                                             [(0, text_formats.OVERSIZED, f"the line is longer than {max_line} bytes",
                                               text_formats.text_of(snippet))], 1)
                skip_header = False
            elif fmt == "csv":
                parsed = text_formats.parse_csv_block(block, header, schema, max_line)
            else:
                parsed = text_formats.parse_jsonl_block(block, schema, max_line)
            if parsed.rejected and base is None:
                base = lines_before(path, first_offset)
            first = None if base is None else base + done + 1
            rejected = tuple(
                rejection(reason, f"{path}:{first + line}: {message}", raw, source=f"{path}:{first + line}")
                for line, reason, message, raw in parsed.rejected
            )
            yield Chunk(parsed.rows, rejected, f"{path}:{first}" if first else f"{path}@{offset}",
                        parsed.rows.num_rows + len(rejected), path, "line", first, offset, parsed.row_lines,
                        0 if compressed else size)
            done += parsed.lines
    if compressed:  # progress counts file bytes, which a decompressed offset does not tell
        with_size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        yield Chunk(pa.RecordBatch.from_pylist([], schema=schema), (), path, 0, path, "line", 0, 0, None, with_size)


def _piece_chunks(path, pieces, unit):
    for piece in pieces:
        rejected = tuple(
            rejection(reason, f"{path}:{unit} {number}: {message}", raw, source=f"{path}:{unit} {number}")
            for number, reason, message, raw in piece.rejected
        )
        positions = piece.positions
        yield Chunk(piece.rows, rejected, f"{path}:{unit} {piece.first}", piece.rows.num_rows + len(rejected), path, unit,
                    0 if positions is not None else piece.first, 0, positions, piece.progress)


def read_item(path: str, start: int, stop: float, fmt: str, schema: pa.Schema, *, block_bytes: int = BLOCK_BYTES,
              max_line_bytes: int = MAX_LINE_BYTES):
    """The chunks of one work item: the records of ``path`` that start in bytes ``[start, stop)``."""
    if fmt in ("csv", "jsonl"):
        yield from _text_chunks(path, fmt, schema, start, stop, block_bytes, max_line_bytes)
    elif fmt == "parquet":
        with FileSystems.open(path) as handle:
            yield from _piece_chunks(path, binary_formats.read_parquet(handle, schema, start, stop), "row")
    else:
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
            pieces = list_progress(binary_formats.read_tfrecord(handle, path, schema, max_line_bytes), size)
            yield from _piece_chunks(path, pieces, "record")


def list_progress(pieces, size):
    """Pieces with the file's size as the last one's progress (a TFRecord file is read whole)."""
    previous = None
    for piece in pieces:
        if previous is not None:
            yield previous
        previous = piece
    if previous is not None:
        previous.progress = size
        yield previous


class _ReadItem(beam.DoFn):
    def __init__(self, fmt, schema, options):
        self._fmt, self._schema, self._options = fmt, schema, options

    def process(self, item):
        path, start, stop = item
        yield from read_item(path, start, stop, self._fmt, self._schema, **self._options)


class ReadChunks(beam.PTransform):
    """Reads ``files`` (a pattern or a list of paths) of format ``fmt`` as :class:`Chunk` elements.

    Uncompressed CSV, JSON Lines and Parquet files are cut into ``range_bytes`` ranges read by
    different workers; TFRecord and compressed files are read whole, one worker each.
    """

    def __init__(self, files, fmt: str, schema: pa.Schema, *, range_bytes: int = RANGE_BYTES,
                 block_bytes: int = BLOCK_BYTES, max_line_bytes: int = MAX_LINE_BYTES):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")
        if not isinstance(schema, pa.Schema):
            raise TypeError(f"`schema` must be a pyarrow.Schema (see plan_input). Received: schema={schema!r}")
        self._files = [files] if isinstance(files, str) else list(files)
        self._fmt, self._schema, self._range = fmt, schema, int(range_bytes)
        self._options = {"block_bytes": int(block_bytes), "max_line_bytes": int(max_line_bytes)}

    def work_items(self) -> list[tuple[str, int, float]]:
        items = []
        for pattern in self._files:
            for path, size in list_files(pattern):
                whole = self._fmt == "tfrecord" or (
                    CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED)
                if size == 0:
                    continue
                if whole:
                    items.append((path, 0, float("inf")))
                else:
                    items += [(path, s, min(s + self._range, size)) for s in range(0, size, self._range)]
        return items

    def expand(self, pbegin):
        return (
            pbegin
            | "WorkItems" >> beam.Create(self.work_items())
            | "Read" >> beam.ParDo(_ReadItem(self._fmt, self._schema, self._options))
        )
