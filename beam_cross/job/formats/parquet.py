"""Parquet: read by row group (a byte range reads the row groups that start in it), written with the
batch's own Arrow types (timestamps, decimals, bools, uint64, binary, dictionary strings pass through).

A Parquet file carries its schema and row counts, so planning reads footers only, and the run checks
that every row group of every file was read exactly once with the rows its footer gives.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_cross.job.errors import ReadError
from beam_cross.job.formats.base import Facts, Format, Piece, Writer

BATCH_ROWS = 1 << 16
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default row group size (rows)
ROW_GROUP_BYTES = 64 * 1024 * 1024  # ...and a byte bound, so wide rows stay bounded too


def row_group_offset(row_group) -> int:
    """Where a row group starts in its file (its first column chunk's first page)."""
    column = row_group.column(0)
    if column.has_dictionary_page and column.dictionary_page_offset:
        return min(column.dictionary_page_offset, column.data_page_offset)
    return column.data_page_offset


def footer(path: str):
    with FileSystems.open(path) as handle:
        return pq.ParquetFile(handle).metadata


class ParquetFormat(Format):
    name = "parquet"
    title = "Parquet"
    extensions = (".parquet",)
    splits = True
    declared_types = False

    def inspect(self, path, sample_bytes, declared):
        metadata = footer(path)
        schema = metadata.schema.to_arrow_schema()
        groups = tuple((row_group_offset(metadata.row_group(i)), metadata.row_group(i).num_rows)
                       for i in range(metadata.num_row_groups))
        return Facts(tuple(schema.names), {f.name: f.type for f in schema}, schema=schema, rows=metadata.num_rows,
                     groups=groups)

    def read(self, handle, start, stop, schema, extent, *, context):
        parquet = pq.ParquetFile(handle)
        if parquet.schema_arrow.remove_metadata() != schema.remove_metadata():
            raise ReadError(f"{context.path}: its schema is now {parquet.schema_arrow}, not {schema} as planned: the "
                            "file changed during the run")
        first, groups = 0, []
        extent.begin, extent.end = start, min(stop, handle.size() if hasattr(handle, "size") else stop)
        for index in range(parquet.num_row_groups):
            group = parquet.metadata.row_group(index)
            if start <= row_group_offset(group) < stop:
                read = 0
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[index], use_threads=False):
                    batch = batch.replace_schema_metadata(schema.metadata)
                    yield Piece(batch, None, first=first + read, records=batch.num_rows, progress=batch.num_rows)
                    read += batch.num_rows
                groups.append((index, read))
            first += group.num_rows
        extent.groups = tuple(groups)

    def writer(self, path):
        return ParquetWriter(path)


class ParquetWriter(Writer):
    """Batches gathered into row groups of about pyarrow's default size."""

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


FORMAT = ParquetFormat()
