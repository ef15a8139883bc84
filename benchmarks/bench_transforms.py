"""Transforms in a cross, timed against the raw cross they replace, in ``hashed_cross``.

- a cross with a ``Bucketize`` feature (float64 ages, 10 boundaries) x a string column, against the raw
  int cross of the same shape (the ages as int64 x the same strings): target <= 1.5x;
- a cross with a ``Lookup`` over a 100,000-token vocabulary (tokens drawn from it, 5% out of it) x an
  int column, against the raw cross of the same tokens: target <= 2x.

Each runs from NumPy columns (object arrays of ``str``) and from Arrow arrays. A ``Lookup`` builds the
index of its vocabulary once (printed apart), on first use; the timings are the best of ``--repeats``,
the two sides of each ratio run in turn within each repeat (so noise on a shared machine hits both).
The ids themselves are checked against Keras and TF's feature columns by the tests (golden and property).

Then the same two pairs through ``CrossFeatures`` on pyarrow RecordBatches (plain columns: float64
``age``, int64 ``age_int`` and ``hour``, string ``country`` and ``token``), one cross per pipeline, on
the FnApiRunner in this one process: ``--batches`` RecordBatches of ``--batch-rows`` rows, built once
before any pipeline and yielded by ``bench_pipeline.held_source`` (so no run pays for building or
pickling them), each pipeline ending in a row count that must equal the rows fed. Beside them the
floor of ``bench_pipeline``: the same pipeline with the cross replaced by the cheapest step of the
same shape (append one int64 column to each batch), timed again beside each pair. Each pipeline counts with the best of
``--repeats`` wall times (floor, transformed, raw in turn), the pipelines' set-up included (for the ``Lookup``, a worker rebuilds the
vocabulary's index, which is not pickled). Printed: seconds, transform/raw against the target, each
over the floor, and transform/raw net of the floor ((transform - floor) / (raw - floor), what the
crossing steps themselves cost). Before timing, every measured step's output on the first
``--check-batches`` batches is compared with ``Cross.apply`` on the same batch; a difference raises.

    python benchmarks/bench_transforms.py             # 1,000,000 rows; 1,000 batches of 2,000 rows; best of 5
    python benchmarks/bench_transforms.py --rows 100000 --repeats 3
    python benchmarks/bench_transforms.py --skip-pipeline   # hashed_cross only
    BEAM_CROSS_KERNEL=numpy python benchmarks/bench_transforms.py   # the NumPy path
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa

import beam_cross
import beam_cross.core
from beam_cross import Bucketize, Cross, CrossFeatures, Lookup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pipeline import _count_rows, _run, held_source  # noqa: E402

NUM_BINS = 1_000_000
VOCABULARY_SIZE = 100_000
BOUNDARIES = [1, 5, 12, 18, 25, 35, 45, 55, 65, 80]


def best_times(fns, repeats) -> list:
    """The best of ``repeats`` wall times of each of ``fns``, run in turn within each repeat (A, B, A,
    B, ...) so that a noisy neighbour on a shared machine slows both sides of a ratio alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def make_columns(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    ages = rng.uniform(0, 100, rows)
    countries = np.array(["fr", "us", "de", "jp", "br", "in", "cn", "gb", "es", "it"], dtype=object)[rng.integers(0, 10, rows)]
    vocabulary = [f"token_{i:06d}" for i in range(VOCABULARY_SIZE)]
    pool = np.array(vocabulary + [f"unknown_{i:05d}" for i in range(VOCABULARY_SIZE // 20)], dtype=object)
    tokens = pool[rng.integers(0, len(pool), rows)]
    hours = rng.integers(0, 24, rows)
    return {"ages": ages, "countries": countries, "vocabulary": vocabulary, "tokens": tokens, "hours": hours}


def shapes(columns: dict) -> list:
    """(name, transformed call, raw call, target) for NumPy and Arrow inputs."""
    bucketize = Bucketize("age", BOUNDARIES)
    lookup = Lookup("token", columns["vocabulary"], num_oov_indices=3)
    out = []
    for kind in ("numpy", "arrow"):
        def arrow(values, kind=kind):
            if kind == "numpy":
                return values
            return pa.array(values, pa.string() if values.dtype == object else None)
        ages, countries, tokens, hours = (arrow(columns[k]) for k in ("ages", "countries", "tokens", "hours"))
        int_ages = arrow(columns["ages"].astype(np.int64))
        out.append((f"Bucketize(age) x country ({kind})",
                    lambda a=ages, c=countries: beam_cross.hashed_cross({bucketize: a, "country": c}, NUM_BINS),
                    lambda a=int_ages, c=countries: beam_cross.hashed_cross([a, c], NUM_BINS), 1.5))
        out.append((f"Lookup(token, 100k) x hour ({kind})",
                    lambda t=tokens, h=hours: beam_cross.hashed_cross({lookup: t, "hour": h}, NUM_BINS),
                    lambda t=tokens, h=hours: beam_cross.hashed_cross([t, h], NUM_BINS), 2.0))
    return out, lookup


def make_batches(batches: int, batch_rows: int) -> list:
    """``batches`` RecordBatches of ``batch_rows`` rows, each built on its own buffers (as a reader gives them)."""
    columns = make_columns(batches * batch_rows, seed=1)
    columns["ages_int"] = columns["ages"].astype(np.int64)
    out = []
    for start in range(0, batches * batch_rows, batch_rows):
        part = slice(start, start + batch_rows)
        out.append(pa.RecordBatch.from_arrays(
            [pa.array(columns["ages"][part]), pa.array(columns["ages_int"][part]),
             pa.array(columns["countries"][part], pa.string()), pa.array(columns["tokens"][part], pa.string()),
             pa.array(columns["hours"][part])],
            names=["age", "age_int", "country", "token", "hour"]))
    return out, columns["vocabulary"]


def pipeline_crosses(vocabulary) -> list:
    """(name, transformed cross, raw cross, target), one cross per pipeline."""
    lookup = Lookup("token", vocabulary, num_oov_indices=3)
    return [
        ("Bucketize(age) x country", Cross([Bucketize("age", BOUNDARIES), "country"], NUM_BINS),
         Cross(["age_int", "country"], NUM_BINS), 1.5),
        ("Lookup(token, 100k) x hour", Cross([lookup, "hour"], NUM_BINS), Cross(["token", "hour"], NUM_BINS), 2.0),
    ]


def _append_zeros(name):
    """The floor's step: one int64 column appended to each batch, the shape of a cross's output."""
    def append(batch):
        return batch.append_column(name, pa.array(np.zeros(batch.num_rows, np.int64)))
    return append


def _pipeline(batches, shards, step, after=None):
    """Builds ``held batches | step [| after] | row count``; a fresh step per pipeline."""
    def build(p):
        out = held_source(p, batches, shards) | "Step" >> step()
        if after is not None:
            out = out | "After" >> beam.Map(after)
        return _count_rows(out, lambda batch: batch.num_rows)
    return build


def _checked(cross):
    """A Map function raising unless ``batch[cross.name]`` equals ``cross.apply`` on the batch's inputs."""
    def check(batch):
        got = batch.column(cross.name).to_numpy()
        expected = np.asarray(cross.apply({name: batch.column(name) for name in batch.schema.names}))
        if got.dtype != np.int64 or not np.array_equal(got, expected):
            differ = np.flatnonzero(got != expected) if got.shape == expected.shape else [0]
            wrong = int(differ[0]) if len(differ) else 0
            raise AssertionError(f"CrossFeatures' `{cross.name}` differs from Cross.apply at row {wrong}: "
                                 f"{got[wrong]} != {expected[wrong]}")
        return batch
    return check


def check_pipeline_ids(batches, crosses, shards) -> int:
    """Runs every measured cross over ``batches`` with a check of each output batch; returns the rows checked."""
    rows = sum(batch.num_rows for batch in batches)
    for cross in crosses:
        _run(_pipeline(batches, shards, lambda cross=cross: CrossFeatures([cross]), after=_checked(cross)), rows)
    return rows


def pipeline_rows(args) -> list:
    """Times the CrossFeatures pipelines; returns summary rows."""
    start = time.perf_counter()
    batches, vocabulary = make_batches(args.batches, args.batch_rows)
    rows = sum(batch.num_rows for batch in batches)
    print(f"\nCrossFeatures on RecordBatches, FnApiRunner (beam {beam.__version__}): {len(batches):,} batches of "
          f"{args.batch_rows:,} rows = {rows:,} rows, built once in {time.perf_counter() - start:.1f} s; "
          f"{args.shards} shards; best of {args.repeats}")
    cases = pipeline_crosses(vocabulary)
    checked = check_pipeline_ids(batches[:args.check_batches], [c for _, t, r, _ in cases for c in (t, r)], args.shards)
    print(f"ids of all {2 * len(cases)} crosses equal to Cross.apply on {checked:,} rows")

    def timed(*steps):  # in turn within each repeat, so that noise slows every side of a ratio alike
        builds = [_pipeline(batches, args.shards, step) for step in steps]
        return best_times([lambda build=build: _run(build, rows) for build in builds], args.repeats)

    out, floors = [], []
    for name, transformed, raw, target in cases:
        floor, ours, base = timed(lambda: beam.Map(_append_zeros("crossed")),
                                  lambda cross=transformed: CrossFeatures([cross]),
                                  lambda cross=raw: CrossFeatures([cross]))
        floors.append(floor)
        net = (ours - floor) / (base - floor) if base > floor else float("nan")
        print(f"  {'floor (append one int64 column)':40s} {floor:7.2f} s {rows / floor:12,.0f} rows/s")
        print(f"  {name + ' (transformed)':40s} {ours:7.2f} s {rows / ours:12,.0f} rows/s  {ours / floor:5.2f}x floor")
        print(f"  {name + ' (raw)':40s} {base:7.2f} s {rows / base:12,.0f} rows/s  {base / floor:5.2f}x floor")
        sys.stdout.flush()
        out.append(("CrossFeatures", name, f"{ours:.2f} s", f"{base:.2f} s", ours / base, target,
                    f"{ours / floor:.2f}x / {base / floor:.2f}x  net {net:.2f}x"))
    floor = min(floors)
    out.append(("CrossFeatures", "floor (append one int64 column)", f"{floor:.2f} s", "", None, None, ""))
    return out


def print_summary(rows, args) -> int:
    """The closing table; returns how many ratios miss their target."""
    print(f"\nSummary: rows={args.rows:,} (hashed_cross), {args.batches:,} x {args.batch_rows:,} rows (CrossFeatures), "
          f"best of {args.repeats}, kernel={beam_cross.core.KERNEL}, cpus={os.cpu_count()}")
    header = (f"{'part':13s} {'cross':40s} {'transformed':>13s} {'raw':>13s} {'ratio':>6s} {'target':>6s} {'':6s}"
              f" each/floor (transformed / raw; net = over the floor)")
    print(header)
    print("-" * len(header))
    missed = 0
    for part, name, ours, base, ratio, target, extra in rows:
        if ratio is None:
            print(f"{part:13s} {name:40s} {ours:>13s}")
            continue
        met = "ok" if ratio <= target else "MISSED"
        missed += met != "ok"
        print(f"{part:13s} {name:40s} {ours:>13s} {base:>13s} {ratio:5.2f}x {target:5.1f}x {met:6s} {extra}")
    return missed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="hashed_cross rows (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=1_000, help="RecordBatches fed to CrossFeatures (default 1,000)")
    parser.add_argument("--batch-rows", type=int, default=2_000, help="rows per RecordBatch (default 2,000)")
    parser.add_argument("--shards", type=int, default=4, help="Create elements the batches are split over")
    parser.add_argument("--check-batches", type=int, default=20, help="batches whose ids are checked (default 20)")
    parser.add_argument("--skip-pipeline", action="store_true", help="hashed_cross only")
    args = parser.parse_args(argv)
    print(f"kernel={beam_cross.core.KERNEL} rows={args.rows:,} num_bins={NUM_BINS:,} numpy {np.__version__} "
          f"pyarrow {pa.__version__} cpus={os.cpu_count()}")
    columns = make_columns(args.rows)
    cases, lookup = shapes(columns)
    start = time.perf_counter()
    lookup(["token_000000"])
    print(f"Lookup index of {VOCABULARY_SIZE:,} tokens built once in {(time.perf_counter() - start) * 1e3:.1f} ms")
    header = f"{'cross':40s} {'transformed':>14s} {'raw':>14s} {'ratio':>7s} {'target':>7s}"
    print(header)
    print("-" * len(header))
    summary = []
    for name, transformed, raw, target in cases:
        ours, base = best_times([transformed, raw], args.repeats)
        ratio = ours / base
        met = "ok" if ratio <= target else "MISSED"
        print(f"{name:40s} {ours / args.rows * 1e9:9.1f} ns/row {base / args.rows * 1e9:9.1f} ns/row "
              f"{ratio:6.2f}x {target:6.1f}x  {met}")
        sys.stdout.flush()
        summary.append(("hashed_cross", name, f"{ours / args.rows * 1e9:.1f} ns/row",
                        f"{base / args.rows * 1e9:.1f} ns/row", ratio, target, ""))
    print("(ratio = the cross with the transform / the raw cross of the same shape; lower is better)")
    if not args.skip_pipeline:
        summary += pipeline_rows(args)
    return 1 if print_summary(summary, args) else 0


if __name__ == "__main__":
    sys.exit(main())
