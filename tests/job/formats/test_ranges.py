"""Byte ranges: any split of a text file reads each record exactly once, on every runner.
"""

from __future__ import annotations

import json
import os
import re

import apache_beam as beam
import pyarrow as pa
import pytest
from reading import _Save, item, read_whole, reasons, run, summary

from beam_cross.job.readers import ReadChunks, plan_input, read_item
from beam_cross.job.schema import parse_schema


def _tricky_csv() -> bytes:
    lines = ["id,city", "1,p\u00e9rigueux", "", "2,\u65e5\u672c", "3,x\ry", "4,a", "5,\u00e9", "6,1_3"]
    return ("\r\n".join(lines) + "\r\n7,last").encode()


def _tricky_jsonl() -> bytes:
    return ('{"id": 1, "city": "p\u00e9rigueux"}\r\n\n{"id":\r2, "city": "\u65e5\u672c"}\n{"id": "x"}\r\n'
            '{"id": 4, "city": "\\ud800"}\n{"id": 5}\n{"id": 6, "city": "' + "z" * 40 + '"}\n{"id": 7}').encode()


@pytest.mark.parametrize("fmt, make", [("csv", _tricky_csv), ("jsonl", _tricky_jsonl)])
def test_any_split_reads_each_line_exactly_once(tmp_path, fmt, make):
    data = make()
    path = tmp_path / f"in.{fmt}"
    path.write_bytes(data)
    plan = plan_input(str(path), declared=parse_schema("id:int"))
    whole = read_whole(str(path), plan, max_record_bytes=40)
    assert whole["rows_read"] == len([line for line in data.split(b"\n") if line.strip()]) - (fmt == "csv")
    assert whole["rejected"] and all(r["reason"] and r["source"].startswith(f"{path}:") for r in whole["rejected"])
    boundaries = {i for i in range(1, len(data)) if data[i - 1:i] in (b"\r", b"\n") or data[i] >= 0x80}
    assert any(data[i - 1:i] == b"\r" for i in boundaries) and any(0x80 <= data[i] < 0xC0 for i in boundaries)
    for cut in range(1, len(data)):
        for second in (cut, min(len(data), cut + 5)):
            parts = [(0, cut, 7), (cut, second, 3), (second, len(data), 5)]
            chunks = [c for s, e, block in parts if s < e
                      for c in read_item(item(plan, s, e), fmt, plan.schema, block_bytes=block, max_record_bytes=40)]
            split = summary(chunks)
            assert split == whole, f"split at {cut}, {second}"
            assert split["progress"] == len(data)


def test_read_chunks_splits_a_file_into_ranges(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n" + b"".join(b"%d,\xc3\xa9%d\r\n" % (i, i) for i in range(2000)) + b"x,bad\n")
    plan = plan_input(str(path), declared=parse_schema("a:int"))
    assert len(ReadChunks(plan.files, "csv", plan.schema, range_bytes=1000).work_items()) > 20
    split = run(tmp_path, plan.files, "csv", plan.schema, range_bytes=1000, block_bytes=300)
    whole = run(tmp_path, plan.files, "csv", plan.schema)
    assert split == whole
    assert [row for _, row in whole["rows"]] == [{"a": i, "b": f"\u00e9{i}"} for i in range(2000)]
    assert reasons(whole) == [("2002", "type")]
    assert whole["rows_read"] == 2001 and whole["progress"] == os.path.getsize(path)


def test_read_chunks_argument_errors():
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        ReadChunks(["x"], "xml", pa.schema([]))
    with pytest.raises(TypeError, match="`schema` must be a pyarrow.Schema"):
        ReadChunks(["x"], "csv", {"a": "int"})


@pytest.mark.slow
def test_dask_runner_reads_the_same_chunks(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    import sys

    import cloudpickle
    from apache_beam.internal import cloudpickle as beam_cloudpickle
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.dask.dask_runner import DaskRunner

    for pickler in (cloudpickle, beam_cloudpickle):  # workers cannot import this test module
        pickler.register_pickle_by_value(sys.modules[__name__])
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n" + b"".join(b"%d,x%d\n" % (i, i) for i in range(3000)) + b"bad,row,here\n")
    plan = plan_input(str(path), declared=parse_schema("a:int"))
    expected = run(tmp_path, plan.files, "csv", plan.schema)
    folder = tmp_path / "dask"
    folder.mkdir()
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}"])
        pipeline = beam.Pipeline(runner=DaskRunner(), options=options)
        _ = pipeline | ReadChunks(plan.files, "csv", plan.schema, range_bytes=5000) | beam.ParDo(_Save(str(folder)))
        result = pipeline.run()
        result.wait_until_finish()
        result.client.close()
    chunks = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(folder / name) as handle:
                chunks.append({**json.load(handle), "rows": pa.ipc.open_file(str(folder / (name[:-5] + ".arrow"))).read_all()})
    assert len(chunks) > 3
    assert summary(chunks) == expected
    assert expected["rows_read"] == 3001 and reasons(expected) == [("3002", "parse")]


def _coverage(path, start, begin, end, lines=1, records=1, groups=(), error=None):
    return {"path": path, "start": start, "stop": end, "begin": begin, "end": end, "lines": lines,
            "records": records, "groups": [list(g) for g in groups], "error": error}


def test_the_coverage_check_names_each_way_a_file_can_be_misread(tmp_path):
    from beam_cross.job.errors import RowsLost
    from beam_cross.job.readers import check_coverage

    path = tmp_path / "in.csv"
    path.write_bytes(b"a\n" + b"1\n" * 99)
    planned = plan_input(str(path)).files
    name = str(path)
    good = [_coverage(name, 0, 0, 120, 60, 59), _coverage(name, 120, 120, 200, 40, 40)]
    assert check_coverage(planned, good) == [{"path": name, **planned[0].identity(), "rows": 99}]
    for coverage, message in [
        ([good[0]], "read up to byte 120 of 200"),
        ([good[0], _coverage(name, 120, 130, 200)], "bytes 120 to 130 not read"),
        ([good[0], _coverage(name, 110, 110, 200)], "bytes 110 to 120 read twice"),
        ([good[0], good[1], good[1]], "a byte range was read twice"),
        ([], "not read"),
        ([*good, _coverage("/elsewhere.csv", 0, 0, 5)], "/elsewhere.csv: read, but not in the plan"),
        ([good[0], _coverage(name, 120, 120, 150, error=f"{name}: the file is gone")], "the file is gone"),
        ([good[0], _coverage(name, 120, 120, 210)], "more than its planned 200"),
    ]:
        with pytest.raises(RowsLost, match=re.escape(message)):
            check_coverage(planned, coverage)


def test_the_coverage_check_of_parquet_counts_row_groups(tmp_path):
    import pyarrow.parquet as pq

    from beam_cross.job.errors import RowsLost
    from beam_cross.job.readers import check_coverage

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": list(range(10))}), path, row_group_size=4)
    planned = plan_input(str(path)).files
    assert [rows for _, rows in planned[0].groups] == [4, 4, 2]
    name, size = str(path), planned[0].size
    assert check_coverage(planned, [_coverage(name, 0, 0, size, groups=[(0, 4), (1, 4), (2, 2)])])
    for groups, message in [([(0, 4), (1, 4)], "row group 2 not read"), ([(0, 4), (1, 3), (2, 2)], "read as 3 rows"),
                            ([(0, 4), (0, 4), (1, 4), (2, 2)], "row group 0 read twice")]:
        with pytest.raises(RowsLost, match=re.escape(message)):
            check_coverage(planned, [_coverage(name, 0, 0, size, groups=groups)])
