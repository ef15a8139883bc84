"""beam_cross.hashed_cross vs tf.sparse.cross_hashed, side by side in one process.

Every shape runs three times: from NumPy arrays (object arrays of ``str`` for string columns, as
pandas and Beam hand them over), from NumPy ``U`` arrays, and from the same columns as Arrow arrays (``string`` / ``int64``, as
Parquet readers and TFXIO hand them over). Both sides start from the same input and end with an
int64 NumPy array of bins: the TensorFlow side pays for ``tf.constant`` (after
``to_numpy(zero_copy_only=False)`` for an Arrow input, as a caller of the op must) and
``tf.sparse.to_dense``. Every timed result is also compared element by element, so the benchmark
doubles as a parity check. String columns also run as NumPy ``U`` arrays. Every input kind has
the shape's target.

    python benchmarks/bench_core.py              # 1,000,000 rows, best of 5
    python benchmarks/bench_core.py --rows 100000 --repeats 3
    BEAM_CROSS_KERNEL=numpy python benchmarks/bench_core.py   # the NumPy path, without the compiled kernel
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
import pyarrow as pa

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import beam_cross  # noqa: E402
import beam_cross.core  # noqa: E402

NUM_BINS = 1_000_000


def make_shapes(rows: int, seed: int = 0) -> dict:
    """Shape name -> (columns, target ratio over tf.sparse.cross_hashed). String columns are object
    arrays of Python ``str``, as pandas columns and Python lists hold them."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(-(2**62), 2**62, rows)
    small = rng.integers(0, 1000, rows)
    vocabulary = np.array([f"value_{i:04d}" for i in range(1000)], dtype=object)
    low_card = vocabulary[rng.integers(0, 1000, rows)]
    distinct17 = np.array([f"id-{i:014d}" for i in rng.permutation(rows)], dtype=object)
    distinct_long = max(rows // 5, 1)  # 200,000 distinct 100-300-byte values in 1M rows
    lengths = rng.integers(100, 301, distinct_long)
    filler = "".join(chr(ord("a") + i % 26) for i in range(300))
    long_values = np.array([f"{i:010d}{filler[: n - 10]}" for i, n in enumerate(lengths)], dtype=object)
    long_strings = long_values[rng.integers(0, distinct_long, rows)]
    short_words = np.array(["".join(chr(ord("a") + (i * 7 + j) % 26) for j in range(3 + i % 10)) for i in range(5000)],
                           dtype=object)
    words_a = short_words[rng.integers(0, len(short_words), rows)]
    words_b = short_words[rng.integers(0, len(short_words), rows)]
    return {
        "int64 x int64": ([ints, small], 10.0),
        "1,000-value string x int64": ([low_card, small], 6.0),
        "distinct 17-byte strings x int64": ([distinct17, small], 4.0),
        "200k distinct 100-300-byte str x int64": ([long_strings, small], 2.5),
        "str x int64 x str (3-12-byte strings)": ([words_a, small, words_b], 4.0),
    }


def as_arrow(columns) -> list:
    """The same columns as Arrow arrays: ``string`` for str objects, ``int64`` for integers."""
    return [pa.array(c, pa.string() if c.dtype == object else pa.int64()) for c in columns]


def as_fixed_width(columns) -> list:
    """The same columns with strings as a NumPy ``U`` array (fixed-width UCS-4, as ``np.array`` of
    Python strings makes it)."""
    return [c.astype(str) if c.dtype == object else c for c in columns]


def tf_cross(columns, num_bins):
    import tensorflow as tf

    arrays = [c.to_numpy(zero_copy_only=False) if isinstance(c, pa.Array) else c for c in columns]
    tensors = [tf.constant(column.reshape(-1, 1)) for column in arrays]
    return tf.sparse.to_dense(tf.sparse.cross_hashed(tensors, num_bins)).numpy().reshape(-1)


def best_time(fn, columns, repeats):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(columns, NUM_BINS)
        best = min(best, time.perf_counter() - start)
    return best, result


def input_bytes(columns) -> int:
    total = 0
    for column in columns:
        if isinstance(column, pa.Array):
            total += column.get_total_buffer_size()
            continue
        total += column.nbytes
        if column.dtype == object:
            total += sum(len(v) for v in column)  # the characters the pointers refer to
    return total


def peak_memory(columns) -> int:
    """Peak bytes allocated by one hashed_cross call: NumPy (traced) plus a fresh Arrow pool."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        beam_cross.hashed_cross(columns, NUM_BINS)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(previous)
    return numpy_peak + pool.max_memory()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import tensorflow as tf

    print(f"kernel={getattr(beam_cross.core, 'KERNEL', 'none (a build before the kernel)')} rows={args.rows:,} num_bins={NUM_BINS:,} numpy {np.__version__} pyarrow {pa.__version__} "
          f"tensorflow {tf.__version__} cpus={os.cpu_count()}")
    header = (f"{'shape':40s} {'input':>6s} {'beam_cross':>12s} {'tf op':>12s} {'ratio':>7s} {'target':>7s} "
              f"{'peak/input':>10s}")
    print(header)
    print("-" * len(header))
    failures = 0
    for name, (columns, target) in make_shapes(args.rows).items():
        for kind, inputs in (("numpy", columns), ("U", as_fixed_width(columns)), ("arrow", as_arrow(columns))):
            ours, ours_bins = best_time(beam_cross.hashed_cross, inputs, args.repeats)
            theirs, tf_bins = best_time(tf_cross, inputs, args.repeats)
            if not np.array_equal(ours_bins, tf_bins):
                print(f"{name} ({kind}): MISMATCH with tf.sparse.cross_hashed", file=sys.stderr)
                return 2
            ratio = theirs / ours
            goal = target
            memory = peak_memory(inputs) / input_bytes(inputs)
            met = "ok" if ratio >= goal and memory <= 2 else "MISSED"
            failures += met != "ok"
            print(f"{name:40s} {kind:>6s} {args.rows / ours / 1e6:8.1f} M/s {args.rows / theirs / 1e6:8.1f} M/s "
                  f"{ratio:6.1f}x {goal:6.1f}x {memory:9.1f}x  {met}")
            sys.stdout.flush()
    print("(throughput in million rows per second; ratio = beam_cross / TensorFlow fed the same input; "
          "outputs identical; peak = one hashed_cross call's NumPy + Python + Arrow allocations, target <= 2x)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
