"""Columnar, splittable reading of the ``beam-cross`` inputs: ``plan_input`` and ``ReadChunks``.

``plan_input(pattern, input_format=None, schema_text=None)`` (from :mod:`beam_cross.job.input_plan`)
runs on the launching machine and reads metadata only (file listing, Parquet footers, CSV headers
and a bounded sample at the start of each text/TFRecord file): it returns an ``InputPlan`` with the
files, the format, the Arrow schema, the columns known to be float, and a progress total (rows from
Parquet footers, else bytes). Bad input arguments raise ``InputError``.

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
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_cross.job import binary_formats, json_lines, text_formats
from beam_cross.job.input_plan import BOM, InputError, InputPlan, list_files, plan_input
from beam_cross.job.io import FORMATS
from beam_cross.job.rejections import rejection

RANGE_BYTES = 64 << 20
BLOCK_BYTES = 4 << 20
MAX_LINE_BYTES = 16 << 20

__all__ = ["Chunk", "InputError", "InputPlan", "ReadChunks", "plan_input", "read_item"]


@dataclass(frozen=True, eq=False)
class Chunk:
    """Rows read from one block of one file, with the rejected records of that block.

    ``rows`` holds the good rows typed by the schema (possibly none); ``rejected`` holds records
    shaped by :func:`beam_cross.job.rejections.rejection`; ``rows_read == rows.num_rows + len(rejected)``.
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
        if sorted(header) != sorted(schema.names):  # never drop a column, never guess one
            raise InputError(f"{path} has columns {header}, not those of the input schema {schema.names}")
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
                parsed = json_lines.parse_jsonl_block(block, schema, max_line)
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
        for path, size in list_files(self._files):
            if size == 0:
                continue
            if self._fmt == "tfrecord" or CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
                items.append((path, 0, float("inf")))  # read whole
            else:
                items += [(path, s, min(s + self._range, size)) for s in range(0, size, self._range)]
        return items

    def expand(self, pbegin):
        return (
            pbegin
            | "WorkItems" >> beam.Create(self.work_items())
            | "Read" >> beam.ParDo(_ReadItem(self._fmt, self._schema, self._options))
        )
