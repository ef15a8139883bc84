"""TFRecord of tf.Examples: rows, types, bad records, a corrupt length, and the NumPy wire reader against protobuf.
"""

from __future__ import annotations

import gzip
import io
import os

import numpy as np
import pyarrow as pa
import pytest
from apache_beam.io.tfrecordio import _TFRecordUtil
from reading import item, run

from beam_cross.job.errors import RowsLost
from beam_cross.job.formats.examples import encode_example
from beam_cross.job.readers import check_coverage, plan_input, read_item


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
