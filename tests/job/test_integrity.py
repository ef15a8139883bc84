"""``beam-cross`` reads every planned byte exactly once, or fails: odd file names, files changing or cut
short, compressed streams without their end, CSV values holding line breaks, two runs into one output,
relative globs, a full disk. Each case runs the command as a user would and checks what it committed."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import os
import resource
import signal
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import zstandard

from beam_cross import Cross, hashed_cross
from beam_cross.job import run as run_module
from beam_cross.job.cli import main
from beam_cross.job.commit import LOCK

CROSS = ["--cross", "country,hour:100"]


def _rows(count: int, start: int = 0) -> list[tuple[int, str, int]]:
    return [(i, f"c{i % 7}", i % 24) for i in range(start, start + count)]


def _csv_bytes(rows) -> bytes:
    return ("id,country,hour\n" + "".join(f"{i},{c},{h}\n" for i, c, h in rows)).encode()


def _crossed(output: Path) -> list[dict]:
    rows = []
    for path in sorted((output / "crossed").glob("part-*")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _committed(output: Path) -> dict:
    return {str(p.relative_to(output)): p.read_bytes() for p in output.rglob("*") if p.is_file()}


def _ids(rows) -> list[int]:
    return hashed_cross([[c for _, c, _ in rows], [h for _, _, h in rows]], num_bins=100).tolist()


# -- file names --------------------------------------------------------------------------------------
def test_a_directory_of_odd_file_names_is_read_whole(tmp_path, capsys):
    folder = tmp_path / "in [dir] *?"
    folder.mkdir()
    names = ["a.csv", "b [x].csv", "c*.csv", "d?.csv", "e f.csv", "\u65e5\u672c [x].csv", "[ab].csv"]
    expected = []
    for index, name in enumerate(names):
        rows = _rows(3 + index, start=100 * index)
        (folder / name).write_bytes(_csv_bytes(rows))
        expected += rows
    output = tmp_path / "out"
    assert main(["--input", str(folder), *CROSS, "--output", str(output)]) == 0
    crossed = _crossed(output)
    assert sorted(int(r["id"]) for r in crossed) == sorted(i for i, _, _ in expected)
    by_id = {int(r["id"]): int(r["country_X_hour"]) for r in crossed}
    assert [by_id[i] for i, _, _ in expected] == _ids(expected)
    manifest = json.loads((output / "_MANIFEST.json").read_text())
    assert sorted(Path(f["path"]).name for f in manifest["input"]["files"]) == sorted(names)
    assert {Path(f["path"]).name: f["rows"] for f in manifest["input"]["files"]} == {n: 3 + i for i, n in enumerate(names)}
    # a literal file name holding glob characters is that file, not a pattern
    assert main(["--input", str(folder / "b [x].csv"), *CROSS, "--output", str(tmp_path / "one")]) == 0
    assert len(_crossed(tmp_path / "one")) == 4


def test_a_relative_glob_without_a_directory_matches_as_a_shell_would(tmp_path, monkeypatch):
    (tmp_path / "clicks-1.csv").write_bytes(_csv_bytes(_rows(5)))
    (tmp_path / "clicks-2.csv").write_bytes(_csv_bytes(_rows(4, start=5)))
    monkeypatch.chdir(tmp_path)
    assert main(["--input", "clicks-*.csv", *CROSS, "--output", "out"]) == 0
    assert len(_crossed(tmp_path / "out")) == 9


# -- files that change or end early ------------------------------------------------------------------------
def _planning_then(monkeypatch, change):
    """Runs ``change()`` after the command has planned, before its pipeline reads."""
    planned = run_module.plan

    def plan_then_change(*args, **kwargs):
        job = planned(*args, **kwargs)
        change()
        return job

    monkeypatch.setattr(run_module, "plan", plan_then_change)


def test_a_file_cut_short_during_the_run_fails_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "in.csv"
    rows = _rows(150_000)
    rows[-1] = (150_000 - 1, "cX", 7000)
    data = _csv_bytes(rows)
    path.write_bytes(data)
    previous = tmp_path / "out"
    assert main(["--input", str(path), *CROSS, "--output", str(previous), "--no_chart"]) == 0
    before = _committed(previous)
    _planning_then(monkeypatch, lambda: path.write_bytes(data[:-3]))  # "149999,cX,70": still a valid row
    assert main(["--input", str(path), *CROSS, "--output", str(previous), "--no_chart"]) == 3
    error = capsys.readouterr().err
    assert f"{path}" in error and "changed during the run" in error and "Traceback" not in error
    assert _committed(previous) == before


def test_a_file_growing_or_vanishing_during_the_run_fails_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "in.csv"
    path.write_bytes(_csv_bytes(_rows(100)))
    _planning_then(monkeypatch, lambda: path.write_bytes(_csv_bytes(_rows(101))))
    assert main(["--input", str(path), *CROSS, "--output", str(tmp_path / "a")]) == 3
    assert "changed during the run" in capsys.readouterr().err
    _planning_then(monkeypatch, path.unlink)
    assert main(["--input", str(path), *CROSS, "--output", str(tmp_path / "b")]) == 3
    assert "the file is gone" in capsys.readouterr().err
    assert not (tmp_path / "a" / "_MANIFEST.json").exists() and not (tmp_path / "b" / "_MANIFEST.json").exists()


def _gzip_flushed(data: bytes) -> bytes:
    """A gzip stream of ``data`` flushed at 3/4 and cut there: no trailer, as a writer killed mid-file leaves it."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data[: len(data) * 3 // 4]) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _jsonl_bytes(rows) -> bytes:
    return "".join(json.dumps({"id": i, "country": c, "hour": h}) + "\n" for i, c, h in rows).encode()


def _tfrecord_bytes(rows) -> bytes:
    import pyarrow as pa

    from beam_cross.job.formats import examples, tfrecord

    batch = pa.RecordBatch.from_pylist([{"id": i, "country": c, "hour": h} for i, c, h in rows])
    return tfrecord.frames(examples.encode_batch(batch))


@pytest.mark.parametrize("suffix, encode", [(".csv.gz", _csv_bytes), (".jsonl.gz", _jsonl_bytes),
                                            (".tfrecord.gz", _tfrecord_bytes)])
def test_a_compressed_file_without_its_end_fails_the_run(tmp_path, capsys, suffix, encode):
    data = encode(_rows(200))
    assert gzip.decompress(gzip.compress(data)) == data
    cut = _gzip_flushed(data)
    with pytest.raises(EOFError):
        gzip.decompress(cut)  # what `gzip -t` says too: unexpected end of file
    path = tmp_path / f"in{suffix}"
    path.write_bytes(cut)
    output = tmp_path / "out"
    assert main(["--input", str(path), *CROSS, "--output", str(output)]) == 3
    error = capsys.readouterr().err
    assert f"{path}: the gzip stream ends at byte {len(cut)} without its end marker" in error
    assert "Traceback" not in error and not (output / "_MANIFEST.json").exists()


_CODECS = {
    ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".lzma": lzma.compress,
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data), ".deflate": zlib.compress,
}


@pytest.mark.parametrize("suffix", sorted(_CODECS))
def test_every_codec_read_whole_and_cut_short_fails(tmp_path, capsys, suffix):
    rows = _rows(3000)
    data = _csv_bytes(rows)
    whole = _CODECS[suffix](data)
    (tmp_path / "whole").mkdir()
    if suffix in (".gz", ".bz2", ".xz", ".zst"):  # a file of two streams is read stream after stream
        half = len(data) // 2
        whole = _CODECS[suffix](data[:half]) + _CODECS[suffix](data[half:])
    (tmp_path / "whole" / f"in.csv{suffix}").write_bytes(whole)
    assert main(["--input", str(tmp_path / "whole"), *CROSS, "--output", str(tmp_path / "a"), "--no_chart"]) == 0
    crossed = _crossed(tmp_path / "a")
    assert [int(r["id"]) for r in crossed] == [i for i, _, _ in rows]
    assert [int(r["country_X_hour"]) for r in crossed] == _ids(rows)
    capsys.readouterr()
    path = tmp_path / f"cut.csv{suffix}"
    path.write_bytes(whole[: len(whole) - 5])
    assert main(["--input", str(path), *CROSS, "--output", str(tmp_path / "b")]) == 3
    error = capsys.readouterr().err
    assert str(path) in error and ("without its end marker" in error or "is damaged" in error)
    assert not (tmp_path / "b" / "_MANIFEST.json").exists()


def test_a_corrupt_compressed_stream_is_a_message(tmp_path, capsys):
    data = bytearray(gzip.compress(_csv_bytes(_rows(5000))))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "in.csv.gz"
    path.write_bytes(bytes(data))
    assert main(["--input", str(path), *CROSS, "--output", str(tmp_path / "out")]) in (2, 3)
    error = capsys.readouterr().err
    assert str(path) in error and "Traceback" not in error and error.count("\n") == 1


# -- CSV values holding line breaks ------------------------------------------------------------------------
def test_no_line_of_a_quoted_value_becomes_a_row(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,country,hour,device,note\n1,fr,5,ios,plain\n2,fr,5,ios,"note\n3,us,4,ios,phantom\n"\n'
                     b'4,de,6,web,5"screen\n')
    output = tmp_path / "out"
    assert main(["--input", str(path), *CROSS, "--output", str(output), "--output_format", "jsonl"]) == 0
    crossed = [json.loads(line) for p in sorted((output / "crossed").glob("*")) for line in p.read_text().splitlines()]
    assert [(r["id"], r["note"]) for r in crossed] == [(1, "plain"), (2, "note\n3,us,4,ios,phantom\n"), (4, '5"screen')]
    assert [r["country_X_hour"] for r in crossed] == hashed_cross([["fr", "fr", "de"], [5, 5, 6]], num_bins=100).tolist()


# -- one writer per output -----------------------------------------------------------------------------
def test_a_second_run_into_a_live_runs_output_is_refused(tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_bytes(_csv_bytes(_rows(10)))
    output = tmp_path / "out"
    output.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"run_id": "other", "pid": sleeper.pid, "host": socket.gethostname(), "started": "2026-12-07T01:02:03Z",
                "heartbeat": 0}
        (output / LOCK).write_text(json.dumps(lock))
        assert main(["--input", str(path), *CROSS, "--output", str(output)]) == 2
        error = capsys.readouterr().err
        assert f"pid {sleeper.pid} on {socket.gethostname()}, started 2026-12-07T01:02:03Z" in error
        assert json.loads((output / LOCK).read_text()) == lock and not (output / "_MANIFEST.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the same lock once its process is gone: stale, taken over, released at the end
    assert main(["--input", str(path), *CROSS, "--output", str(output)]) == 0
    assert not (output / LOCK).exists() and len(_crossed(output)) == 10


def test_a_lock_from_another_host_is_stale_without_a_heartbeat(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(_csv_bytes(_rows(10)))
    output = tmp_path / "out"
    output.mkdir()
    (output / LOCK).write_text(json.dumps({"run_id": "x", "pid": 1, "host": "elsewhere", "heartbeat": 0}))
    assert main(["--input", str(path), *CROSS, "--output", str(output)]) == 0
    (output / LOCK).write_text(json.dumps({"run_id": "x", "pid": 1, "host": "elsewhere", "heartbeat": 4e9}))
    assert main(["--input", str(path), *CROSS, "--output", str(output)]) == 2


def test_two_runs_at_once_one_is_refused(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(_csv_bytes(_rows(400_000)))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "beam_cross", "--input", str(path), *CROSS, "--output", str(output), "--no_chart"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(r.wait(timeout=600), r.stderr.read()) for r in runs]
    for r in runs:
        r.stdout.close()
        r.stderr.close()
    statuses = sorted(status for status, _ in done)
    assert statuses in ([0, 0], [0, 2])  # the second starts after the first ended, or is refused
    if statuses == [0, 2]:
        assert "is being written by another beam-cross run" in [e for s, e in done if s == 2][0]
    assert json.loads((output / "_MANIFEST.json").read_text())["rows"]["read"] == 400_000


# -- a full disk ------------------------------------------------------------------------------------------
def _mount_small_tmpfs(folder: Path) -> bool:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_leaves_the_previous_output_and_is_a_message(tmp_path):
    """On a 512 KiB tmpfs where mounting works (root); otherwise with the file size limit a process can
    set (RLIMIT_FSIZE), which makes the writes fail the same way (EFBIG instead of ENOSPC)."""
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_bytes(_csv_bytes(_rows(50)))
    large.write_bytes(_csv_bytes(_rows(200_000)))
    output = tmp_path / "disk"
    mounted = _mount_small_tmpfs(output)
    limit = None if mounted else 256 << 10

    def command(source):
        return [sys.executable, "-m", "beam_cross", "--input", str(source), *CROSS, "--output", str(output / "out"),
                "--no_chart"]

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    try:
        assert subprocess.run(command(small), capture_output=True).returncode == 0
        before = _committed(output / "out")
        done = subprocess.run(command(large), capture_output=True, text=True, preexec_fn=limited if limit else None)
        assert done.returncode == 5, done.stderr
        assert ("No space left on device" if mounted else "File too large") in done.stderr
        assert "cannot write" in done.stderr and "Traceback" not in done.stderr
        assert _committed(output / "out") == before
    finally:
        if mounted:
            subprocess.run(["umount", str(output)], check=True)


def test_the_crosses_are_the_cores(tmp_path):
    """The ids the integrity tests compare with are those of the core's Cross, as the command computes."""
    assert _ids(_rows(5)) == Cross(["country", "hour"], 100).apply(
        {"country": [c for _, c, _ in _rows(5)], "hour": [h for _, _, h in _rows(5)]}).tolist()
    assert os.path.basename(LOCK).startswith(".")


# -- places of rejected rows, counted as the readers go ----------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rejected_rows_of_every_range_have_their_file_line(tmp_path, fmt):
    lines, bad = [], set()
    for i in range(3000):
        hour = "x" if i % 97 == 5 else str(i % 24)
        country = "" if i % 89 == 7 else f"c{i % 7}"  # empty: a missing value, rejected by the cross
        if fmt == "csv":
            lines.append(f"{i},{country},{hour}")
        else:
            lines.append(json.dumps({"id": i, "country": country or None, "hour": hour if hour == "x" else int(hour)}))
        if i % 97 == 5 or i % 89 == 7:
            bad.add(i)
    header = ["id,country,hour"] if fmt == "csv" else []
    data = "\n".join(header + lines) + "\n"
    path = tmp_path / f"in.{fmt}"
    path.write_text(data)
    output = tmp_path / "out"
    assert main(["--input", str(path), *CROSS, "--schema", "hour:int", "--output", str(output),
                 "--range_bytes", "1000", "--no_chart"]) == 0
    rejected = [json.loads(line) for p in sorted((output / "rejected").glob("*")) for line in p.read_text().splitlines()]
    numbers = {int(r["source"].rpartition(":")[2]) for r in rejected}
    first = len(header) + 1  # the line of row 0
    assert numbers == {first + i for i in bad}
    assert all(r["message"].startswith(r["source"] + ": ") and "_pending" not in r for r in rejected)
    text_lines = data.splitlines()
    for record in rejected:  # each place holds the row the record shows
        row = record["row"]
        shown = row["id"] if isinstance(row, dict) else (row.split(",")[0] if fmt == "csv" else json.loads(row)["id"])
        line = text_lines[int(record["source"].rpartition(":")[2]) - 1]
        assert str(shown) == (line.split(",")[0] if fmt == "csv" else str(json.loads(line)["id"])), record
