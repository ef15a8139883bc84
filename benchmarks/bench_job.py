"""The ``beam-cross`` command against the Beam floor, per format: time and peak memory.

For each format (Parquet, CSV, JSON Lines, TFRecord of tf.Examples) and size (1M and 3M rows by
default), this generates an input (cached in ``--data_dir``), then runs, each in a child process
whose peak RSS is read from the OS (``wait4``):

- the command: ``python -m beam_cross --input FILE --cross country,hour:1000 --cross device,site:500``;
- the floor: a FnApiRunner pipeline that reads the same file with Beam's own IO and writes it back
  unchanged (``ReadFromParquetBatched -> WriteToParquetBatched``, ``ReadFromText -> WriteToText``,
  ``ReadFromTFRecord -> WriteToTFRecord``).

It prints, per format and size, both wall times (best of ``--repeat``, command and floor alternated),
their ratio against its target (Parquet 1.5x, the others 2x), and peak RSS; then, per format, the
command's peak RSS at the largest size against the smallest (target 1.25x). Both sides pay the
interpreter start and Beam's import. The machine may be shared: read ratios, not absolute times.

    python benchmarks/bench_job.py                      # 1M and 3M rows, every format
    python benchmarks/bench_job.py --rows 200000 --formats parquet csv --repeat 1

``--learning`` measures the learning stage instead: the command with a ``--config`` whose transforms
are unlearned (``Bucketize(price, num_buckets=10)``, ``Lookup(site, max_tokens=100)``,
``Lookup(country)``), which learns then crosses in one run, against the same command given the spec it
learned (crossing only). Learning time = the first run's time less the second's (target: at most the
crossing stage's time, 1x), and the first run's peak RSS at the largest size against the smallest
(target flat, 1.25x).

    python benchmarks/bench_job.py --learning --formats parquet   # 1M and 3M rows
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ("parquet", "csv", "jsonl", "tfrecord")
TARGETS = {"parquet": 1.5, "csv": 1.0, "jsonl": 1.0, "tfrecord": 1.0}
CROSSES = ["--cross", "country,hour:1000", "--cross", "device,site:500"]

FLOOR = {
    "parquet": """
import sys, apache_beam as beam, pyarrow.parquet as pq
from apache_beam.io.parquetio import ReadFromParquetBatched, WriteToParquetBatched
source, target = sys.argv[1:3]
with beam.Pipeline(runner="FnApiRunner") as p:
    _ = p | ReadFromParquetBatched(source) | WriteToParquetBatched(target, schema=pq.read_schema(source))
""",
    "text": """
import sys, apache_beam as beam
from apache_beam.io.textio import ReadFromText, WriteToText
source, target = sys.argv[1:3]
with beam.Pipeline(runner="FnApiRunner") as p:
    _ = p | ReadFromText(source) | WriteToText(target)
""",
    "tfrecord": """
import sys, apache_beam as beam
from apache_beam.io.tfrecordio import ReadFromTFRecord, WriteToTFRecord
source, target = sys.argv[1:3]
with beam.Pipeline(runner="FnApiRunner") as p:
    _ = p | ReadFromTFRecord(source) | WriteToTFRecord(target)
""",
}


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    countries = np.array([f"c{i:02d}" for i in range(60)], dtype=object)
    sites = np.array([f"site-{i:03d}" for i in range(200)], dtype=object)
    devices = np.array(["mobile", "desktop", "tablet"], dtype=object)
    return pa.table({
        "click_id": pa.array(np.arange(rows, dtype=np.int64)),
        "country": pa.array(countries[rng.integers(0, len(countries), rows)], pa.string()),
        "hour": pa.array(rng.integers(0, 24, rows, dtype=np.int64)),
        "device": pa.array(devices[rng.integers(0, 3, rows)], pa.string()),
        "site": pa.array(sites[rng.integers(0, len(sites), rows)], pa.string()),
        "ad_id": pa.array(rng.integers(1000, 5000, rows, dtype=np.int64)),
        "price": pa.array(np.round(rng.random(rows) * 10, 3)),
    })


def write_input(table: pa.Table, fmt: str, path: str) -> None:
    sys.path.insert(0, ROOT)
    from beam_cross.job import formats

    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="needed"))
    else:
        writer = formats.open_writer(path, fmt)
        for batch in table.to_batches(max_chunksize=100_000):
            writer.write(batch)
        writer.close()


def input_file(data_dir: str, fmt: str, rows: int) -> str:
    """The cached input; generated in a child process, so that this one stays small: a child's peak
    RSS (which Linux keeps across fork and exec) must not start from a big parent's."""
    path = os.path.join(data_dir, f"clicks-{rows}.{fmt}")
    if not os.path.exists(path):
        started = time.monotonic()
        subprocess.run([sys.executable, __file__, "--generate", fmt, str(rows), path + ".partial"], check=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
        os.rename(path + ".partial", path)
        print(f"  generated {path} in {time.monotonic() - started:.0f} s", flush=True)
    return path


def _own_rss() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of a child process; raises if it fails."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": ROOT})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... failed:\n{error[-3000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


LEARNING_SPEC = [
    {"features": [{"transform": "bucketize", "name": "price", "num_buckets": 10},
                  {"transform": "lookup", "name": "site", "max_tokens": 100}], "num_bins": 1000},
    {"features": [{"transform": "lookup", "name": "country"}, "hour"], "num_bins": 1000},
]


def learning(args, work: str) -> None:
    """The ``--learning`` variant (see the module docstring)."""
    import json

    todo = os.path.join(work, "todo.json")
    with open(todo, "w", encoding="utf-8") as handle:
        json.dump(LEARNING_SPEC, handle)
    peaks = {}
    for fmt in args.formats:
        for rows in args.rows:
            source = input_file(args.data_dir, fmt, rows)
            best = {"learn+cross": (float("inf"), 0.0), "cross": (float("inf"), 0.0)}
            for attempt in range(args.repeat):
                out = os.path.join(work, f"{fmt}-{rows}-{attempt}")
                seconds, rss = measure([sys.executable, "-m", "beam_cross", "--input", source, "--config", todo,
                                        "--output", out + "-learn", "--no_chart"])
                best["learn+cross"] = (min(best["learn+cross"][0], seconds), max(best["learn+cross"][1], rss))
                learned = os.path.join(work, f"learned-{fmt}-{rows}")
                shutil.rmtree(learned, ignore_errors=True)
                shutil.copytree(os.path.join(out + "-learn", "learned"), learned)
                seconds, rss = measure([sys.executable, "-m", "beam_cross", "--input", source, "--config",
                                        os.path.join(learned, "crosses.json"), "--output", out + "-cross", "--no_chart"])
                best["cross"] = (min(best["cross"][0], seconds), max(best["cross"][1], rss))
                for side in ("learn", "cross"):
                    shutil.rmtree(out + f"-{side}", ignore_errors=True)
            (both_s, both_rss), (cross_s, cross_rss) = best["learn+cross"], best["cross"]
            learn_s = both_s - cross_s
            peaks[fmt, rows] = both_rss
            print(f"{fmt:<9} {rows:>10,} rows  learn+cross {both_s:7.1f} s {both_rss:7,.0f} MiB   cross only "
                  f"{cross_s:7.1f} s {cross_rss:7,.0f} MiB   learning {learn_s:6.1f} s = {learn_s / cross_s:4.2f}x the "
                  f"crossing run (target 1x) {'ok' if learn_s <= cross_s else 'MISSED'}", flush=True)
    if len(args.rows) > 1:
        small, large = min(args.rows), max(args.rows)
        print(f"\npeak RSS of learn+cross at {large:,} rows against {small:,} rows (target 1.25x):")
        for fmt in args.formats:
            ratio = peaks[fmt, large] / peaks[fmt, small]
            print(f"{fmt:<9} {peaks[fmt, small]:7,.0f} MiB -> {peaks[fmt, large]:7,.0f} MiB   {ratio:.2f}x "
                  f"{'ok' if ratio <= 1.25 else 'MISSED'}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--generate"]:
        fmt, rows, path = argv[1], int(argv[2]), argv[3]
        write_input(make_table(rows), fmt, path)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--repeat", type=int, default=2, help="keep the fastest of this many runs of each side")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "beam_cross_bench_job"))
    parser.add_argument("--learning", action="store_true", help="measure the learning stage (see above)")
    args = parser.parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench_job_")
    if args.learning:
        print(f"beam-cross learning stage, best of {args.repeat}; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} at start", flush=True)
        learning(args, work)
        shutil.rmtree(work, ignore_errors=True)
        return
    results = {}
    print(f"beam-cross command vs the Beam floor (FnApiRunner), best of {args.repeat}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start; this process {_own_rss():.0f} MiB", flush=True)
    for fmt in args.formats:
        for rows in args.rows:
            source = input_file(args.data_dir, fmt, rows)
            floor = FLOOR["text" if fmt in ("csv", "jsonl") else fmt]
            best = {"command": (float("inf"), 0.0), "floor": (float("inf"), 0.0)}
            for attempt in range(args.repeat):
                out = os.path.join(work, f"{fmt}-{rows}-{attempt}")
                sides = {
                    "command": [sys.executable, "-m", "beam_cross", "--input", source, *CROSSES, "--output",
                                out + "-command", "--no_chart"],
                    "floor": [sys.executable, "-c", floor, source, out + "-floor/part"],
                }
                for side, command in sides.items():
                    seconds, rss = measure(command)
                    best[side] = (min(best[side][0], seconds), max(best[side][1], rss))
                    shutil.rmtree(out + f"-{side}", ignore_errors=True)
            results[fmt, rows] = best
            (cmd_s, cmd_rss), (floor_s, floor_rss) = best["command"], best["floor"]
            ratio = cmd_s / floor_s
            print(f"{fmt:<9} {rows:>10,} rows  command {cmd_s:7.1f} s {cmd_rss:7,.0f} MiB   floor {floor_s:7.1f} s "
                  f"{floor_rss:7,.0f} MiB   ratio {ratio:5.2f}x (target {TARGETS[fmt]}x) "
                  f"{'ok' if ratio <= TARGETS[fmt] else 'MISSED'}", flush=True)
    if len(args.rows) > 1:
        small, large = min(args.rows), max(args.rows)
        print(f"\npeak RSS of the command at {large:,} rows against {small:,} rows (target 1.25x):")
        for fmt in args.formats:
            ratio = results[fmt, large]["command"][1] / results[fmt, small]["command"][1]
            print(f"{fmt:<9} {results[fmt, small]['command'][1]:7,.0f} MiB -> {results[fmt, large]['command'][1]:7,.0f} MiB"
                  f"   {ratio:.2f}x {'ok' if ratio <= 1.25 else 'MISSED'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
