"""JSON Lines: bad lines rejected one by one with their reasons, nested values, late keys.
"""

from __future__ import annotations

import json

import pyarrow as pa
from reading import reasons, run

from beam_cross.job.readers import plan_input
from beam_cross.job.schema import parse_schema


def test_oversized_lines_are_rejected_without_stopping(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": "1"}\n{"a": "' + b"x" * 5000 + b'"}\n{"a": "3"}\n')
    plan = plan_input(str(path))
    result = run(tmp_path, plan.files, "jsonl", plan.schema, max_record_bytes=1000, block_bytes=256)
    assert [row for _, row in result["rows"]] == [{"a": "1"}, {"a": "3"}]
    assert reasons(result) == [("2", "oversized")]


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


def test_refused_lines_are_found_in_one_pass_whatever_their_share(tmp_path):
    """Every line refused, one in two, one in a thousand, at the start and at the end: the reader finds
    each one with Python's reason, and keeps every good line (compared with Python's json line by line)."""
    import json as python_json

    from beam_cross.job.formats.jsonl import parse_jsonl_block

    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    good = [b'{"a": %d, "b": "x%d"}' % (i, i) for i in range(2000)]
    kinds = [b'{"a": ', b"[1, 2]", b'{"a": "text"}', b'{"a": 1, "zz": 2}', b"\xff\xfe", b'{"a": 1}{"a": 2}']
    for every in (1, 2, 1000):
        lines = [kinds[i % len(kinds)] if i % every == 0 else line for i, line in enumerate(good)]
        lines[-1] = kinds[0]
        parsed = parse_jsonl_block(b"\n".join(lines) + b"\n", schema)
        expected_good = []
        for number, line in enumerate(lines):
            try:
                value = python_json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and set(value) <= {"a", "b"} and isinstance(value.get("a"), int):
                expected_good.append((number, value))
        assert [(int(n), row) for n, row in zip(parsed.row_lines, parsed.rows.to_pylist())] == [
            (n, {"a": v.get("a"), "b": v.get("b")}) for n, v in expected_good]
        assert sorted(line for line, _, _, _ in parsed.rejected) == sorted(
            set(range(len(lines))) - {n for n, _ in expected_good})
        assert all(reason in ("parse", "type", "encoding", "unknown_column") for _, reason, _, _ in parsed.rejected)
