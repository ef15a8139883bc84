"""What the formats of ``beam-cross`` share: the :class:`Format` they implement, the :class:`Piece`
they read, the reasons of rows rejected while reading, the writer base, and every reading constant.

A format reads one *work item* of a file (a byte range, or the whole file) from an open handle and
yields pieces: a RecordBatch of the good rows typed by the run's schema, plus the rejected records
of the same place, each ``(number, reason, message, raw)``. Numbers count records from the item's
first record (lines for text, 0-based; records for TFRecord; rows for Parquet); the reader of
:mod:`beam_cross.job.readers` turns them into ``file:line`` with the counts it keeps. What the read
consumed (its first and last byte, its lines) goes into the :class:`Extent` it is given, which the
run checks against the plan: every planned byte read exactly once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

RANGE_BYTES = 64 << 20  # a work item of an uncompressed splittable file
BLOCK_BYTES = 4 << 20  # read at a time, and the text handed to a parser at a time
MAX_RECORD_BYTES = 16 << 20  # a longer line or record is rejected as oversized
SAMPLE_BYTES = 1 << 20  # the head of each file read at planning to infer column types
SNIPPET_CHARS = 1000  # how much of a rejected line its record keeps
LIST_SEPARATOR = "|"  # between the values of a list column in a CSV cell
BOM = b"\xef\xbb\xbf"

# Reasons of rows rejected while reading (the crossing reasons are in beam_cross.core.errors).
PARSE = "parse"  # not CSV / JSON / a tf.Example, wrong number of fields, a corrupt record
TYPE = "type"  # a value does not parse as its column's declared or inferred type
ENCODING = "encoding"  # text that is not UTF-8 (or a JSON "\ud800" lone surrogate escape)
OVERSIZED = "oversized"  # a line or record longer than the reader's limit
UNKNOWN_COLUMN = "unknown_column"  # a JSON key / tf.Example feature that the schema does not have


@dataclass
class Piece:
    """Rows read from one place of a work item: row ``i`` is record ``numbers[i]`` (``first + i`` when None)."""

    rows: pa.RecordBatch
    numbers: np.ndarray | None = None
    rejected: list = field(default_factory=list)  # (record number, reason, message, raw)
    first: int = 0  # the number of the first record of the piece
    records: int = 0  # records read (rows + rejected)
    progress: int = 0  # bytes (text, TFRecord) or rows (Parquet) of the input this piece stands for


@dataclass
class Extent:
    """What one work item consumed, filled in by the format's ``read``.

    Byte formats: ``[begin, end)`` of the file read (for a text range: from its first line to the end
    of its last record). Parquet: the row groups read and their rows. ``lines`` counts the line breaks
    a text read went through (blank lines and the header included).
    """

    begin: int = 0
    end: int = 0
    lines: int = 0
    groups: tuple = ()  # Parquet: (row group index, rows) read


@dataclass(frozen=True)
class Facts:
    """What planning learns from one file's metadata and head."""

    columns: tuple  # column names in the file's order (CSV header; keys in order of first appearance)
    types: dict  # name -> Arrow type, or None (no evidence)
    schema: pa.Schema | None = None  # the exact schema, for self-describing files (Parquet)
    rows: int | None = None  # rows, when the metadata says (Parquet)
    groups: tuple = ()  # Parquet: (first byte, rows) of each row group
    whole: bool = False  # read the file whole, never as byte ranges (CSV: quoted line breaks in its head)


class Format:
    """One input / output format. Subclasses set the class attributes and implement the methods."""

    name = ""
    title = ""  # as messages name it
    extensions: tuple = ()  # lower case, with the dot; the first is the suffix of written files
    splits = False  # uncompressed files may be read as several byte ranges
    declared_types = True  # ``--schema`` applies (Parquet files carry their own types)
    typed_values = False  # values carry their type (JSON, tf.Example): a float in an int column is rejected per row
    same_columns = False  # every file must hold the same columns (CSV header)

    @property
    def suffix(self) -> str:
        return self.extensions[0]

    def inspect(self, path: str, sample_bytes: int, declared: frozenset) -> Facts:
        """Facts of one file, from its metadata and a head of at most ``sample_bytes``."""
        raise NotImplementedError

    def read(self, handle, start: int, stop: float, schema: pa.Schema, extent: Extent, *, context):
        """Yields the pieces of the records that start in ``[start, stop)`` of the open ``handle``."""
        raise NotImplementedError

    def writer(self, path: str) -> Writer:
        raise NotImplementedError


@dataclass(frozen=True)
class ReadContext:
    """What a read knows beyond its handle: the path (for messages), the planned header, the limits."""

    path: str
    header: tuple = ()
    block_bytes: int = BLOCK_BYTES
    max_record_bytes: int = MAX_RECORD_BYTES
    compressed: bool = False
    whole: bool = False  # the item is the whole file (CSV: quoted line breaks may be anywhere)


class Writer:
    """Rows of one output file: ``write(batch) -> rows``, ``close() -> rows`` (the writer's own count)."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        with writing(path):
            self._handle = FileSystems.create(path)

    def write(self, batch: pa.RecordBatch) -> int:
        if batch.num_rows:
            with writing(self.path):
                self._write(batch)
            self.rows += batch.num_rows
        return batch.num_rows

    def close(self) -> int:
        with writing(self.path):
            self._finish()
            self._handle.close()
        return self.rows

    def start(self, schema: pa.Schema) -> None:
        """Opens the file for ``schema`` before any row (so an empty file still has a header / schema)."""
        self._write(pa.RecordBatch.from_pylist([], schema=schema))

    def _write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass


@contextlib.contextmanager
def writing(path: str):
    """Re-raises a filesystem error (no space, no permission...) naming the file being written."""
    try:
        yield
    except OSError as error:
        if error.errno is None:
            raise
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from error


# -- helpers of the readers ------------------------------------------------------------------------------
def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def one_batch(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """``table`` as one RecordBatch of ``schema`` (an empty one when it has no rows)."""
    if table.schema != schema:
        table = table.cast(schema)
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else empty_batch(schema)


def text_of(raw: bytes) -> str:
    """A rejected line as text for its record: decoded leniently, line end removed, shortened."""
    text = raw.rstrip(b"\r\n")[: SNIPPET_CHARS * 4].decode("utf-8", "backslashreplace")
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."


def schema_text(schema: pa.Schema) -> str:
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"


def unknown_message(names, schema) -> str:
    return (f"key(s) {sorted(names)} are not in the input schema {schema_text(schema)}, which is inferred "
            f"from the first lines of each file; declare them with `--schema name:type`")


def is_float(kind: pa.DataType) -> bool:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return pa.types.is_floating(kind)
