"""Compressed inputs: every codec read, BOM and CRLF, whole files by one worker.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os

import pyarrow as pa
import pytest
from reading import reasons, run

from beam_cross.job.readers import plan_input
from beam_cross.job.schema import parse_schema


def _zstd_open(path, mode):
    zstandard = pytest.importorskip("zstandard", reason="Beam reads .zst with the zstandard package")
    return zstandard.open(path, mode)


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open), (".zst", _zstd_open)])
def test_compressed_text_with_bom_and_crlf(tmp_path, suffix, opener):
    csv_path = tmp_path / f"in.csv{suffix}"
    with opener(csv_path, "wb") as handle:
        handle.write(b"\xef\xbb\xbfcity,hour\r\n" + b"".join(b"c%d,%d\r\n" % (i, i) for i in range(1000)) + b"x,y\r\n")
    plan = plan_input(str(csv_path), declared=parse_schema("hour:int"))
    assert plan.schema == pa.schema([("city", pa.string()), ("hour", pa.int64())])
    result = run(tmp_path, plan.files, "csv", plan.schema, range_bytes=100)  # compressed: read whole
    assert [row for _, row in result["rows"]] == [{"city": f"c{i}", "hour": i} for i in range(1000)]
    assert reasons(result) == [("1002", "type")]
    assert result["progress"] == os.path.getsize(csv_path)
    json_path = tmp_path / f"in.jsonl{suffix}"
    with opener(json_path, "wb") as handle:
        handle.write(b'\xef\xbb\xbf{"a": 1}\r\n{"a":\r2}\r\n')
    plan = plan_input(str(json_path))
    result = run(tmp_path, plan.files, "jsonl", plan.schema)
    assert result["rows"] == [(f"{json_path}:1", {"a": 1}), (f"{json_path}:2", {"a": 2})]
