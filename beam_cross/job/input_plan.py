"""The launcher side of reading the ``beam-cross`` inputs: ``plan_input`` (files, format, schema, totals).

``plan_input(pattern, input_format=None, schema_text=None)`` reads metadata only (the file listing,
Parquet footers, CSV headers and a bounded sample at the start of each text/TFRecord file, read
in parallel threads) and returns an :class:`InputPlan`; bad input arguments raise
:class:`~beam_cross.job.io.InputError`. The workers' side is :mod:`beam_cross.job.readers`.
"""

from __future__ import annotations

import csv
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job import binary_formats, json_lines, text_formats
from beam_cross.job.io import FORMATS, InputError, arrow_schema, format_of, parse_schema

SAMPLE_BYTES = 1 << 20
SAMPLING_THREADS = 16
MAX_RECORD_BYTES = 16 << 20
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class InputPlan:
    files: tuple[str, ...]
    format: str
    schema: pa.Schema
    float_columns: tuple[str, ...]  # crossing these needs bucketizing first
    total: int  # rows (Parquet) or bytes (other formats) of the input, for progress
    total_unit: str  # "rows" or "bytes"


# -- launcher side --------------------------------------------------------------------------------------
def list_files(patterns) -> list[tuple[str, int]]:
    """``(path, size)`` of the files of paths, globs or directories, sorted (``_*`` and ``.*`` skipped)."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    expanded = [FileSystems.join(p.rstrip("/"), "*") if os.path.isdir(p) or (p.endswith("/") and "://" in p) else p
                for p in patterns]
    found = sorted({
        (m.path, m.size_in_bytes) for result in FileSystems.match(expanded) for m in result.metadata_list
        if not os.path.basename(m.path).startswith((".", "_"))
    })
    if not found:
        raise InputError(f"`--input` matches no file. Received: input={patterns[0] if len(patterns) == 1 else patterns!r}")
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
        with ThreadPoolExecutor(SAMPLING_THREADS) as pool:
            footers = list(pool.map(_footer, non_empty))
        for path, metadata in zip(non_empty, footers):
            total += metadata.num_rows
            file_schema = metadata.schema.to_arrow_schema()
            if schema is None:
                schema = file_schema
            elif file_schema.remove_metadata() != schema.remove_metadata():
                raise InputError(f"Parquet file {path} has schema {file_schema}, unlike the first file's {schema}.")
    else:
        found: dict = {}
        order: list[str] = []
        sample = functools.partial(_file_types, fmt=fmt, sample_bytes=sample_bytes, declared=declared.names)
        with ThreadPoolExecutor(SAMPLING_THREADS) as pool:  # remote filesystems: the files' heads in parallel
            for path, (names, types) in zip(non_empty, pool.map(sample, non_empty)):
                if fmt == "csv":
                    if order and set(names) != set(order):
                        raise InputError(f"{path} has columns {names}, unlike the first file's {order}.")
                    order = order or names
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


def _footer(path: str):
    with FileSystems.open(path) as handle:
        return pq.ParquetFile(handle).metadata


def _file_types(path: str, fmt: str, sample_bytes: int, declared) -> tuple[list[str], dict]:
    """(CSV header or [], types seen at the start of one file)."""
    try:
        if fmt == "csv":
            names, sample = csv_header(path, sample_bytes)
            kinds = text_formats.infer_csv_types(sample, names)
            return names, {n: {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}.get(k) for n, k in kinds.items()}
        if fmt == "jsonl":
            return [], json_lines.infer_json_schema(_head(path, sample_bytes), declared)
        return [], binary_formats.infer_example_types(_sample_records(path, sample_bytes), declared)
    except InputError:
        raise
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None


def _is_float(kind) -> bool:
    if is_list_type(kind):
        kind = kind.value_type
    return pa.types.is_floating(kind)


def _sample_records(path: str, sample_bytes: int) -> list[bytes]:
    records, size = [], 0
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        try:
            for _, record, problem in binary_formats.tfrecord_frames(handle, path, MAX_RECORD_BYTES):
                if problem is None:
                    records.append(record)
                    size += len(record)
                if size > sample_bytes or len(records) >= 10_000:
                    break
        except binary_formats.CorruptFile:
            pass  # the read will report it
    return records
