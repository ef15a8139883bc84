"""``beam-cross`` output safety and accounting: committed output with a manifest, user files never
touched, an interrupted run leaving the previous output whole, refusals of bad configs and outputs,
the rejected-rows threshold, compressed inputs, Parquet types passing through, and the writers."""

from __future__ import annotations

import datetime
import decimal
import glob
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import beam_cross
from beam_cross import hashed_cross
from beam_cross.job import formats
from beam_cross.job.cli import main
from beam_cross.job.pipeline import Progress
from beam_cross.job.run import RowsLost, check_accounting, run
from beam_cross.job.summary import table

ROOT = Path(__file__).resolve().parents[2]


def _csv(path, rows=20, extra=""):
    lines = ["country,hour"] + [f"{c},{h}" for c, h in zip(["fr", "us", "de", "jp"] * rows, range(rows))]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _files(folder):
    """The committed output: every file but those of runs that were not committed (kept aside, never listed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*")
            if p.is_file() and not str(p.relative_to(folder)).startswith(".beam-cross-tmp-")}


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"beam-cross {beam_cross.__version__} (kernel: {beam_cross.core.KERNEL})"


@pytest.mark.parametrize("config, message", [
    ("crosses: [{features: [country, hour], num_bins: 10}\n", "is not valid JSON or YAML"),
    ("!!python/object/apply:os.system ['echo hacked']\n", "tags such as !!python/... are not allowed"),
    ('[{"features": ["country", "hour"], "num_bins": -3}]', "`num_bins` must be"),
    ("just a string\n", "must hold a non-empty list of crosses"),
])
def test_bad_config_is_a_message_not_a_traceback(tmp_path, capsys, config, message):
    (tmp_path / "crosses.yaml").write_text(config)
    code = main(["--input", str(_csv(tmp_path / "in.csv")), "--config", str(tmp_path / "crosses.yaml"),
                 "--output", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error


def test_output_overlapping_the_input_is_refused(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    source = _csv(tmp_path / "data" / "in.csv")
    assert main(["--input", str(tmp_path / "data"), "--cross", "country,hour:10", "--output", str(tmp_path / "data")]) == 2
    assert "contains the input file" in capsys.readouterr().err
    assert main(["--input", str(tmp_path / "data"), "--cross", "country,hour:10",
                 "--output", str(tmp_path / "data" / "out")]) == 2
    assert "is inside the input directory" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "data")) == ["in.csv"] and source.read_text().startswith("country,hour")


def test_unwritable_output_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["--input", str(_csv(tmp_path / "in.csv")), "--cross", "country,hour:10", "--output", str(blocker)]) == 2
    assert "must be a directory" in capsys.readouterr().err
    assert main(["--input", str(_csv(tmp_path / "in.csv")), "--cross", "country,hour:10",
                 "--output", str(blocker / "out")]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_mixed_formats_in_a_directory_are_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _csv(tmp_path / "in" / "a.csv")
    (tmp_path / "in" / "b.jsonl").write_text('{"country": "fr", "hour": 1}\n')
    assert main(["--input", str(tmp_path / "in"), "--cross", "country,hour:10", "--output", str(tmp_path / "out")]) == 2
    assert "The input mixes formats (csv such as" in capsys.readouterr().err


def test_user_files_are_never_touched(tmp_path, capsys):
    source, output = _csv(tmp_path / "in.csv"), tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    assert main(["--input", str(source), "--cross", "country,hour:10", "--output", str(output), "--num_shards", "3",
                 "--no_chart"]) == 0
    assert len(glob.glob(f"{output}/crossed/part-*-of-00003.csv")) == 3
    # A second run replaces what the first wrote (its manifest lists it), nothing else.
    assert main(["--input", str(source), "--cross", "country,hour:10", "--output", str(output), "--no_chart"]) == 0
    assert sorted(os.listdir(output / "crossed")) == ["part-00000-of-00001.csv"]
    assert (output / "notes.txt").read_text() == "mine"
    # A file that merely looks like a shard, which no manifest lists: the run is refused, the file kept.
    (output / "crossed" / "part-00000-of-00009.csv").write_text("user data")
    before = _files(output)
    assert main(["--input", str(source), "--cross", "country,hour:10", "--output", str(output), "--no_chart"]) == 2
    assert "holds files that no earlier beam-cross run lists" in capsys.readouterr().err
    assert _files(output) == before


def test_rejected_share_threshold_and_all_rejected(tmp_path, capsys):
    output = tmp_path / "out"
    good = _csv(tmp_path / "good.csv")
    assert main(["--input", str(good), "--cross", "country,hour:10", "--output", str(output), "--no_chart"]) == 0
    before = _files(output)
    half = tmp_path / "half.csv"
    half.write_text("country,hour\nfr,1\n,2\n,3\nus,4\n")
    assert main(["--input", str(half), "--cross", "country,hour:10", "--output", str(output),
                 "--max_rejected_share", "0.25"]) == 4
    error = capsys.readouterr().err
    assert "2 of 4 rows (50.00%) were rejected, more than --max_rejected_share 25.00%" in error
    assert _files(output) == before
    kept = error.split("rejected rows included, are in ")[1].split(")")[0]  # the uncommitted run, for a look
    assert sum(len(Path(p).read_text().splitlines()) for p in glob.glob(f"{kept}/rejected/*")) == 2
    none = tmp_path / "none.csv"
    none.write_text("country,hour\n,1\n,2\n")
    assert main(["--input", str(none), "--cross", "country,hour:10", "--output", str(output)]) == 4
    assert "Every one of the 2 rows was rejected" in capsys.readouterr().err
    assert _files(output) == before


def test_accounting_raises_on_any_difference(tmp_path):
    from types import SimpleNamespace

    job = SimpleNamespace(temp_dir=str(tmp_path))
    results = {"rows_read": 10, "files": [{"kind": "crossed", "rows": 7}, {"kind": "rejected", "rows": 2}]}
    with pytest.raises(RowsLost, match=r"\+1 rows unaccounted for: read 10, the writers wrote 7 crossed and 2 rejected"):
        check_accounting(job, results, {})
    results["files"][1]["rows"] = 3
    assert check_accounting(job, results, {"read": 10, "crossed": 7, "rejected": 3}) == (10, 7, 3)
    with pytest.raises(RowsLost, match="Beam's counter of rows crossed says 8, the written files 7"):
        check_accounting(job, results, {"read": 10, "crossed": 8, "rejected": 3})


def test_gzip_inputs(tmp_path):
    rows = [{"country": c, "hour": h} for c, h in zip(["fr", "us", "de"] * 30, range(90))]
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "a.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows[:50])
    with gzip.open(tmp_path / "in" / "b.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows[50:])
    with gzip.open(tmp_path / "c.csv.gz", "wt") as handle:
        handle.write("country,hour\n" + "".join(f"{r['country']},{r['hour']}\n" for r in rows))
    for source, name in ((tmp_path / "in", "json"), (tmp_path / "c.csv.gz", "csv")):
        output = tmp_path / f"out-{name}"
        summary = run(["--input", str(source), "--cross", "country,hour:100", "--output", str(output), "--no_chart",
                       "--output_format", "jsonl"])
        crossed = [json.loads(line) for p in summary.crossed_files for line in Path(p).read_text().splitlines()]
        assert summary.rows_read == summary.rows_crossed == 90
        expected = hashed_cross({"country": [r["country"] for r in rows], "hour": [r["hour"] for r in rows]}, 100)
        assert sorted((r["hour"], r["country_X_hour"]) for r in crossed) == list(zip(range(90), expected.tolist()))


def test_parquet_types_pass_through(tmp_path):
    n = 3000
    table = pa.table({
        "country": pa.array(["fr", "us", "de"] * (n // 3)).dictionary_encode(),
        "hour": pa.array(range(n), pa.int64()),
        "seen": pa.array([datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i) for i in range(n)], pa.timestamp("us")),
        "price": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(10, 2)),
        "clicked": pa.array([i % 2 == 0 for i in range(n)]),
        "big": pa.array([2**64 - 1 - i for i in range(n)], pa.uint64()),
        "raw": pa.array([bytes([i % 256, 255]) for i in range(n)], pa.binary()),
    })
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=500)
    output = tmp_path / "out"
    summary = run(["--input", str(tmp_path / "in.parquet"), "--cross", "country,hour:1000", "--output", str(output),
                   "--no_chart"])
    written = pa.concat_tables(pq.read_table(p) for p in summary.crossed_files).sort_by("hour")
    assert written.schema.names == table.schema.names + ["country_X_hour"]
    for name in table.schema.names:
        assert written.schema.field(name).type == table.schema.field(name).type, name
        assert written.column(name).to_pylist() == table.column(name).to_pylist(), name
    expected = hashed_cross({"country": table.column("country").to_pylist(), "hour": table.column("hour").to_pylist()}, 1000)
    assert written.column("country_X_hour").to_pylist() == expected.tolist()
    # one row group per file (pyarrow's default size), not one per read batch
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in summary.crossed_files] == [1] * len(summary.crossed_files)


def test_json_lines_writer_matches_json_module(tmp_path):
    batch = pa.RecordBatch.from_pylist([
        {"s": 'quote " back \\ nl \n tab \t bell \x07 caf\u00e9 \u2028', "i": -3, "u": None, "f": 1.0, "g": 0.1,
         "b": True, "l": ["a", "\"b\""], "il": [1, 2], "n": None},
        {"s": "", "i": 2**62, "u": 1, "f": float("nan"), "g": -2.5e-300, "b": False, "l": [], "il": None, "n": None},
    ])
    path = str(tmp_path / "rows.jsonl")
    writer = formats.open_writer(path, "jsonl")
    assert writer.write(batch) == 2 and writer.close() == 2
    lines = Path(path).read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines: \u2028 is no line break
    expected = batch.to_pylist()
    expected[1]["f"] = None  # NaN is not JSON: written as null
    assert [json.loads(line) for line in lines] == expected
    assert isinstance(json.loads(lines[0])["f"], float)


def test_summary_columns_stay_apart():
    text = table(["cross", "num_bins", "distinct"], [["a_X_b", "1,000,000,000", "123,456,789"]], [False, True, True])
    header, row = text.splitlines()
    assert row.split() == ["a_X_b", "1,000,000,000", "123,456,789"]
    assert len(header) == len(row)


def test_progress_line_against_a_known_total():
    progress = Progress(1_000_000, "rows", whole_job=True, every=3600)
    progress.add(250_000, 250_000)
    line = progress.line(progress.started + 10)
    assert line == "beam-cross: 250,000 rows in 10 s (25,000 rows/s), 25% of 1,000,000 rows, about 30 s left"
    assert Progress(0, "bytes", whole_job=False).line(time.monotonic()).endswith("on this worker")
    progress = Progress(100 * 2**20, "bytes", whole_job=True, every=3600)
    progress.add(1000, 25 * 2**20)
    assert progress.line(progress.started + 5).endswith("25% of 100 MiB, about 15 s left")


@pytest.mark.slow
def test_sigterm_mid_run_leaves_the_previous_output_intact(tmp_path):
    output = tmp_path / "out"
    assert main(["--input", str(_csv(tmp_path / "small.csv")), "--cross", "country,hour:10", "--output", str(output),
                 "--no_chart"]) == 0
    before = _files(output)
    big = tmp_path / "big.csv"
    with open(big, "w") as handle:
        handle.write("country,hour\n")
        for start in range(0, 1_500_000, 10_000):
            handle.write("".join(f"c{i % 97},{i % 24}\n" for i in range(start, start + 10_000)))
    process = subprocess.Popen(
        [sys.executable, "-m", "beam_cross", "--input", str(big), "--cross", "country,hour:10", "--output", str(output),
         "--no_chart"], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not glob.glob(f"{output}/.beam-cross-tmp-*/_results.json") and time.monotonic() < deadline:
        if glob.glob(f"{output}/.beam-cross-tmp-*/*/*"):  # the run is writing its files
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert _files(output) == before


def test_runner_flags_are_not_refused():
    from beam_cross.job.flags import own_flags
    from beam_cross.job.plan import check_beam_flags

    check_beam_flags(["--runner", "DataflowRunner", "--project", "p", "--region", "us-central1", "--temp_location",
                      "gs://bucket/tmp", "--setup_file", "./setup.py", "--experiments=use_runner_v2", "--max_num_workers",
                      "10", "--flink_master", "localhost:8081", "--environment_type", "LOOPBACK", "--direct_num_workers",
                      "2", "--direct_running_mode", "multi_processing", "--save_main_session"], own_flags())


def test_csv_writer_nested_values_as_json(tmp_path):
    batch = pa.RecordBatch.from_pylist([{"a": 1, "s": {"x": 1, "y": "q"}, "l": ["u", "v"], "ll": [[1], [2, 3]]},
                                        {"a": 2, "s": None, "l": [], "ll": None}])
    path = str(tmp_path / "rows.csv")
    writer = formats.open_writer(path, "csv")
    assert writer.write(batch) == 2 and writer.close() == 2
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [json.loads(r["s"]) for r in rows] == [{"x": 1, "y": "q"}, None]
    assert [r["l"] for r in rows] == ["u|v", ""]
    assert [json.loads(r["ll"]) for r in rows] == [[[1], [2, 3]], None]


def test_a_commit_cut_short_is_finished_by_the_next_run(tmp_path):
    source, output = _csv(tmp_path / "in.csv"), tmp_path / "out"
    assert main(["--input", str(source), "--cross", "country,hour:10", "--output", str(output), "--num_shards", "2",
                 "--no_chart"]) == 0
    manifest = json.loads((output / "_MANIFEST.json").read_text())
    listed = [e["path"] for kind in ("crossed", "rejected", "report") for e in manifest["files"][kind]]
    # A commit that died after removing the manifest and one old file, before renaming anything new:
    (output / ".beam-cross-commit.json").write_text(json.dumps({"previous": listed, "new": [], "started": 0}))
    (output / "_MANIFEST.json").unlink()
    (output / listed[0]).unlink()
    assert main(["--input", str(source), "--cross", "country,hour:10", "--output", str(output), "--no_chart"]) == 0
    assert sorted(os.listdir(output / "crossed")) == ["part-00000-of-00001.csv"]
    assert not (output / ".beam-cross-commit.json").exists()
    assert json.loads((output / "_MANIFEST.json").read_text())["rows"]["read"] == 20


def test_local_paths_on_dataflow_are_refused(tmp_path, capsys):
    assert main(["--input", str(_csv(tmp_path / "in.csv")), "--cross", "country,hour:10", "--output", str(tmp_path / "o"),
                 "--runner", "DataflowRunner", "--project", "p", "--region", "us-central1"]) == 2
    assert "DataflowRunner workers cannot see local paths" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
