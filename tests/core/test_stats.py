"""Collision statistics, checked against a brute-force count over the same rows."""

from __future__ import annotations

import collections
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from beam_cross import Cross, hashed_cross
from beam_cross.core.stats import (
    CrossStats,
    CrossStatsAccumulator,
    expected_collision_share,
    suggested_num_bins,
)


def _rows(n, seed=0, multivalent=False):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {"country": rng.choice(["fr", "us", "de", "jp", "br", "in", "cn"]), "hour": rng.randrange(24)}
        if multivalent:
            row["tags"] = rng.sample(["a", "b", "c", "d", "e"], rng.randrange(4))
        rows.append(row)
    return rows


def _brute_force(rows, cross):
    """Per-row crossing (one call per row) and plain Python counting."""
    value_count = collections.Counter()
    bin_of = {}
    for row in rows:
        features = {f: [row[f]] for f in cross.features}
        keys = hashed_cross(features, 0, hash_key=cross.hash_key)
        bins = hashed_cross(features, cross.num_bins, hash_key=cross.hash_key)
        if isinstance(keys, pa.ListArray):
            keys, bins = keys.flatten().to_pylist(), bins.flatten().to_pylist()
        else:
            keys, bins = keys.tolist(), bins.tolist()
        for key, bin_ in zip(keys, bins):
            value_count[key] += 1
            bin_of[key] = bin_
    crosses_in_bin = collections.Counter(bin_of.values())
    colliding = [k for k in value_count if crosses_in_bin[bin_of[k]] > 1]
    total = sum(value_count.values())
    return {
        "rows": len(rows),
        "cross_values": total,
        "distinct_crosses": len(value_count),
        "bins_used": len(crosses_in_bin),
        "colliding_crosses": len(colliding),
        "collision_share": sum(value_count[k] for k in colliding) / total,
        "occupancy": tuple(sorted(collections.Counter(crosses_in_bin.values()).items())),
    }


def _summary(stats: CrossStats):
    return {
        "rows": stats.rows,
        "cross_values": stats.cross_values,
        "distinct_crosses": stats.distinct_crosses,
        "bins_used": stats.bins_used,
        "colliding_crosses": stats.colliding_crosses,
        "collision_share": stats.collision_share,
        "occupancy": stats.occupancy,
    }


@pytest.mark.parametrize("num_bins", [7, 50, 1000])
def test_counts_equal_brute_force(num_bins):
    rows = _rows(500, seed=num_bins)
    cross = Cross(["country", "hour"], num_bins)
    accumulator = CrossStatsAccumulator(cross)
    accumulator.add_rows(rows)
    assert _summary(accumulator.result()) == _brute_force(rows, cross)


def test_multivalent_rows_count_each_of_their_crosses():
    rows = _rows(300, seed=3, multivalent=True)
    cross = Cross(["tags", "country"], 20)
    accumulator = CrossStatsAccumulator(cross)
    accumulator.add_rows(rows)
    stats = accumulator.result()
    expected = _brute_force(rows, cross)
    assert _summary(stats) == expected
    # rows with no tags give no cross value: there are fewer values than rows * average
    assert stats.cross_values == sum(len(r["tags"]) for r in rows)


def test_colliding_crosses_stay_distinct():
    # With one bin every distinct cross shares it: all values collide, yet each cross is counted.
    rows = _rows(200, seed=5)
    accumulator = CrossStatsAccumulator(Cross(["country", "hour"], 1))
    accumulator.add_rows(rows)
    stats = accumulator.result()
    distinct = len({(r["country"], r["hour"]) for r in rows})
    assert (stats.bins_used, stats.distinct_crosses, stats.collision_share) == (1, distinct, 1.0)
    assert stats.occupancy == ((distinct, 1),)


def test_full_hash_has_no_collisions():
    rows = _rows(400, seed=6)
    accumulator = CrossStatsAccumulator(Cross(["country", "hour"], 0))
    accumulator.add_rows(rows)
    stats = accumulator.result()
    assert (stats.collision_share, stats.bins_used) == (0.0, stats.distinct_crosses)


def test_merge_equals_single_pass_and_arrow_equals_dicts():
    rows = _rows(900, seed=8)
    cross = Cross(["country", "hour"], 40, hash_key=12345)
    whole = CrossStatsAccumulator(cross)
    whole.add_rows(rows)
    parts = [CrossStatsAccumulator(cross) for _ in range(3)]
    parts[0].add_rows(rows[:100])
    parts[1].add_record_batch(pa.RecordBatch.from_pylist(rows[100:650]))
    parts[2].add_columns({f: [r[f] for r in rows[650:]] for f in cross.features})
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.result() == whole.result()


def test_bad_rows_are_skipped_and_counted():
    rows = _rows(50, seed=9)
    rows[7]["hour"] = None
    del rows[30]["country"]
    rows[41]["hour"] = 1.5
    accumulator = CrossStatsAccumulator(Cross(["country", "hour"], 10))
    accumulator.add_rows(rows)
    stats = accumulator.result()
    good = [r for i, r in enumerate(rows) if i not in (7, 30, 41)]
    assert stats.skipped_rows == 3
    assert _summary(stats) == _brute_force(good, Cross(["country", "hour"], 10))


def test_empty_accumulator():
    stats = CrossStatsAccumulator(Cross(["a", "b"], 10)).result()
    assert (stats.rows, stats.distinct_crosses, stats.bins_used, stats.collision_share) == (0, 0, 0, 0.0)
    assert stats.suggested_num_bins == 1


def test_to_dict_is_json():
    accumulator = CrossStatsAccumulator(Cross(["country", "hour"], 13))
    accumulator.add_rows(_rows(100))
    record = json.loads(json.dumps(accumulator.result().to_dict()))
    assert record["cross"] == "country_X_hour"
    assert sum(int(k) * n for k, n in record["occupancy"].items()) == record["distinct_crosses"]


@pytest.mark.parametrize("distinct", [2, 10, 1000, 123_457])
@pytest.mark.parametrize("target", [0.001, 0.01, 0.2])
def test_suggested_num_bins_is_the_smallest_meeting_the_target(distinct, target):
    bins = suggested_num_bins(distinct, target)
    assert expected_collision_share(distinct, bins) <= target
    assert bins == 1 or expected_collision_share(distinct, bins - 1) > target


def test_expected_share_formula_matches_simulation():
    # Throw 2,000 distinct items into m bins many times; the measured share of items in a shared
    # bin should match the occupancy formula within sampling noise.
    rng = np.random.default_rng(0)
    distinct, bins = 2000, suggested_num_bins(2000, 0.05)
    shares = []
    for _ in range(200):
        placed = rng.integers(0, bins, distinct)
        _, inverse, counts = np.unique(placed, return_inverse=True, return_counts=True)
        shares.append(np.mean(counts[inverse] > 1))
    assert abs(np.mean(shares) - expected_collision_share(distinct, bins)) < 0.002


def test_argument_errors():
    with pytest.raises(ValueError, match="target_collision_share"):
        suggested_num_bins(10, 1.5)
    with pytest.raises(TypeError, match="`cross` must be"):
        CrossStatsAccumulator(("a", "b"))
    with pytest.raises(ValueError, match="Cannot merge"):
        CrossStatsAccumulator(Cross(["a", "b"], 3)).merge(CrossStatsAccumulator(Cross(["a", "b"], 4)))


def test_multivalent_accumulators_equal_brute_force():
    rows = _rows(700, seed=11, multivalent=True)
    accumulator = CrossStatsAccumulator(Cross(["country", "hour"], 30))
    accumulator.add_rows(rows)
    assert _summary(accumulator.result()) == _brute_force(rows, Cross(["country", "hour"], 30))


def test_past_the_exact_limit_a_mergeable_sketch_with_stated_error():
    import pickle

    rng = np.random.default_rng(7)
    cross = Cross(["a", "b"], 1000)
    columns = {"a": rng.integers(0, 5000, 120_000), "b": rng.integers(0, 40, 120_000)}
    exact = CrossStatsAccumulator(cross)
    exact.add_columns(columns)
    truth = exact.result()
    assert truth.exact
    parts = []
    for start in range(0, 120_000, 30_000):  # each part stays exact; their merge goes past the limit
        part = CrossStatsAccumulator(cross, exact_limit=40_000)
        part.add_columns({k: v[start:start + 30_000] for k, v in columns.items()})
        parts.append(pickle.loads(pickle.dumps(part)))  # as Beam ships accumulators between workers
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    estimate = merged.result()
    assert not estimate.exact and estimate.occupancy == ()
    low, high = estimate.distinct_crosses_bounds
    assert low <= truth.distinct_crosses <= high
    assert 0 < estimate.relative_error < 0.03
    assert (estimate.rows, estimate.cross_values) == (truth.rows, truth.cross_values)
    assert estimate.collision_share == pytest.approx(expected_collision_share(estimate.distinct_crosses, 1000))
    record = estimate.to_dict()
    assert record["exact"] is False and record["distinct_crosses_95pct_bounds"] == [low, high]
    assert truth.to_dict()["exact"] is True
