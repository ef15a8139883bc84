"""Formats and column types of the ``beam-cross`` command: file extensions, ``--schema``, input errors.

Formats: ``csv`` (a header row, then rows), ``jsonl`` (one JSON object per line), ``parquet`` and
``tfrecord`` (``tf.Example`` records). Column types (a *schema*) are ``string``, ``int``, ``float``
and their lists ``string_list``, ``int_list``, ``float_list``; they come from ``--schema`` or are
inferred by :mod:`beam_cross.job.input_plan`, and :mod:`beam_cross.job.readers` reads every format
as Arrow RecordBatches of those types.
"""

from __future__ import annotations

import os

import pyarrow as pa
import yaml
from apache_beam.io.filesystem import CompressionTypes

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


class InputError(ValueError):
    """The input as a whole cannot be read (no files, an empty file, a missing column...)."""


# -- files ----------------------------------------------------------------------------------------
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


_ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}


def arrow_schema(schema: dict[str, str]) -> pa.Schema:
    fields = []
    for name, kind in schema.items():
        base = kind.removesuffix("_list")
        arrow = _ARROW_TYPES[base]
        fields.append(pa.field(name, pa.list_(arrow) if kind.endswith("_list") else arrow))
    return pa.schema(fields)
