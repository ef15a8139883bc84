"""Column types of the ``beam-cross`` inputs: ``--schema`` parsed once, and its Arrow schema.

Types are ``string``, ``int``, ``float`` and their lists ``string_list``, ``int_list``, ``float_list``.

>>> parse_schema("country:string,hour:int")
{'country': 'string', 'hour': 'int'}
>>> arrow_schema({"tags": "string_list"})
tags: list<item: string>
  child 0, item: string
"""

from __future__ import annotations

import os

import pyarrow as pa
import yaml

from beam_cross.job.errors import InputError

TYPES = ("string", "int", "float", "string_list", "int_list", "float_list")
_ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}


def parse_schema(text_or_path: str | None) -> dict[str, str]:
    """``"country:string,hour:int,tags:string_list"``, or a JSON/YAML file mapping column -> type."""
    if not text_or_path:
        return {}
    if os.path.exists(text_or_path):
        with open(text_or_path) as handle:
            schema = yaml.safe_load(handle) or {}
        if not isinstance(schema, dict):
            raise InputError(f"A schema file must map column names to types. Received: {schema!r}")
    else:
        schema = {}
        for item in text_or_path.split(","):
            name, _, kind = item.partition(":")
            if not name.strip() or not kind.strip():
                raise InputError(f"`--schema` must look like `name:type,name:type`. Received: schema={text_or_path!r}")
            schema[name.strip()] = kind.strip()
    for name, kind in schema.items():
        if kind not in TYPES:
            raise InputError(f"Column `{name}` has an unknown type. Types are {TYPES}. Received: {kind!r}")
    return {str(k): str(v) for k, v in schema.items()}


def arrow_schema(schema: dict[str, str]) -> pa.Schema:
    """The Arrow schema of column types (``parse_schema``'s result)."""
    fields = []
    for name, kind in schema.items():
        arrow = _ARROW_TYPES[kind.removesuffix("_list")]
        fields.append(pa.field(name, pa.list_(arrow) if kind.endswith("_list") else arrow))
    return pa.schema(fields)
