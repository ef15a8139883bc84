"""A stand-in for the columnar reader (``ReadChunks``, ``plan_input``) over :mod:`beam_cross.io`'s row reader.

Same interface as the splittable reader it stands for: ``ReadChunks(files, fmt, schema)`` turns
PBegin into one PCollection of :class:`Chunk`; ``plan_input`` describes the input from metadata.
It reads one file per worker and converts dict rows to RecordBatches; a row whose value does not
fit its column's Arrow type is rejected (reason ``type``), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_cross import io
from beam_cross.sources import rejection

CHUNK_ROWS = 65_536


class Chunk(NamedTuple):
    """Rows read from one piece of one file: ``rows`` (RecordBatch), ``rejected`` records, where, how many."""

    rows: pa.RecordBatch
    rejected: tuple
    source: str
    rows_read: int


@dataclass(frozen=True)
class InputPlan:
    files: tuple
    format: str
    schema: pa.Schema
    float_columns: tuple
    total: int
    unit: str  # "rows" or "bytes"


def plan_input(pattern, input_format=None, schema_text=None) -> InputPlan:
    files = io.expand_input(pattern)
    fmt = input_format
    if fmt is None:
        formats = {io.format_of(f) for f in files}
        if len(formats) > 1:
            raise io.InputError(f"`--input` {pattern} mixes formats {sorted(formats)}; pass files of one format "
                                "(or `--input_format`).")
        fmt = formats.pop()
    sizes = {m.path: m.size_in_bytes for r in FileSystems.match(files) for m in r.metadata_list}
    non_empty = [f for f in files if sizes.get(f, 0) > 0]
    if not non_empty:
        raise io.InputError(f"Every input file is empty: {files}")
    declared = io.parse_schema(schema_text)
    if fmt == "parquet":
        with FileSystems.open(non_empty[0]) as handle:
            schema = pq.read_schema(handle)
        total = 0
        for path in non_empty:
            with FileSystems.open(path) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        floats = tuple(f.name for f in schema if io.arrow_type_name(f.type).startswith("float"))
        return InputPlan(tuple(files), fmt, schema, floats, total, "rows")
    inferred, columns = io.sample_schema(non_empty[0], fmt)
    if fmt == "csv" and len(set(columns)) != len(columns):
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        raise io.InputError(f"The CSV header of {non_empty[0]} repeats column names {duplicates}; each must be unique.")
    if fmt != "csv":  # JSON / tf.Example values carry their own types: a mixed int/float column stays int
        inferred = {k: ("int" if v == "float" else "int_list" if v == "float_list" else v) for k, v in inferred.items()}
    types = {**inferred, **declared}
    floats = tuple(n for n, t in types.items() if t.startswith("float") and (fmt == "csv" or n in declared))
    return InputPlan(tuple(files), fmt, io.arrow_schema(types), floats, sum(sizes.values()), "bytes")


def _floats_in_ints(row, schema):
    for field in schema:
        value = row.get(field.name)
        values = value if isinstance(value, list) else [value]
        if pa.types.is_integer(getattr(field.type, "value_type", field.type)) and any(isinstance(v, float) for v in values):
            return field.name
    return None


def _to_batch(rows, sources, schema):
    floats = [_floats_in_ints(row, schema) for row in rows]
    if any(floats):  # Arrow would truncate 13.5 to 13: reject the row instead
        rejected = [rejection("float", f"{source}: column `{name}` holds a float. Received: value={row[name]!r}", row,
                              source=source, feature=name)
                    for row, source, name in zip(rows, sources, floats) if name]
        keep = [i for i, name in enumerate(floats) if not name]
        batch, bad = _to_batch([rows[i] for i in keep], [sources[i] for i in keep], schema)
        return batch, rejected + bad
    try:
        return pa.RecordBatch.from_pylist(rows, schema=schema), []
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        good, rejected = [], []
        for row, source in zip(rows, sources):
            try:
                pa.RecordBatch.from_pylist([row], schema=schema)
                good.append(row)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
                rejected.append(rejection(io.TYPE, f"{source}: {error}", row, source=source))
        return pa.RecordBatch.from_pylist(good, schema=schema), rejected


class _ReadFile(beam.DoFn):
    def __init__(self, fmt, schema):
        self._fmt = fmt
        self._schema = schema

    def process(self, path):
        if self._fmt == "parquet":
            with FileSystems.open(path) as handle:
                for number, batch in enumerate(pq.ParquetFile(handle).iter_batches(batch_size=CHUNK_ROWS)):
                    yield Chunk(batch, (), f"{path}:batch {number}", batch.num_rows)
            return
        rows, sources, rejected, read = [], [], [], 0
        for item in io.read_file(path, self._fmt, {f.name: io.arrow_type_name(f.type) for f in self._schema}):
            read += 1
            if isinstance(item, dict):
                rows.append({f: item.get(f) for f in self._schema.names})
                sources.append(f"{path}:row {read}")
            else:
                reason, source, raw, message = item
                rejected.append(rejection(reason, f"{source}: {message}", raw, source=source))
            if read % CHUNK_ROWS == 0:
                yield self._chunk(path, rows, sources, rejected, read)
                rows, sources, rejected, read = [], [], [], 0
        if read:
            yield self._chunk(path, rows, sources, rejected, read)

    def _chunk(self, path, rows, sources, rejected, read):
        batch, bad = _to_batch(rows, sources, self._schema)
        return Chunk(batch, tuple(rejected + bad), path, read)


class ReadChunks(beam.PTransform):
    def __init__(self, files, fmt, schema):
        super().__init__()
        self._files, self._fmt, self._schema = list(files), fmt, schema

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "Spread" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ReadFile(self._fmt, self._schema))
        )
