"""Collision statistics of a hashed cross, and how many bins it would need.

Two different crosses (say ``("fr", 13)`` and ``("us", 7)``) collide when they land in the same bin.
To tell them apart, each cross value is identified by its full hash (``hashed_cross`` with
``num_bins=0``, i.e. the 64-bit fold modulo ``2**63 - 1``) and placed in its bin (``hashed_cross``
with the cross's ``num_bins``). Both are computed by the crossing core; the bin is *not* derived from
the full hash, because ``h mod n`` differs from ``(h mod (2**63 - 1)) mod n``.

Counting: a *row* is one input row; a *cross value* is one output id. A single-valued cross gives
one value per row; a multivalent row gives one value per combination of its values (possibly none).
``collision_share`` is the share of cross values (so, for single-valued crosses, of rows) whose bin
holds more than one distinct cross. :class:`beam_cross.beam.stats.CrossStatsFn` computes the same
statistics as a Beam ``CombineFn``.

Suggested ``num_bins`` (birthday / occupancy argument): with ``D`` distinct crosses hashed uniformly
into ``m`` bins, one given cross shares its bin with at least one of the other ``D - 1`` with
probability ``p(m) = 1 - (1 - 1/m) ** (D - 1)``. That probability does not depend on how frequent
the cross is, so it is also the expected collision share over cross values. The suggestion is the
smallest ``m`` with ``p(m) <= target``: ``m = ceil(1 / (1 - (1 - target) ** (1 / (D - 1))))``,
about ``(D - 1) / target`` for small targets. ``D`` is the number of distinct crosses *seen*; on a
sample it underestimates the full data.

Memory stays bounded: an accumulator counts exactly up to ``exact_limit`` distinct crosses (about
24 bytes each), then switches to Apache DataSketches HLL sketches of the full hashes and of the
bins (mergeable, a few kilobytes). The statistics are then estimates: ``exact`` is False,
``distinct_crosses`` comes with 95% bounds, and ``collision_share`` is what the occupancy formula
predicts for the estimated distinct count (no per-bin occupancy).

>>> from beam_cross import Cross
>>> accumulator = CrossStatsAccumulator(Cross(["country", "hour"], num_bins=3))
>>> accumulator.add_columns({"country": ["fr", "us", "fr", "de"], "hour": [13, 7, 13, 9]})
>>> stats = accumulator.result()
>>> (stats.rows, stats.distinct_crosses, stats.bins_used, stats.collision_share)
(4, 3, 2, 0.75)
>>> stats.suggested_num_bins
200
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasketches
import numpy as np
import pyarrow as pa

from beam_cross.core.cross import hashed_cross
from beam_cross.core.errors import FeatureError
from beam_cross.core.spec import Cross

DEFAULT_TARGET_COLLISION_SHARE = 0.01
_COMPACT_EVERY = 1 << 16  # pending cross values before they are folded into the counts
DEFAULT_EXACT_LIMIT = 1 << 20  # distinct crosses counted exactly before switching to a sketch
HLL_LG_K = 14  # 2**14 HLL buckets: about 0.8% relative standard error


def expected_collision_share(distinct_crosses: int, num_bins) -> np.ndarray | float:
    """``1 - (1 - 1/num_bins) ** (distinct_crosses - 1)``: the chance a cross shares its bin.

    ``num_bins=0`` (the full hash) means no collisions. Accepts an array of ``num_bins``.

    >>> round(expected_collision_share(1000, 100_000), 5)
    0.00994
    """
    bins = np.asarray(num_bins, dtype=np.float64)
    others = max(int(distinct_crosses) - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(bins > 1, -np.expm1(others * np.log1p(-1.0 / np.maximum(bins, 2.0))), 1.0)
    share = np.where(bins == 0, 0.0, share)
    if others == 0:
        share = np.zeros_like(share)
    return float(share) if share.ndim == 0 else share


def suggested_num_bins(distinct_crosses: int, target_collision_share: float = DEFAULT_TARGET_COLLISION_SHARE) -> int:
    """The fewest bins whose expected collision share is at most ``target_collision_share``.

    >>> suggested_num_bins(1000)
    99401
    >>> suggested_num_bins(1)
    1
    """
    check_target(target_collision_share)
    others = int(distinct_crosses) - 1
    if others <= 0:
        return 1
    bins = math.ceil(1.0 / -math.expm1(math.log1p(-target_collision_share) / others))
    # Guard the float rounding at the boundary: step to the exact smallest count that meets the target.
    while bins > 1 and expected_collision_share(distinct_crosses, bins - 1) <= target_collision_share:
        bins -= 1
    while expected_collision_share(distinct_crosses, bins) > target_collision_share:
        bins += 1
    return bins


def check_target(target_collision_share) -> float:
    if isinstance(target_collision_share, bool) or not isinstance(target_collision_share, (int, float)):
        raise TypeError(
            f"`target_collision_share` must be a float. Received: target_collision_share={target_collision_share!r}"
        )
    if not 0 < target_collision_share < 1:
        raise ValueError(
            "`target_collision_share` must be strictly between 0 and 1. "
            f"Received: target_collision_share={target_collision_share!r}"
        )
    return float(target_collision_share)


@dataclass(frozen=True)
class CrossStats:
    """Collision statistics of one cross (see the module docstring for how values are counted).

    ``occupancy`` maps k to the number of used bins holding exactly k distinct crosses.
    ``skipped_rows`` counts rows that could not be crossed (they are not in any other count).
    """

    cross: str
    num_bins: int
    rows: int
    cross_values: int
    distinct_crosses: int
    bins_used: int
    colliding_crosses: int
    collision_share: float
    suggested_num_bins: int
    target_collision_share: float
    occupancy: tuple[tuple[int, int], ...] = ()
    skipped_rows: int = 0
    exact: bool = True
    distinct_crosses_bounds: tuple[int, int] | None = None  # 95% bounds when estimated

    @property
    def expected_collision_share(self) -> float:
        """What the occupancy formula predicts for this many distinct crosses and bins."""
        return expected_collision_share(self.distinct_crosses, self.num_bins)

    def to_dict(self) -> dict:
        return {
            "cross": self.cross,
            "num_bins": self.num_bins,
            "rows": self.rows,
            "cross_values": self.cross_values,
            "distinct_crosses": self.distinct_crosses,
            "bins_used": self.bins_used,
            "colliding_crosses": self.colliding_crosses,
            "collision_share": self.collision_share,
            "expected_collision_share": self.expected_collision_share,
            "suggested_num_bins": self.suggested_num_bins,
            "target_collision_share": self.target_collision_share,
            "occupancy": {str(k): n for k, n in self.occupancy},
            "skipped_rows": self.skipped_rows,
            "exact": self.exact,
            **({"distinct_crosses_95pct_bounds": list(self.distinct_crosses_bounds),
                "relative_error_95pct": self.relative_error} if not self.exact else {}),
        }

    @property
    def relative_error(self) -> float:
        """Half the 95% interval of ``distinct_crosses``, relative to it (0 when exact)."""
        if self.exact or not self.distinct_crosses:
            return 0.0
        low, high = self.distinct_crosses_bounds
        return (high - low) / 2 / self.distinct_crosses


class CrossStatsAccumulator:
    """Counts per distinct cross of one ``Cross``; mergeable, so it can run on many workers.

    Feed it columns (``add_columns``), rows (``add_rows``), an Arrow ``RecordBatch``
    (``add_record_batch``), or hashes computed elsewhere (``add_hashes``), then ``merge`` and
    ``result``.
    """

    def __init__(self, cross: Cross, target_collision_share: float = DEFAULT_TARGET_COLLISION_SHARE, *,
                 exact_limit: int = DEFAULT_EXACT_LIMIT):
        if not isinstance(cross, Cross):
            raise TypeError(f"`cross` must be a beam_cross.Cross. Received: cross={cross!r}")
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, int) or exact_limit < 1:
            raise ValueError(f"`exact_limit` must be a positive int. Received: exact_limit={exact_limit!r}")
        self.cross = cross
        self.target_collision_share = check_target(target_collision_share)
        self.exact_limit = exact_limit
        self._sketches = None  # (HLL of full hashes, HLL of bins) once past exact_limit
        self._cross_values = 0
        self.rows = 0
        self.skipped_rows = 0
        # Compacted state: sorted unique keys, their bins and counts; plus not-yet-compacted chunks.
        self._keys = np.zeros(0, np.int64)
        self._bins = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    # -- feeding -------------------------------------------------------------------------------
    def add_hashes(self, keys, bins, rows: int | None = None) -> None:
        """Cross values given as their full hashes (``num_bins=0``) and bins, one per value."""
        keys = np.asarray(keys, np.int64).reshape(-1)
        bins = np.asarray(bins, np.int64).reshape(-1)
        if keys.shape != bins.shape:
            raise ValueError(f"`keys` and `bins` must have the same length. Received: {len(keys)} keys, {len(bins)} bins")
        self.rows += len(keys) if rows is None else int(rows)
        if self._sketches is not None:
            self._cross_values += len(keys)
            self._sketch_update(keys, bins)
            return
        self._pending.append((keys, bins, np.ones(len(keys), np.int64)))
        self._pending_size += len(keys)
        if self._pending_size >= _COMPACT_EVERY:
            self._compact()

    def add_columns(self, columns: Mapping, bins=None) -> None:
        """Columns of the cross's features (any form ``hashed_cross`` accepts); raises FeatureError.

        ``bins``: this cross's bins of the same rows, if already computed (e.g. the crossed column).
        """
        # A transformed feature is crossed by its ids: hashed_cross takes the transform as the key.
        features = {f if t is None else t: columns[f] for f, t in zip(self.cross.features, self.cross.transforms)}
        keys = hashed_cross(features, 0, hash_key=self.cross.hash_key)
        if bins is None:
            bins = hashed_cross(features, self.cross.num_bins, hash_key=self.cross.hash_key)
        if isinstance(keys, (pa.ListArray, pa.LargeListArray)):
            rows = len(keys)
            keys, bins = keys.flatten().to_numpy(), bins.flatten().to_numpy()
        else:
            rows = keys.size
            bins = bins.to_numpy() if isinstance(bins, (pa.Array, pa.ChunkedArray)) else bins
        self.add_hashes(keys, bins, rows)

    def add_rows(self, rows: Sequence[Mapping]) -> None:
        """Dict rows; a row that cannot be crossed (missing or bad value) is counted as skipped."""
        rows = list(rows)
        if not rows:
            return
        try:
            self.add_columns({f: [row.get(f) for row in rows] for f in self.cross.features})
        except FeatureError:
            if len(rows) == 1:
                self.skipped_rows += 1
                return
            middle = len(rows) // 2  # bisect to keep every good row of a batch with a bad one
            self.add_rows(rows[:middle])
            self.add_rows(rows[middle:])

    def add_record_batch(self, batch: pa.RecordBatch) -> None:
        """An Arrow batch; a batch with a bad value falls back to its rows (see ``add_rows``)."""
        try:
            self.add_columns({f: batch.column(f) for f in self.cross.features})
        except (FeatureError, KeyError):
            self.add_rows(batch.to_pylist())

    def merge(self, other: CrossStatsAccumulator) -> CrossStatsAccumulator:
        if other.cross != self.cross:
            raise ValueError(f"Cannot merge statistics of cross `{other.cross.name}` into `{self.cross.name}`")
        self.rows += other.rows
        self.skipped_rows += other.skipped_rows
        other._compact()
        if other._sketches is not None:
            self._to_sketch()
            for index, sketch in enumerate(other._sketches):
                union = datasketches.hll_union(HLL_LG_K)
                union.update(self._sketches[index])
                union.update(sketch)
                self._sketches[index] = union.get_result(datasketches.HLL_8)
            self._cross_values += other._cross_values
            return self
        if self._sketches is not None:
            self._cross_values += int(other._counts.sum())
            self._sketch_update(other._keys, other._bins)
            return self
        self._pending.append((other._keys, other._bins, other._counts))
        self._pending_size += len(other._keys)
        self._compact()
        return self

    # -- the sketch, past exact_limit --------------------------------------------------------------
    def _sketch_update(self, keys, bins) -> None:
        for sketch, values in zip(self._sketches, (keys, bins)):
            for value in np.unique(values).tolist():
                sketch.update(value)

    def _to_sketch(self) -> None:
        if self._sketches is not None:
            return
        self._compact()
        if self._sketches is not None:  # the compaction itself went past exact_limit
            return
        self._sketches = [datasketches.hll_sketch(HLL_LG_K, datasketches.HLL_8) for _ in range(2)]
        self._cross_values = int(self._counts.sum())
        keys, bins = self._keys, self._bins
        self._keys = self._bins = self._counts = np.zeros(0, np.int64)
        self._sketch_update(keys, bins)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._sketches is not None:
            state["_sketches"] = [s.serialize_compact() for s in self._sketches]
        return state

    def __setstate__(self, state):
        if state.get("_sketches") is not None:
            state["_sketches"] = [datasketches.hll_sketch.deserialize(b) for b in state["_sketches"]]
        self.__dict__.update(state)

    # -- results ------------------------------------------------------------------------------
    def _compact(self) -> None:
        if not self._pending:
            return
        if self._sketches is not None:
            for keys, bins, counts in self._pending:
                self._cross_values += int(counts.sum())
                self._sketch_update(keys, bins)
            self._pending, self._pending_size = [], 0
            return
        keys = np.concatenate([self._keys, *(p[0] for p in self._pending)])
        bins = np.concatenate([self._bins, *(p[1] for p in self._pending)])
        counts = np.concatenate([self._counts, *(p[2] for p in self._pending)])
        self._keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        self._bins = bins[first]
        self._counts = np.zeros(len(self._keys), np.int64)
        np.add.at(self._counts, inverse, counts)
        self._pending, self._pending_size = [], 0
        if len(self._keys) > self.exact_limit:
            self._to_sketch()

    def _estimated_result(self) -> CrossStats:
        keys, bins = self._sketches
        distinct = max(int(round(keys.get_estimate())), 0)
        bounds = (int(math.floor(keys.get_lower_bound(2))), int(math.ceil(keys.get_upper_bound(2))))
        bins_used = int(round(bins.get_estimate()))
        if self.cross.num_bins:
            bins_used = min(bins_used, self.cross.num_bins)
        share = expected_collision_share(distinct, self.cross.num_bins)
        return CrossStats(
            cross=self.cross.name,
            num_bins=self.cross.num_bins,
            rows=self.rows,
            cross_values=self._cross_values,
            distinct_crosses=distinct,
            bins_used=bins_used,
            colliding_crosses=int(round(distinct * share)),
            collision_share=float(share),
            suggested_num_bins=suggested_num_bins(distinct, self.target_collision_share),
            target_collision_share=self.target_collision_share,
            occupancy=(),
            skipped_rows=self.skipped_rows,
            exact=False,
            distinct_crosses_bounds=bounds,
        )

    def result(self) -> CrossStats:
        self._compact()
        if self._sketches is not None:
            return self._estimated_result()
        cross_values = int(self._counts.sum())
        if len(self._keys):
            _, bin_of_key, crosses_per_bin = np.unique(self._bins, return_inverse=True, return_counts=True)
            colliding = crosses_per_bin[bin_of_key] > 1
            sizes, bins_with_size = np.unique(crosses_per_bin, return_counts=True)
            occupancy = tuple((int(k), int(n)) for k, n in zip(sizes, bins_with_size))
            bins_used = len(crosses_per_bin)
        else:
            colliding = np.zeros(0, bool)
            occupancy, bins_used = (), 0
        colliding_values = int(self._counts[colliding].sum())
        return CrossStats(
            cross=self.cross.name,
            num_bins=self.cross.num_bins,
            rows=self.rows,
            cross_values=cross_values,
            distinct_crosses=len(self._keys),
            bins_used=bins_used,
            colliding_crosses=int(colliding.sum()),
            collision_share=colliding_values / cross_values if cross_values else 0.0,
            suggested_num_bins=suggested_num_bins(len(self._keys), self.target_collision_share),
            target_collision_share=self.target_collision_share,
            occupancy=occupancy,
            skipped_rows=self.skipped_rows,
        )

