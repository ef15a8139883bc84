"""Parquet: types pass through, row groups split between work items, files must share a schema.
"""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reading import run

from beam_cross.job.errors import InputError
from beam_cross.job.readers import plan_input
from beam_cross.job.schema import parse_schema


def typed_table(rows: int = 10) -> pa.Table:
    return pa.table({
        "ts": pa.array([datetime.datetime(2020, 1, 1, i % 24) for i in range(rows)], pa.timestamp("us", tz="UTC")),
        "price": pa.array([decimal.Decimal(f"{i}.25") for i in range(rows)], pa.decimal128(7, 2)),
        "flag": pa.array([i % 2 == 0 for i in range(rows)]),
        "big": pa.array([2**64 - 1 - i for i in range(rows)], pa.uint64()),
        "blob": pa.array([bytes([255, i]) for i in range(rows)], pa.binary()),
        "city": pa.array([["paris", "lyon"][i % 2] for i in range(rows)]).dictionary_encode(),
        "weight": pa.array([i / 4 for i in range(rows)], pa.float32()),
        "tags": pa.array([list(range(i % 3)) for i in range(rows)], pa.list_(pa.int64())),
    })


def test_parquet_types_pass_through_and_row_groups_split(tmp_path):
    table = typed_table(10)
    path = str(tmp_path / "typed.parquet")
    pq.write_table(table, path, row_group_size=3)
    plan = plan_input(path)
    assert plan.schema.remove_metadata() == table.schema
    assert plan.float_columns == ("weight",)
    assert (plan.total, plan.total_unit) == (10, "rows")
    result = run(tmp_path, plan.files, plan.format, plan.schema, range_bytes=200)  # several ranges
    assert result["rows"] == [(f"{path}:row {i}", row) for i, row in enumerate(table.to_pylist())]
    assert result["rows_read"] == result["progress"] == 10
    assert result["rejected"] == []
    back = [pa.ipc.open_file(str(f)).read_all() for f in (tmp_path).glob("out-*/*.arrow")]
    assert all(t.schema.remove_metadata() == table.schema for t in back)


def test_parquet_files_must_share_a_schema(tmp_path):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": ["x"]}), tmp_path / "2.parquet")
    with pytest.raises(InputError, match="2.parquet has schema"):
        plan_input(str(tmp_path))
    with pytest.raises(InputError, match="does not apply to Parquet"):
        plan_input(str(tmp_path / "1.parquet"), declared=parse_schema("a:int"))
