"""``ReadChunks`` against Beam's own read of the same file, side by side on the FnApiRunner.

For each format, one file of ``--rows`` rows (a 1,000-value string, two ints, a float and a string
id) is read by two pipelines that only count what they read: Beam's own IO (``ReadFromParquetBatched``,
``ReadFromText`` for CSV and JSON Lines, ``ReadFromTFRecord``) and ``beam_cross.job.readers.ReadChunks``,
which also parses every line into typed Arrow columns. It prints each time and the ratio, best of
``--repeats``; both pipelines' counts are checked against the rows written.

    python benchmarks/bench_readers.py                  # 1,000,000 rows, best of 3
    python benchmarks/bench_readers.py --rows 100000 --formats csv jsonl
    python benchmarks/bench_readers.py --memory --rows 1000000 3000000   # peak RSS, one process per read
    python benchmarks/bench_readers.py --rejections     # rejections cost no re-read and no halving

``--rejections`` measures the two costs that must stay linear: the ``beam-cross`` command on a 3M-row
JSON Lines file (about 250 MB) with a null crossed value every 2,000 rows against the same file clean
(time, and bytes the process read, from ``/proc/self/io``; target: no byte read twice, within 20% of
the clean time), and the command on a file where every line but one is refused (20,000 lines that
are not JSON) against 20,000 clean lines (target: within 3x), with the reader's own times beside.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from apache_beam.io.tfrecordio import _TFRecordUtil

from beam_cross.job.formats.examples import encode_example
from beam_cross.job.readers import ReadChunks, WorkItem, plan_input, read_item

FORMATS = ("parquet", "csv", "jsonl", "tfrecord")


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"country_{i:03d}" for i in range(1000)], dtype=object)
    return pa.table({
        "country": vocabulary[rng.integers(0, 1000, rows)],
        "hour": rng.integers(0, 24, rows),
        "user": rng.integers(0, 2**40, rows),
        "score": rng.random(rows).round(6),
        "id": np.array([f"id-{i:010d}" for i in range(rows)], dtype=object),
    })


def write_input(table: pa.Table, fmt: str, path: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="none"))
    elif fmt == "jsonl":
        with open(path, "w") as handle:
            for batch in table.to_batches(100_000):
                handle.writelines(json.dumps(row) + "\n" for row in batch.to_pylist())
    else:
        with open(path, "wb") as handle:
            for batch in table.to_batches(100_000):
                for row in batch.to_pylist():
                    _TFRecordUtil.write_record(handle, encode_example(row))


def _count_file(count, path):
    with open(path, "w") as handle:
        handle.write(str(count))


def beam_read(fmt: str, path: str, out: str) -> None:
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        if fmt == "parquet":
            sizes = pipeline | beam.io.ReadFromParquetBatched(path) | beam.Map(len)
        elif fmt == "tfrecord":
            sizes = pipeline | beam.io.ReadFromTFRecord(path) | beam.Map(lambda _: 1)
        else:
            sizes = pipeline | beam.io.ReadFromText(path, skip_header_lines=1 if fmt == "csv" else 0) | beam.Map(lambda _: 1)
        _ = sizes | beam.CombineGlobally(sum) | beam.Map(_count_file, out)


def chunk_read(fmt: str, path: str, out: str) -> None:
    plan = plan_input(path)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = (
            pipeline
            | ReadChunks(plan.files, plan.format, plan.schema)
            | beam.Map(lambda chunk: chunk.rows.num_rows)
            | beam.CombineGlobally(sum)
            | beam.Map(_count_file, out)
        )


def best(run, fmt, path, repeats, rows):
    out = path + ".count"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(fmt, path, out)
        times.append(time.perf_counter() - start)
        with open(out) as handle:
            assert int(handle.read()) == rows, f"{run.__name__} counted another number of rows than {rows}"
    return min(times)


def peak_rss_mb(run_name: str, fmt: str, path: str) -> float:
    """Peak RSS of a fresh process that runs one read."""
    done = subprocess.run([sys.executable, __file__, "--child", run_name, fmt, path], check=True,
                          capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def memory(args) -> None:
    print(f"peak RSS (MB) of one read in a fresh process; FnApiRunner; rows: {args.rows}")
    print(f"{'format':<10} " + " ".join(f"{'Beam ' + str(r):>12} {'ours ' + str(r):>12}" for r in args.rows))
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats:
            cells = []
            for rows in args.rows:
                path = os.path.join(folder, f"input-{rows}.{fmt}")
                write_input(make_table(rows), fmt, path)
                cells += [peak_rss_mb("beam_read", fmt, path), peak_rss_mb("chunk_read", fmt, path)]
                os.remove(path)
            print(f"{fmt:<10} " + " ".join(f"{c:>12.0f}" for c in cells), flush=True)


_COMMAND = """
import sys, time
from beam_cross.job.cli import main
started = time.perf_counter()
status = main(sys.argv[1:])
seconds = time.perf_counter() - started
read = next(int(line.split()[1]) for line in open("/proc/self/io") if line.startswith("rchar"))
print("RESULT", status, seconds, read)
"""


def _command(path: str, output: str, cross: str = "country,hour:1000") -> tuple[float, int]:
    done = subprocess.run([sys.executable, "-c", _COMMAND, "--input", path, "--cross", cross,
                           "--output", output, "--no_chart"], capture_output=True, text=True, check=True)
    _, status, seconds, read = done.stdout.strip().splitlines()[-1].split()
    assert status == "0", done.stderr
    return float(seconds), int(read)


def _read_seconds(path: str, repeats: int) -> float:
    plan = plan_input(path)
    item = WorkItem(plan.files[0], 0, plan.files[0].size)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        read = sum(chunk.rows_read for chunk in read_item(item, "jsonl", plan.schema))
        times.append(time.perf_counter() - started)
    with open(path, "rb") as handle:
        assert read == sum(1 for line in handle if line.strip())
    return min(times)


def rejections(args) -> None:
    rows = 3_000_000
    with tempfile.TemporaryDirectory() as folder:
        table = make_table(rows).drop_columns(["score"])
        clean, nulls = os.path.join(folder, "clean.jsonl"), os.path.join(folder, "nulls.jsonl")
        write_input(table, "jsonl", clean)
        countries = table.column("country").to_pylist()
        for i in range(0, rows, 2000):
            countries[i] = None
        write_input(table.set_column(0, "country", pa.array(countries)), "jsonl", nulls)
        size = os.path.getsize(nulls)
        print(f"the command on {rows:,} JSON Lines rows ({size / 1e6:.0f} MB), a null crossed value every 2,000 rows; best of {args.repeats}")
        results = {}
        for name, path in (("clean", clean), ("nulls", nulls)):
            runs = [_command(path, os.path.join(folder, f"out-{name}")) for _ in range(args.repeats)]
            results[name] = (min(r[0] for r in runs), min(r[1] for r in runs))
            print(f"  {name:<6} {results[name][0]:6.1f} s   read {results[name][1] / os.path.getsize(path):5.2f}x the file",
                  flush=True)
        ratio = results["nulls"][0] / results["clean"][0]
        extra = (results["nulls"][1] - results["clean"][1]) / size
        print(f"  time with rejections / clean: {ratio:.2f}x (target 1.2x); bytes read beyond the clean run: "
              f"{extra:+.2f}x the file (target 0)")
        good = [json.dumps({"a": i, "b": f"x{i}"}) for i in range(20_000)]
        clean_lines, refused = os.path.join(folder, "clean-lines.jsonl"), os.path.join(folder, "refused.jsonl")
        with open(clean_lines, "w") as handle:
            handle.write("\n".join(good) + "\n")
        with open(refused, "w") as handle:
            handle.write(good[0] + "\n" + "\n".join(f"not json {i}" for i in range(20_000)) + "\n")
        runs = {name: min(_command(path, os.path.join(folder, f"out-{name}-{i}"), "a,b:100")[0] for i in range(args.repeats))
                for name, path in (("clean", clean_lines), ("refused", refused))}
        print(f"the command on 20,000 clean lines: {runs['clean']:.2f} s; on 20,000 refused + 1: {runs['refused']:.2f} s; "
              f"ratio {runs['refused'] / runs['clean']:.2f}x (target 3x)")
        clean_seconds, refused_seconds = _read_seconds(clean_lines, args.repeats), _read_seconds(refused, args.repeats)
        print(f"  the reader alone: {clean_seconds:.3f} s and {refused_seconds:.3f} s ({refused_seconds / clean_seconds:.1f}x: "
              f"Arrow parses a clean line in {clean_seconds / 20_000 * 1e6:.1f} us, Python's json says why a line is refused in "
              f"{refused_seconds / 20_000 * 1e6:.1f} us)")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        run_name, fmt, path = sys.argv[2:5]
        globals()[run_name](fmt, path, path + ".count")
        with open("/proc/self/status") as status:  # VmHWM: ru_maxrss would count the parent's peak (kept across exec)
            print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--memory", action="store_true", help="peak RSS of each read instead of times")
    parser.add_argument("--rejections", action="store_true", help="the costs of rejections (see above)")
    args = parser.parse_args()
    if args.rejections:
        rejections(args)
        return
    if args.memory:
        memory(args)
        return
    args.rows = args.rows[0]
    table = make_table(args.rows)
    print(f"{args.rows:,} rows; FnApiRunner; best of {args.repeats}")
    print(f"{'format':<10} {'MB':>7} {'Beam read s':>12} {'ReadChunks s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats:
            path = os.path.join(folder, f"input.{fmt}")
            write_input(table, fmt, path)
            floor = best(beam_read, fmt, path, args.repeats, args.rows)
            ours = best(chunk_read, fmt, path, args.repeats, args.rows)
            size = os.path.getsize(path) / 1e6
            print(f"{fmt:<10} {size:>7.1f} {floor:>12.2f} {ours:>13.2f} {ours / floor:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
