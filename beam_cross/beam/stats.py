"""``CrossStatsFn``: the collision statistics of :mod:`beam_cross.core.stats` as a Beam ``CombineFn``."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from beam_cross.core.spec import Cross, check_crosses
from beam_cross.core.stats import DEFAULT_TARGET_COLLISION_SHARE, CrossStatsAccumulator, check_target


class CrossStatsFn(beam.CombineFn):
    """Beam ``CombineFn``: rows (dicts) or Arrow ``RecordBatch`` es in, a tuple of ``CrossStats`` out.

    One pass computes the statistics of every cross in ``crosses`` (in that order). Dict rows are
    buffered and crossed ``batch_size`` at a time.

    Example: ``rows | beam.CombineGlobally(CrossStatsFn(crosses))``.
    """

    def __init__(self, crosses, *, target_collision_share=DEFAULT_TARGET_COLLISION_SHARE, batch_size=1024):
        self._crosses = check_crosses([crosses] if isinstance(crosses, Cross) else crosses)
        self._target = check_target(target_collision_share)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
        self._batch_size = batch_size

    def create_accumulator(self):
        return ([CrossStatsAccumulator(c, self._target) for c in self._crosses], [])

    def _flush(self, accumulator):
        accumulators, pending = accumulator
        if pending:
            for each in accumulators:
                each.add_rows(pending)
            pending.clear()

    def add_input(self, accumulator, element):
        accumulators, pending = accumulator
        if isinstance(element, pa.RecordBatch):
            for each in accumulators:
                each.add_record_batch(element)
            return accumulator
        pending.append(element)
        if len(pending) >= self._batch_size:
            self._flush(accumulator)
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        merged = accumulators[0]
        self._flush(merged)
        for other in accumulators[1:]:
            self._flush(other)
            for mine, theirs in zip(merged[0], other[0]):
                mine.merge(theirs)
        return merged

    def compact(self, accumulator):
        self._flush(accumulator)
        for each in accumulator[0]:
            each._compact()
        return accumulator

    def extract_output(self, accumulator):
        self._flush(accumulator)
        return tuple(each.result() for each in accumulator[0])
