"""``beam_cross.job.readers``: every format read as Arrow chunks on the FnApiRunner, bad lines rejected per row.

Inputs are real files in ``tmp_path``; pipelines write what they read to files (one Arrow file and
one JSON file per chunk) that the tests read back and compare with what was written.
"""

from __future__ import annotations

import bz2
import datetime
import decimal
import gzip
import io
import json
import lzma
import os
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.tfrecordio import _TFRecordUtil

from beam_cross.job.errors import InputError, RowsLost
from beam_cross.job.formats.examples import encode_example
from beam_cross.job.readers import Chunk, ReadChunks, WorkItem, check_coverage, line_bases, plan_input, read_item
from beam_cross.job.rejections import placed
from beam_cross.job.schema import parse_schema


# -- helpers --------------------------------------------------------------------------------------------
class _Save(beam.DoFn):
    """Writes each chunk to ``folder``: its rows as an Arrow file, the rest as JSON."""

    def __init__(self, folder):
        self._folder = folder

    def process(self, chunk):
        name = os.path.join(self._folder, uuid.uuid4().hex)
        with pa.OSFile(name + ".arrow", "wb") as sink, pa.ipc.new_file(sink, chunk.rows.schema) as writer:
            writer.write_batch(chunk.rows)
        with open(name + ".json", "w") as handle:
            json.dump({"rejected": list(chunk.rejected), "rows_read": chunk.rows_read, "source": chunk.source,
                       "where": chunk.locate(range(chunk.rows.num_rows)), "progress": chunk.progress,
                       "coverage": chunk.coverage, "is_chunk": isinstance(chunk, Chunk)}, handle)


def run(tmp_path, files, fmt, schema, **options) -> dict:
    """Reads with ``ReadChunks`` on the FnApiRunner; returns what the chunks held, in file order."""
    folder = tmp_path / f"out-{uuid.uuid4().hex}"
    folder.mkdir()
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = pipeline | ReadChunks(files, fmt, schema, **options) | beam.ParDo(_Save(str(folder)))
    chunks = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(folder / name) as handle:
                chunk = json.load(handle)
            chunk["rows"] = pa.ipc.open_file(str(folder / (name[:-5] + ".arrow"))).read_all()
            chunks.append(chunk)
    return summary(chunks, sort_key=_place)


def _place(source: str):
    path, _, where = source.rpartition(":")
    return path, int(where.split()[-1])


def _resolved(place, bases) -> str:
    source, pending = place
    return source if pending is None else f"{pending['path']}:{bases[(pending['path'], pending['start'])] + pending['line'] + 1}"


def summary(chunks, sort_key=None) -> dict:
    """Rows (with their place), rejections and counts of chunks (dicts or Chunk objects), places
    resolved from the chunks' coverage as the pipeline does."""
    chunks = list(chunks)
    getters = [chunk.get if isinstance(chunk, dict) else (lambda name, c=chunk: getattr(c, name)) for chunk in chunks]
    bases = line_bases([get("coverage") for get in getters if get("coverage") is not None])
    rows, rejected, read, progress = [], [], 0, 0
    for chunk, get in zip(chunks, getters):
        where = get("where") if isinstance(chunk, dict) else chunk.locate(range(chunk.rows.num_rows))
        rows += list(zip([_resolved(w, bases) for w in where], get("rows").to_pylist()))
        rejected += [placed(dict(r), bases) for r in get("rejected")]
        read += get("rows_read")
        progress += get("progress")
        assert get("rows_read") == get("rows").num_rows + len(get("rejected"))
        assert not isinstance(chunk, dict) or chunk["is_chunk"]
    key = sort_key or _place
    return {
        "rows": sorted(rows, key=lambda item: key(item[0])),
        "rejected": sorted(rejected, key=lambda item: key(item["source"])),
        "rows_read": read,
        "progress": progress,
    }


def item(plan, start=0, stop=None, index=0) -> WorkItem:
    planned = plan.files[index]
    return WorkItem(planned, start, planned.size if stop is None else stop)


def read_whole(path, plan, **options) -> dict:
    return summary(read_item(item(plan), plan.format, plan.schema, **options))


def reasons(result) -> list[tuple[str, str]]:
    return [(r["source"].rpartition(":")[2], r["reason"]) for r in result["rejected"]]


# -- Parquet --------------------------------------------------------------------------------------------
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


# -- CSV ------------------------------------------------------------------------------------------------
def test_csv_rows_and_rejections_with_file_line(tmp_path):
    path = tmp_path / "in.csv"
    lines = [
        "city,hour,tags",
        "paris,13,a|b",  # 2
        "lyon,1_3,a",  # 3: not an int
        "",  # 4: blank, not a record
        "nice, 13,a",  # 5: not an int
        "\u00e9vry,\u0661\u0663,a",  # 6: Arabic-Indic digits are not an int
        "rome,+7,",  # 7: a sign is fine; empty list
        "oslo,7",  # 8: too few fields
        'bern,7,"x',  # 9: unbalanced quote (a value with a line break)
        'y",8,z',  # 10
        "kiev,0x1f,a",  # 11: not an int
        "riga,,c",  # 12: missing hour
    ]
    data = ("\r\n".join(lines) + "\r\n").encode()
    data = data.replace(b"riga", b"r\xffga")  # 12: invalid UTF-8 in one cell
    path.write_bytes(data)
    plan = plan_input(str(path), declared=parse_schema("hour:int,tags:string_list"))
    result = run(tmp_path, plan.files, "csv", plan.schema)
    assert result["rows"] == [
        (f"{path}:2", {"city": "paris", "hour": 13, "tags": ["a", "b"]}),
        (f"{path}:7", {"city": "rome", "hour": 7, "tags": []}),
    ]
    assert reasons(result) == [("3", "type"), ("5", "type"), ("6", "type"), ("8", "parse"), ("9", "parse"),
                               ("11", "type"), ("12", "encoding")]
    assert all(r["message"].startswith(f"{path}:") and r["row"] for r in result["rejected"])
    assert result["rows_read"] == 9 == len(lines) - 3  # the header and the blank line are not records; 9-10 one
    assert result["progress"] == len(data)


def test_csv_inference_is_strict_and_per_file(tmp_path):
    (tmp_path / "a.csv").write_text("city,hour,score\nparis,13,0.5\nlyon,7,1\n")
    (tmp_path / "b.csv").write_text("city,hour,score\nnice,1_3,2.5\n")
    (tmp_path / "c.csv").write_text("city,hour,score\nrome,-4,3.5\n")
    alone = plan_input(str(tmp_path / "a.csv"))
    assert alone.schema == pa.schema([("city", pa.string()), ("hour", pa.int64()), ("score", pa.float64())])
    assert alone.float_columns == ("score",)
    with_c = plan_input(str(tmp_path / "[ac].csv"))
    assert with_c.schema == alone.schema  # another file does not change a file's types
    assert plan_input(str(tmp_path / "b.csv")).schema.field("hour").type == pa.string()  # 1_3 is no int
    with pytest.raises(InputError, match=r"Column `hour` is int64 .* and string in .*b\.csv.*--schema hour:type"):
        plan_input(str(tmp_path))
    assert plan_input(str(tmp_path), declared=parse_schema("hour:string")).schema.field("hour").type == pa.string()


def test_csv_duplicate_header_and_mixed_formats_are_refused(tmp_path):
    (tmp_path / "dup.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(InputError, match=r"names columns \['a'\] more than once"):
        plan_input(str(tmp_path / "dup.csv"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "1.csv").write_text("a\n1\n")
    (mixed / "2.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(InputError, match="mixes formats"):
        plan_input(str(mixed))
    (tmp_path / "other.csv").write_text("a,c\n1,2\n")
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"other.csv has columns \['a', 'c'\], unlike the first file's"):
        plan_input(str(tmp_path / "[ou]*.csv"))
    ok_plan = plan_input(str(tmp_path / "ok.csv"))
    stat = os.stat(tmp_path / "ok.csv")  # the header changes, size and time kept: the read says so
    (tmp_path / "ok.csv").write_text("a,c\n1,2\n")
    os.utime(tmp_path / "ok.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    coverage = [c.coverage for c in read_item(item(ok_plan), "csv", ok_plan.schema) if c.coverage][0]
    assert "its header is now ['a', 'c'], not ['a', 'b'] as planned" in coverage["error"]
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="declares column `zz`, which the CSV header does not have"):
        plan_input(str(tmp_path / "ok.csv"), declared=parse_schema("zz:int"))
    with pytest.raises(InputError, match="`--input_format` must be one of"):
        plan_input(str(tmp_path / "ok.csv"), input_format="xml")
    with pytest.raises(InputError, match="No column found"):
        plan_input(str(tmp_path / "ok.csv"), input_format="jsonl")
    (tmp_path / "rows.txt").write_text('{"a": 1}\n')
    assert plan_input(str(tmp_path / "rows.txt"), input_format="jsonl").schema == pa.schema([("a", pa.int64())])
    with pytest.raises(InputError, match="matches no file"):
        plan_input(str(tmp_path / "none*.csv"))


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


def test_oversized_lines_are_rejected_without_stopping(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": "1"}\n{"a": "' + b"x" * 5000 + b'"}\n{"a": "3"}\n')
    plan = plan_input(str(path))
    result = run(tmp_path, plan.files, "jsonl", plan.schema, max_record_bytes=1000, block_bytes=256)
    assert [row for _, row in result["rows"]] == [{"a": "1"}, {"a": "3"}]
    assert reasons(result) == [("2", "oversized")]


# -- JSON Lines -----------------------------------------------------------------------------------------
def test_jsonl_bad_lines_each_rejected_with_reason(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"city": "paris", "hour": 13}\n'  # 1
        b'{"city": "lyon",\r "hour": 7}\n'  # 2: a carriage return is JSON whitespace
        b'{"city": "\\ud800", "hour": 1}\n'  # 3: lone surrogate
        b'{"city": "r\xffga", "hour": 1}\n'  # 4: invalid UTF-8
        b'{"city": "oslo", "hour": 1.5}\n'  # 5: not an int
        b"[1, 2]\n"  # 6: not an object
        b"{broken\n"  # 7
        b"   \n"  # 8: blank
        b'{"city": "bern", "hour": 2, "late": true}\n'  # 9: a key first seen late, in the sample
        b'{"city": "rome"}'  # 10: no final line break
    )
    plan = plan_input(str(path), declared=parse_schema("city:string,hour:int"))
    result = run(tmp_path, plan.files, "jsonl", plan.schema)
    assert plan.schema.field("late").type == pa.bool_()
    assert result["rows"] == [
        (f"{path}:1", {"city": "paris", "hour": 13, "late": None}),
        (f"{path}:2", {"city": "lyon", "hour": 7, "late": None}),
        (f"{path}:9", {"city": "bern", "hour": 2, "late": True}),
        (f"{path}:10", {"city": "rome", "hour": None, "late": None}),
    ]
    assert reasons(result) == [("3", "encoding"), ("4", "encoding"), ("5", "type"), ("6", "parse"), ("7", "parse")]
    assert result["rows_read"] == 9


def test_jsonl_nested_values_keep_their_types(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"d": {"x": 1}, "l": [1, 2]}\n' * 50 + '{"d": {"x": 2, "y": 3}, "l": []}\n{"d": null, "l": ["a"]}\n')
    plan = plan_input(str(path), sample_bytes=200)
    assert plan.schema == pa.schema([("d", pa.struct([("x", pa.int64())])), ("l", pa.list_(pa.int64()))])
    result = run(tmp_path, plan.files, "jsonl", plan.schema)
    assert [row for _, row in result["rows"]] == [{"d": {"x": 1}, "l": [1, 2]}] * 50
    assert reasons(result) == [("51", "unknown_column"), ("52", "type")]


def test_jsonl_late_keys_are_covered_or_rejected(tmp_path):
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text("".join(json.dumps({"a": i}) + "\n" for i in range(3000)) + json.dumps({"a": 1, "late": "x"}) + "\n")
    second.write_text(json.dumps({"a": 5, "only_here": 2}) + "\n")
    plan = plan_input(str(tmp_path))  # each file's head is sampled: only_here is in the schema
    assert plan.schema.names == ["a", "late", "only_here"]
    small = plan_input(str(tmp_path), sample_bytes=1000)  # "late" comes after the sample
    assert small.schema.names == ["a", "only_here"]
    result = run(tmp_path, small.files, "jsonl", small.schema)
    assert reasons(result) == [("3001", "unknown_column")] and "late" in result["rejected"][0]["message"]
    assert result["rows_read"] == 3002
    declared = plan_input(str(tmp_path), declared=parse_schema("late:string"))
    assert declared.schema.field("late").type == pa.string()
    result = run(tmp_path, declared.files, "jsonl", declared.schema)
    assert result["rejected"] == [] and result["rows"][3000][1]["late"] == "x"


# -- TFRecord -------------------------------------------------------------------------------------------
def tfrecord_bytes(rows) -> bytes:
    handle = io.BytesIO()
    for row in rows:
        _TFRecordUtil.write_record(handle, encode_example(row))
    return handle.getvalue()


def test_tfrecord_rows_types_and_bad_records(tmp_path):
    rows = [{"city": f"c{i}", "hour": i, "tags": ["a", "b"][: i % 3], "w": 0.5} for i in range(6)]
    good = tfrecord_bytes(rows[:4])
    record_length = len(tfrecord_bytes(rows[:1]))
    damaged = bytearray(good)
    damaged[record_length + 20] ^= 1  # record 1's data no longer matches its checksum
    extra = tfrecord_bytes([{"city": "x", "hour": [1, 2], "tags": [], "w": 1.0}, {"city": "y", "zz": 1}])
    clean = tmp_path / "clean.tfrecord"
    clean.write_bytes(good)
    plan = plan_input(str(clean))
    path = tmp_path / "in.tfrecord"
    path.write_bytes(bytes(damaged) + extra + tfrecord_bytes(rows[4:5])[:-3])  # the last one is truncated
    assert plan.schema == pa.schema([("city", pa.string()), ("hour", pa.int64()),
                                     ("tags", pa.list_(pa.string())), ("w", pa.float32())])
    assert plan.float_columns == ("w",)
    result = run(tmp_path, [str(path)], "tfrecord", plan.schema)
    assert result["rows"] == [(f"{path}:record {i}", rows[i]) for i in (0, 2, 3)]
    assert [(r["source"], r["reason"]) for r in result["rejected"]] == [
        (f"{path}:record 1", "parse"), (f"{path}:record 4", "type"), (f"{path}:record 5", "unknown_column"),
        (f"{path}:record 6", "parse")]
    assert result["rows_read"] == 7 and result["progress"] == os.path.getsize(path)


def test_tfrecord_corrupt_length_fails_the_run(tmp_path):
    data = bytearray(tfrecord_bytes([{"a": i} for i in range(3)]))
    data[len(data) // 3 + 2] ^= 1  # inside record 1's length: the framing is lost
    path = tmp_path / "in.tfrecord"
    path.write_bytes(bytes(data))
    plan = plan_input(str(path))
    coverage = [c.coverage for c in read_item(item(plan), "tfrecord", plan.schema) if c.coverage]
    with pytest.raises(RowsLost, match="record 1 at byte .* has a corrupt length"):
        check_coverage(plan.files, coverage)


def test_tfrecord_gzip(tmp_path):
    path = tmp_path / "in.tfrecord.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(tfrecord_bytes([{"a": i, "b": "x"} for i in range(100)]))
    plan = plan_input(str(path))
    result = run(tmp_path, plan.files, "tfrecord", plan.schema)
    assert [row for _, row in result["rows"]] == [{"a": i, "b": "x"} for i in range(100)]


# -- byte ranges ----------------------------------------------------------------------------------------
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


def test_declared_float_column_is_typed_and_reported(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a,b\nx,1\n")
    plan = plan_input(str(path), declared=parse_schema("b:float"))
    chunks = list(read_item(item(plan), "csv", plan.schema))
    assert chunks[0].rows.schema == plan.schema and plan.float_columns == ("b",)
    assert chunks[0].locate([0]) == [(f"{path}:2", None)] and chunks[0].rows.to_pylist() == [{"a": "x", "b": 1.0}]


def _delimited(tag: int, payload: bytes) -> bytes:
    length, out = len(payload), bytearray()
    while True:
        out.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            return bytes([tag]) + bytes(out) + payload


def _example(entries: list[bytes]) -> bytes:
    return _delimited(0x0A, b"".join(_delimited(0x0A, entry) for entry in entries))


def test_tf_example_columns_match_protobuf_record_by_record():
    from beam_cross.job.formats.examples import decode_examples, decode_examples_one_by_one

    rng = np.random.default_rng(7)
    schema = pa.schema([("city", pa.string()), ("hour", pa.int64()), ("tags", pa.list_(pa.string())),
                        ("w", pa.float32()), ("ids", pa.list_(pa.int64())), ("raw", pa.binary())])
    odd = [
        b"",  # an empty Example
        _example([_delimited(0x0A, b"hour") + _delimited(0x12, _delimited(0x1A, b"\x08\x05"))]),  # unpacked int
        _example([_delimited(0x12, _delimited(0x1A, _delimited(0x0A, b"\x07"))) + _delimited(0x0A, b"hour")]),  # value first
        _example([_delimited(0x0A, b"hour")]),  # a key without a Feature
        _example([_delimited(0x0A, b"city") + _delimited(0x12, b"")]),  # a Feature of no kind
        _example([_delimited(0x0A, b"hour") + _delimited(0x12, _delimited(0x1A, _delimited(0x0A, b"\x01")))] * 2),  # twice
        b"\x0a\x05\x0a\x03ab",  # truncated inside
        b"\xff\xff",  # not a protobuf
    ]
    records = []
    for _ in range(3000):
        choice = rng.integers(0, 10)
        if choice == 0:
            records.append(odd[rng.integers(0, len(odd))])
            continue
        row = {
            "city": rng.choice(["paris", "\u65e5\u672c", ""]),
            "hour": int(rng.integers(-(2**63), 2**63)) if choice == 1 else int(rng.integers(0, 300)),
            "tags": [str(t) for t in rng.integers(0, 5, rng.integers(0, 4))],
            "w": float(rng.random()),
            "ids": [int(v) for v in rng.integers(-5, 2**40, rng.integers(0, 3))],
            "raw": bytes(rng.integers(0, 256, 3, dtype=np.uint8)),
        }
        if choice == 2:
            row["hour"] = [1, 2]  # two values in a one-value column
        if choice == 3:
            row["city"] = b"\xff\xfe"  # not UTF-8
        if choice == 4:
            row["extra"] = "x"  # a key the schema does not have
        if choice == 5:
            row["w"] = "not a float"
        if choice == 6:
            del row["city"], row["tags"]
        records.append(encode_example(row))
    numbered = list(enumerate(records))
    for start, stop in ((0, 3000), (0, 1), (10, 50), (5, 6)):
        fast = decode_examples(numbered[start:stop], schema)
        reference = decode_examples_one_by_one(numbered[start:stop], schema)
        assert fast[0].equals(reference[0]) and np.array_equal(fast[1], reference[1]) and fast[2] == reference[2]
    full = decode_examples(numbered, schema)
    assert 1500 < full[0].num_rows < 2200 and 800 < len(full[2]) < 1500  # about 6 in 10 records are fine


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


def test_tf_example_columns_stay_with_their_record_when_earlier_features_are_missing():
    # A record without `device` has `hour` one entry earlier than its neighbours: each value must
    # still land in its own record's row.
    from beam_cross.job.formats.examples import decode_examples, decode_examples_one_by_one

    schema = pa.schema([("click_id", pa.int64()), ("device", pa.string()), ("hour", pa.int64()),
                        ("tags", pa.list_(pa.string()))])
    rows = []
    for i in range(40):
        row = {"click_id": i, "device": f"d{i}", "hour": 100 + i, "tags": [f"t{i}"] * (i % 3)}
        if i % 3 == 1:
            del row["device"]
        if i % 5 == 2:
            del row["tags"]
        rows.append(row)
    numbered = list(enumerate(encode_example(row) for row in rows))
    fast, reference = decode_examples(numbered, schema), decode_examples_one_by_one(numbered, schema)
    assert fast[0].equals(reference[0]) and fast[2] == reference[2] == []
    assert fast[0].column("hour").to_pylist() == [row["hour"] for row in rows]
    assert fast[0].column("device").to_pylist() == [row.get("device") for row in rows]
