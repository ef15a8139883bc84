"""Writing Arrow RecordBatches to one file of each output format, counting the rows written.

``open_writer(path, fmt)`` returns a writer with ``write(batch) -> rows`` and ``close() -> rows``;
the count is the writer's own (the manifest and the row accounting use it). Every format is written
from the batch's columns without a Python object per row where the format allows it:

- ``parquet``: the batch's own Arrow types (timestamps, decimals, bools, uint64, binary, dictionary
  strings pass through); batches are gathered into row groups of about pyarrow's default size.
- ``csv``: ``pyarrow.csv`` (a header row; lists written ``|``-separated, as the reader expects).
- ``jsonl``: one JSON object per line, built column by column with Arrow compute kernels.
- ``tfrecord``: ``tf.Example`` records (see :mod:`beam_cross.job.tf_example`).

``RejectedWriter`` writes rejected-row records (dicts) as JSON Lines.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job.io import FORMATS
from beam_cross.job.tf_example import encode_batch, tfrecord_frames

SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "tfrecord": ".tfrecord"}
LIST_SEPARATOR = "|"
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default row group size (rows)
ROW_GROUP_BYTES = 64 * 1024 * 1024  # ...and a byte bound, so wide rows stay bounded too


class _Writer:
    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self._handle = FileSystems.create(path)

    def write(self, batch: pa.RecordBatch) -> int:
        if batch.num_rows:
            self._write(batch)
            self.rows += batch.num_rows
        return batch.num_rows

    def close(self) -> int:
        self._finish()
        self._handle.close()
        return self.rows

    def _start(self, schema: pa.Schema) -> None:
        """Opens the file for ``schema`` before any row (so an empty file still has a header / schema)."""
        self._write(pa.RecordBatch.from_pylist([], schema=schema))

    def _finish(self):
        pass


class ParquetWriter(_Writer):
    def __init__(self, path):
        super().__init__(path)
        self._writer = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0

    def _write(self, batch):
        if self._writer is None:
            self._schema = batch.schema
            self._writer = pq.ParquetWriter(self._handle, batch.schema)
        elif not batch.schema.equals(self._schema, check_metadata=False):
            batch = batch.cast(self._schema)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self):
        if self._pending:
            table = pa.Table.from_batches(self._pending)
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def _finish(self):
        if self._writer is not None:
            self._flush()
            self._writer.close()


def _plain(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _csv_column(column: pa.Array) -> pa.Array:
    column = _plain(column)
    kind = column.type
    if pa.types.is_struct(kind) or pa.types.is_map(kind) or (is_list_type(kind) and pa.types.is_nested(kind.value_type)):
        return _json_values(column)  # a nested value: its JSON text in the cell
    if is_list_type(column.type):
        values = pc.cast(column, pa.list_(pa.string())) if not pa.types.is_binary(column.type.value_type) else column
        return pc.binary_join(values, LIST_SEPARATOR)
    return column


class CsvWriter(_Writer):
    def __init__(self, path):
        super().__init__(path)
        self._writer = None

    def _write(self, batch):
        columns = [_csv_column(c) for c in batch.columns]
        batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        if self._writer is None:
            self._writer = pa_csv.CSVWriter(self._handle, batch.schema,
                                            write_options=pa_csv.WriteOptions(quoting_style="needed"))
        self._writer.write_batch(batch)

    def _finish(self):
        if self._writer is not None:
            self._writer.close()


# -- JSON Lines from columns -------------------------------------------------------------------------
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


def _json_python(column: pa.Array) -> pa.Array:
    def default(value):
        return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)

    return pa.array([json.dumps(v, default=default) for v in column.to_pylist()], pa.string())


def _json_values(column: pa.Array) -> pa.Array:
    """One JSON text per value of ``column`` ("null" for nulls), computed column-wise where possible."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        texts = pc.cast(column, pa.string())
    elif pa.types.is_floating(kind):
        texts = pc.cast(column, pa.string())
        texts = pc.if_else(pc.match_substring_regex(texts, "^-?[0-9]+$"), pc.binary_join_element_wise(texts, ".0", ""), texts)
        finite = pc.is_finite(column)
        texts = pc.if_else(finite, texts, pa.scalar(None, pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = _json_strings(pc.cast(column, pa.string()))
    elif is_list_type(kind) and (pa.types.is_integer(kind.value_type) or pa.types.is_string(kind.value_type)
                             or pa.types.is_large_string(kind.value_type) or pa.types.is_dictionary(kind.value_type)):
        inner = _json_values(column.flatten()).fill_null("null")
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        import numpy as np

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
        pieces.append(_json_values(batch.column(index)))
    pieces.append("}\n")
    return pc.binary_join_element_wise(*pieces, "")


def _payload(strings: pa.Array) -> memoryview:
    """The bytes of a string array without nulls, concatenated (no copy)."""
    offsets = strings.buffers()[1]
    import numpy as np

    positions = np.frombuffer(offsets, np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    return memoryview(strings.buffers()[2])[positions[0]:positions[-1]]


class JsonlWriter(_Writer):
    def _write(self, batch):
        self._handle.write(_payload(json_lines(batch)))


class TfrecordWriter(_Writer):
    def _write(self, batch):
        self._handle.write(tfrecord_frames(encode_batch(batch)))


WRITERS = {"parquet": ParquetWriter, "csv": CsvWriter, "jsonl": JsonlWriter, "tfrecord": TfrecordWriter}


def open_writer(path: str, fmt: str, schema: pa.Schema | None = None) -> _Writer:
    """A writer of ``fmt`` at ``path``; with ``schema``, the file is valid even if no row is written."""
    if fmt not in WRITERS:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")
    writer = WRITERS[fmt](path)
    if schema is not None:
        writer._start(schema)
    return writer


def json_default(value):
    """``json.dumps``' fallback for rejected rows: bytes as text (invalid UTF-8 backslash-escaped), the rest as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class RejectedWriter:
    """Rejected-row records (dicts) as JSON Lines; counts what it wrote."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self._handle = FileSystems.create(path)

    def write(self, records) -> int:
        lines = [json.dumps(r, default=json_default) + "\n" for r in records]
        if lines:
            self._handle.write("".join(lines).encode("utf-8"))
            self.rows += len(lines)
        return len(lines)

    def close(self) -> int:
        self._handle.close()
        return self.rows
