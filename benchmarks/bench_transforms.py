"""Transforms in a cross, timed against the raw cross they replace, in ``hashed_cross``.

- a cross with a ``Bucketize`` feature (float64 ages, 10 boundaries) x a string column, against the raw
  int cross of the same shape (the ages as int64 x the same strings): target <= 1.5x;
- a cross with a ``Lookup`` over a 100,000-token vocabulary (tokens drawn from it, 5% out of it) x an
  int column, against the raw cross of the same tokens: target <= 2x.

Each runs from NumPy columns (object arrays of ``str``) and from Arrow arrays. A ``Lookup`` builds the
index of its vocabulary once (printed apart), on first use; the timings are the best of ``--repeats``.
The ids themselves are checked against Keras and TF's feature columns by the tests (golden and property).

    python benchmarks/bench_transforms.py             # 1,000,000 rows, best of 5
    python benchmarks/bench_transforms.py --rows 100000 --repeats 3
    BEAM_CROSS_KERNEL=numpy python benchmarks/bench_transforms.py   # the NumPy path
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa

import beam_cross
import beam_cross.core
from beam_cross import Bucketize, Lookup

NUM_BINS = 1_000_000
VOCABULARY_SIZE = 100_000


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
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
    bucketize = Bucketize("age", [1, 5, 12, 18, 25, 35, 45, 55, 65, 80])
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
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
    failures = 0
    for name, transformed, raw, target in cases:
        ours = best_time(transformed, args.repeats)
        base = best_time(raw, args.repeats)
        ratio = ours / base
        met = "ok" if ratio <= target else "MISSED"
        failures += met != "ok"
        print(f"{name:40s} {ours / args.rows * 1e9:9.1f} ns/row {base / args.rows * 1e9:9.1f} ns/row "
              f"{ratio:6.2f}x {target:6.1f}x  {met}")
        sys.stdout.flush()
    print("(ratio = the cross with the transform / the raw cross of the same shape; lower is better)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
