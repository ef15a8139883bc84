"""The cross-features job as one straight line of steps, for runners that mishandle branches.

Beam 2.77's DaskRunner computes only the last step of a pipeline, and a PCollection consumed by
two steps (a fan-out, or the outputs of a multi-output ParDo joined by ``Flatten``) comes out with
duplicated elements. This variant has no branch at all:

    files -> read + cross each file -> GroupByKey(output shard) -> write shard + its statistics
          -> GroupByKey(one key) -> merge statistics, write the report

Every file also emits a marker record carrying its count of rows read, so the last step knows the
rows read without runner metrics (DaskRunner reports none) and runs even on empty input. The
outputs (shard names, rejected records, report) are the same as :func:`beam_cross.job.build_pipeline`.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_cross import io, report
from beam_cross.sinks import shard_path
from beam_cross.sources import METRICS_NAMESPACE, rejection
from beam_cross.stats import CrossStatsAccumulator

CROSSED, REJECTED, READ = "crossed", "rejected", "read"
_BATCH = 1024


def cross_outcomes(crosser, batch):
    """``(True, crossed row)`` or ``(False, Rejected)`` per row of ``batch``, in order."""
    crossed, rejected = crosser.cross_elements(batch)
    for position, row in enumerate(crossed):
        yield (False, rejected[position]) if position in rejected else (True, row)


class _ReadAndCross(beam.DoFn):
    """One file in; ``((kind, shard), record)`` out, plus one ``((READ, 0), rows read)`` marker."""

    def __init__(self, job):
        self._job = job
        self._counters = {n: Metrics.counter(METRICS_NAMESPACE, f"rows_{n}") for n in (READ, CROSSED, REJECTED)}

    def setup(self):
        from beam_cross.elements import ElementCrosser

        self._crosser = ElementCrosser(self._job.crosses, keep_inputs=True, feature_types=self._job.feature_types)

    def _cross(self, batch):
        for ok, outcome in cross_outcomes(self._crosser, batch):
            if ok:
                self._counters[CROSSED].inc()
                self._next = (self._next + 1) % self._job.num_shards
                yield (CROSSED, self._next), outcome
            else:
                self._counters[REJECTED].inc()
                yield (REJECTED, 0), rejection(outcome.reason, outcome.message, outcome.element,
                                               feature=outcome.feature, cross=outcome.cross)

    def process(self, path):
        self._next = hash(path) % self._job.num_shards
        batch, read = [], 0
        for item in io.read_file(path, self._job.input_format, self._job.schema):
            read += 1
            self._counters[READ].inc()
            if isinstance(item, dict):
                batch.append(item)
                if len(batch) == _BATCH:
                    yield from self._cross(batch)
                    batch = []
            else:
                reason, source, raw, message = item
                self._counters[REJECTED].inc()
                yield (REJECTED, 0), rejection(reason, f"{source}: {message}", raw, source=source)
        yield from self._cross(batch)
        yield (READ, 0), read


def _write_group(group, job):
    (kind, shard), records = group
    if kind == READ:
        return None, {"kind": READ, "count": sum(records)}
    if kind == REJECTED:
        path = shard_path(job.rejected_prefix, 0, 1, "jsonl")
        return None, {"kind": kind, "path": path, "count": io.write_shard(path, "jsonl", records, [], {})}
    records = list(records)
    path = shard_path(job.crossed_prefix, shard, job.num_shards, job.output_format)
    count = io.write_shard(path, job.output_format, records, job.columns, job.schema)
    accumulators = [CrossStatsAccumulator(c, job.target_collision_share) for c in job.crosses]
    for accumulator in accumulators:
        accumulator.add_rows(records)
    return None, {"kind": kind, "path": path, "count": count, "stats": accumulators}


def _finish(grouped, job):
    _, results = grouped
    results = list(results)
    written = {r["path"] for r in results if "path" in r}
    for shard in range(job.num_shards):  # every -of-N shard exists, as WriteShards guarantees
        path = shard_path(job.crossed_prefix, shard, job.num_shards, job.output_format)
        if path not in written:
            io.write_shard(path, job.output_format, [], job.columns, job.schema)
    rejected_path = shard_path(job.rejected_prefix, 0, 1, "jsonl")
    if rejected_path not in written:
        io.write_shard(rejected_path, "jsonl", [], [], {})
    merged = [CrossStatsAccumulator(c, job.target_collision_share) for c in job.crosses]
    for result in results:
        for mine, theirs in zip(merged, result.get("stats") or []):
            mine.merge(theirs)
    report.write_json([m.result() for m in merged], FileSystems.join(job.report_dir, report.JSON_NAME))
    return sum(r["count"] for r in results if r["kind"] == READ)


def build_linear_pipeline(pipeline, job):
    """Adds the branch-free job to ``pipeline``; returns the PCollection holding the rows read."""
    return (
        pipeline
        | "Files" >> beam.Create(job.files)
        | "Spread" >> beam.Reshuffle()
        | "ReadAndCross" >> beam.ParDo(_ReadAndCross(job))
        | "ByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(_write_group, job)
        | "All" >> beam.GroupByKey()
        | "Report" >> beam.Map(_finish, job)
    )
