"""CSV: RFC 4180 records in any byte ranges (against Python's ``csv``), rows and rejections with their
``file:line``, strict inference per file, headers."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reading import item, reasons, run, summary

from beam_cross.job.errors import InputError, RowsLost
from beam_cross.job.readers import WorkItem, check_coverage, plan_input, read_item
from beam_cross.job.schema import parse_schema


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
        'bern,7,"x',  # 9: a quoted value holding a line break: lines 9-10 are one record,
        'y",8,z',  # 10  of 5 fields
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


def test_declared_float_column_is_typed_and_reported(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a,b\nx,1\n")
    plan = plan_input(str(path), declared=parse_schema("b:float"))
    chunks = list(read_item(item(plan), "csv", plan.schema))
    assert chunks[0].rows.schema == plan.schema and plan.float_columns == ("b",)
    assert chunks[0].locate([0]) == [(f"{path}:2", None)] and chunks[0].rows.to_pylist() == [{"a": "x", "b": 1.0}]


# -- RFC 4180 records --------------------------------------------------------------------------------
# No lone "\r": Python's reader splits its lines at one even inside quotes, where RFC 4180 keeps it.
_CELLS = st.lists(st.sampled_from(["a", "b", "\u00e9", "\u65e5", " ", ",", '"', '""', "\n", "\r\n", "x,y"]),
                  max_size=6).map("".join)


def _python_rows(data: bytes) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")) if row][1:]


def _rows_of(chunks) -> list[list[str]]:
    return [[value or "" for value in row.values()] for _, row in summary(chunks)["rows"]]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(_CELLS, min_size=3, max_size=3), min_size=1, max_size=25),
       line_end=st.sampled_from(["\r\n", "\n"]), cuts=st.lists(st.floats(0.01, 0.99), max_size=4),
       block=st.integers(5, 80))
def test_records_in_any_byte_ranges_are_pythons_csv_rows(tmp_path_factory, rows, line_end, cuts, block):
    """Quoted delimiters, doubled quotes and line breaks, read whole or as byte ranges of any sizes: the
    rows are Python's ``csv.reader``'s, or, where a range starts inside a quoted line break, the
    coverage check refuses the run; never a row made of part of a value."""
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator=line_end).writerows([["a", "b", "c"], *rows])
    data = text.getvalue().encode("utf-8")
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes(data)
    plan = plan_input(str(path), declared=parse_schema("a:string,b:string,c:string"))
    expected = _python_rows(data)
    whole = list(read_item(WorkItem(replace(plan.files[0], whole=True), 0, len(data)), "csv", plan.schema, block_bytes=block))
    assert check_coverage(plan.files, [c.coverage for c in whole if c.coverage])
    assert _rows_of(whole) == expected and not summary(whole)["rejected"]
    split_file = replace(plan.files[0], whole=False)
    points = sorted({0, *(int(c * len(data)) for c in cuts), len(data)})
    chunks = [c for s, e in zip(points[:-1], points[1:]) if s < e
              for c in read_item(WorkItem(split_file, s, e), "csv", plan.schema, block_bytes=block)]
    # a range past byte 0 starts after its first line break; csv.writer's quotes balance, so that start
    # is inside a quoted value when the quotes before it are odd
    inside = [p for p in points[1:-1] if data[:data.find(b"\n", p - 1) + 1 or len(data)].count(b'"') % 2]
    if inside:
        with pytest.raises(RowsLost, match="read twice .*quoted value"):
            check_coverage([split_file], [c.coverage for c in chunks if c.coverage])
        return
    check_coverage([split_file], [c.coverage for c in chunks if c.coverage])
    assert _rows_of(chunks) == expected


def test_quoted_line_breaks_and_bare_quotes(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,country,hour,device,note\n1,fr,5,ios,plain\n2,fr,5,ios,"note\n3,us,4,ios,phantom\n"\n'
                     b'4,de,5"screen,web,"a ""quoted"" word"\n5,it,"x",web,"unclosed\n')
    plan = plan_input(str(path), declared=parse_schema("id:int,hour:string"))
    assert plan.files[0].whole  # its head holds a quoted line break: read by one worker
    result = run(tmp_path, plan.files, "csv", plan.schema)
    assert [row for _, row in result["rows"]] == [
        {"id": 1, "country": "fr", "hour": "5", "device": "ios", "note": "plain"},
        {"id": 2, "country": "fr", "hour": "5", "device": "ios", "note": "note\n3,us,4,ios,phantom\n"},
        {"id": 4, "country": "de", "hour": '5"screen', "device": "web", "note": 'a "quoted" word'},
    ]
    assert [(r["source"], r["reason"]) for r in result["rejected"]] == [(f"{path}:7", "parse")]
    assert "not closed before the end of the file" in result["rejected"][0]["message"]
    assert [row[:4] for row in _python_rows(path.read_bytes())][:3] == [["1", "fr", "5", "ios"], ["2", "fr", "5", "ios"],
                                                                      ["4", "de", '5"screen', "web"]]


def test_a_range_starting_inside_a_quoted_line_break_fails_the_run(tmp_path):
    head = b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(200_000))  # more than the sampled head
    path = tmp_path / "in.csv"
    path.write_bytes(head + b'1,"one\n2,two\n"\n3,three\n')
    plan = plan_input(str(path))
    assert not plan.files[0].whole
    cut = len(head) + 8  # just after the line break inside the quoted value
    chunks = [c for s, e in ((0, cut), (cut, len(path.read_bytes())))
              for c in read_item(WorkItem(plan.files[0], s, e), "csv", plan.schema)]
    with pytest.raises(RowsLost, match=r"read twice \(a CSV quoted value holding a line break across byte .*--read_whole"):
        check_coverage(plan.files, [c.coverage for c in chunks if c.coverage])


def test_only_an_empty_unquoted_cell_is_missing(tmp_path):
    """Words that other readers take for nulls (`NA`, Namibia's country code; `nan`; `null`; `N/A`) are
    the strings Python's csv reads; an empty cell is missing and `""` the empty string."""
    path = tmp_path / "in.csv"
    path.write_bytes(b'country,hour\nNA,1\nnan,2\nnull,3\nN/A,4\n"",5\n,6\n#N/A,7\n')
    plan = plan_input(str(path))
    result = run(tmp_path, plan.files, "csv", plan.schema)
    python = _python_rows(path.read_bytes())
    assert [row["country"] for _, row in result["rows"]] == [None if text == "" and i == 5 else text
                                                             for i, (text, _) in enumerate(python)]
    assert [row["hour"] for _, row in result["rows"]] == [int(hour) for _, hour in python]
