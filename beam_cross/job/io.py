"""File formats of the ``beam-cross`` command: finding files, column types, parsing and writing rows.

A row is a dict of plain Python values: ``str``, ``int``, ``float``, ``None`` (missing) or a list of
them (a multivalent feature). Everything here works on one file or one shard at a time, so the Beam
transforms in :mod:`beam_cross.job.sources` stay thin.

Formats: ``csv`` (a header row, then rows), ``jsonl`` (one JSON object per line), ``parquet`` and
``tfrecord`` (``tf.Example`` records). TFRecord support needs neither TensorFlow nor its protos (see
:mod:`beam_cross.job.tf_example`).

Column types (a *schema*) are ``string``, ``int``, ``float`` and their lists ``string_list``,
``int_list``, ``float_list``. They come from the ``--schema`` option or are inferred:

- CSV: from a sample of rows, a column whose every non-empty cell parses as an int is ``int``, else
  ``float`` if every one parses as a float, else ``string``. An empty cell is a missing value
  (``None``). A multivalent CSV column must be declared as a list type; its cell holds the values
  separated by ``|`` (an empty cell is then an empty list). A cell that does not parse as its
  column's type rejects the row (reason ``type``).
- JSON Lines: values are used as they are (JSON already has types); the schema only matters when
  writing another format.
- Parquet: the file's own Arrow schema.
- TFRecord: a feature with one value is a scalar (no value: missing), more than one a list, unless
  the schema declares it a list type.
"""

from __future__ import annotations

import csv
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil

from beam_cross.job.tf_example import decode_example

FORMATS = ("csv", "jsonl", "parquet", "tfrecord")
EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}
TYPES = ("string", "int", "float", "string_list", "int_list", "float_list")
LIST_SEPARATOR = "|"

# Reasons for rows rejected while reading, alongside beam_cross.core.errors reasons for crossing.
PARSE = "parse"  # the record is not valid CSV / JSON / tf.Example
TYPE = "type"  # a value does not parse as its column's declared or inferred type


class InputError(ValueError):
    """The input as a whole cannot be read (no files, an empty file, a missing column...)."""


# -- files ----------------------------------------------------------------------------------------
def expand_input(pattern: str) -> list[str]:
    """The files of a path, a glob, or a directory (every file directly inside it), sorted."""
    if os.path.isdir(pattern) or (pattern.endswith("/") and "://" in pattern):
        pattern = FileSystems.join(pattern.rstrip("/"), "*")
    files = sorted(
        m.path for result in FileSystems.match([pattern]) for m in result.metadata_list
        if not os.path.basename(m.path).startswith((".", "_"))  # _SUCCESS, .crc and such
    )
    if not files:
        raise InputError(f"`--input` matches no file. Received: input={pattern!r}")
    return files


def format_of(path: str) -> str:
    """The format of a file from its extension, under any compression Beam detects (``.gz``, ``.bz2``...)."""
    stem, extension = os.path.splitext(path.lower())
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        extension = os.path.splitext(stem)[1]
    if extension not in EXTENSIONS:
        raise InputError(
            f"Cannot tell the format of {path!r} from its extension; pass `--input_format` "
            f"(one of {', '.join(FORMATS)})."
        )
    return EXTENSIONS[extension]


def _open(path, mode="rb"):
    return FileSystems.open(path) if mode == "rb" else FileSystems.create(path)


def _open_text(path):
    """A text handle of ``path`` on any Beam filesystem (closing it closes the file)."""
    return io.TextIOWrapper(FileSystems.open(path), encoding="utf-8", newline="")


# -- schema ---------------------------------------------------------------------------------------
def parse_schema(text_or_path: str | None) -> dict[str, str]:
    """``"country:string,hour:int,tags:string_list"``, or a JSON/YAML file mapping column -> type."""
    if not text_or_path:
        return {}
    if os.path.exists(text_or_path):
        with open(text_or_path) as handle:
            schema = yaml.safe_load(handle) or {}
        if not isinstance(schema, dict):
            raise ValueError(f"A schema file must map column names to types. Received: {schema!r}")
    else:
        schema = {}
        for item in text_or_path.split(","):
            name, _, kind = item.partition(":")
            if not name.strip() or not kind.strip():
                raise ValueError(f"`--schema` must look like `name:type,name:type`. Received: schema={text_or_path!r}")
            schema[name.strip()] = kind.strip()
    for name, kind in schema.items():
        if kind not in TYPES:
            raise ValueError(f"Column `{name}` has an unknown type. Types are {TYPES}. Received: {kind!r}")
    return {str(k): str(v) for k, v in schema.items()}


def _parses(cell: str, kind) -> bool:
    try:
        kind(cell)
    except ValueError:
        return False
    return True


def infer_csv_schema(header: list[str], rows: list[list[str]]) -> dict[str, str]:
    schema = {}
    for index, name in enumerate(header):
        cells = [row[index] for row in rows if index < len(row) and row[index] != ""]
        if cells and all(_parses(c, int) for c in cells):
            schema[name] = "int"
        elif cells and all(_parses(c, float) for c in cells):
            schema[name] = "float"
        else:
            schema[name] = "string"
    return schema


def type_of_value(value) -> str | None:
    """The schema type of one Python value (None when it says nothing, e.g. None or [])."""
    if isinstance(value, bool):
        return "int"
    for python, name in ((str, "string"), (bytes, "string"), (int, "int"), (float, "float")):
        if isinstance(value, python):
            return name
    if isinstance(value, (list, tuple)):
        kinds = {type_of_value(v) for v in value} - {None}
        return (kinds.pop() + "_list") if len(kinds) == 1 and "_list" not in next(iter(kinds)) else None
    return None


def infer_row_schema(rows) -> dict[str, str]:
    """Types of dict rows: a column seen with two types becomes ``string`` (or ``string_list``)."""
    seen: dict[str, set] = {}
    for row in rows:
        for name, value in row.items():
            seen.setdefault(name, set())
            kind = type_of_value(value)
            if kind:
                seen[name].add(kind)
    schema = {}
    for name, kinds in seen.items():
        if kinds == {"int", "float"}:
            schema[name] = "float"
        elif kinds == {"int_list", "float_list"}:
            schema[name] = "float_list"
        elif len(kinds) == 1:
            schema[name] = kinds.pop()
        else:
            schema[name] = "string_list" if any(k.endswith("_list") for k in kinds) else "string"
    return schema


def sample_schema(path: str, fmt: str, sample_rows: int = 10_000) -> tuple[dict[str, str], list[str]]:
    """The inferred schema and the column names of one file (read at pipeline construction)."""
    if fmt == "csv":
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise InputError(f"Input file {path} is empty: a CSV file needs a header row.")
            rows = [row for _, row in zip(range(sample_rows), reader)]
        return infer_csv_schema(header, rows), header
    if fmt == "parquet":
        with _open(path) as handle:
            arrow_schema = pq.read_schema(handle)
        return {f.name: arrow_type_name(f.type) for f in arrow_schema}, list(arrow_schema.names)
    rows = [r for _, r in zip(range(sample_rows), read_file(path, fmt, {})) if isinstance(r, dict)]
    schema = infer_row_schema(rows)
    return schema, list(schema)


def arrow_type_name(kind: pa.DataType) -> str:
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = arrow_type_name(kind.value_type)
        return inner + "_list" if "_list" not in inner else "string_list"
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    return "string"


_ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}


def arrow_schema(schema: dict[str, str]) -> pa.Schema:
    fields = []
    for name, kind in schema.items():
        base = kind.removesuffix("_list")
        arrow = _ARROW_TYPES[base]
        fields.append(pa.field(name, pa.list_(arrow) if kind.endswith("_list") else arrow))
    return pa.schema(fields)


# -- reading: each generator yields dict rows, or a rejection (a tuple: reason, source, raw, message)
def _csv_cell(cell: str, kind: str, column: str):
    base = kind.removesuffix("_list")
    convert = {"string": str, "int": int, "float": float}[base]
    if kind.endswith("_list"):
        return [convert(v) for v in cell.split(LIST_SEPARATOR)] if cell != "" else []
    return None if cell == "" else convert(cell)


def read_csv(path: str, schema: dict[str, str]):
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        for cells in reader:
            source = f"{path}:{reader.line_num}"
            if cells == []:
                continue  # a blank line is not a row
            if len(cells) != len(header):
                yield (PARSE, source, cells, f"expected {len(header)} fields as in the header {header}, got {len(cells)}")
                continue
            row, problem = {}, None
            for name, cell in zip(header, cells):
                kind = schema.get(name, "string")
                try:
                    row[name] = _csv_cell(cell, kind, name)
                except ValueError:
                    problem = f"column `{name}` must be {kind}. Received: value={cell!r}"
                    break
            yield (TYPE, source, cells, problem) if problem else row


def read_jsonl(path: str, schema: dict[str, str]):
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield (PARSE, f"{path}:{number}", line.rstrip("\n"), f"invalid JSON: {error}")
                continue
            if not isinstance(row, dict):
                yield (PARSE, f"{path}:{number}", line.rstrip("\n"), "a JSON Lines row must be an object")
                continue
            yield row


def read_parquet(path: str, schema: dict[str, str]):
    with _open(path) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=4096):
            yield from batch.to_pylist()


def read_tfrecord(path: str, schema: dict[str, str]):
    with _open(path) as handle:
        number = 0
        while True:
            try:
                record = _TFRecordUtil.read_record(handle)
            except ValueError as error:
                yield (PARSE, f"{path}:record {number}", None, f"corrupt TFRecord: {error}")
                return
            if record is None:
                return
            try:
                yield decode_example(record, schema)
            except Exception as error:  # protobuf's DecodeError; keep the record, never lose it
                yield (PARSE, f"{path}:record {number}", record.hex(), f"not a tf.Example: {error}")
            number += 1


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet, "tfrecord": read_tfrecord}


def read_file(path: str, fmt: str, schema: dict[str, str]):
    return READERS[fmt](path, schema)


# -- writing one shard ------------------------------------------------------------------------------
def count_rows(path: str, fmt: str) -> int:
    """Rows in one written file (used to check, after a run, that no row was lost)."""
    if fmt == "parquet":
        with _open(path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    if fmt == "csv":
        with _open_text(path) as handle:
            return max(sum(1 for row in csv.reader(handle) if row) - 1, 0)
    if fmt == "jsonl":
        with _open(path) as handle:
            return sum(1 for line in handle if line.strip())
    with _open(path) as handle:
        count = 0
        while _TFRecordUtil.read_record(handle) is not None:
            count += 1
        return count
