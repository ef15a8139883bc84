"""The ``beam-cross`` pipeline: one straight line of steps, the same on every runner.

    ReadChunks -> CrossAndWrite -> (key) -> CombinePerKey(Results) -> WriteResults

``CrossAndWrite`` crosses each chunk's RecordBatch and writes crossed rows and rejected rows to
files of its own in the run's temporary directory (one crossed and one rejected file per bundle,
named uniquely per attempt, in the spirit of Beam's FileBasedSink: a retried bundle's files are
never listed, so never counted). For each chunk it emits only a small :class:`Outcome`: the files
written to, the rows the writers took, the rejection reasons and the chunk's collision statistics.
Those are combined into one result per run (``_results.json``), from which the launcher checks
rows read = rows crossed + rows rejected, and commits.

With ``--num_shards N`` (an explicit opt-in), crossed batches are grouped by shard
(``GroupByKey``, which holds the crossed rows) and written as exactly N files.

A straight line, with no branch, no multi-output ParDo and no output from ``finish_bundle``, is
also what Beam's DaskRunner runs correctly (it computes only the last step).
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
import typing
import uuid
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_cross.core.stats import CrossStatsAccumulator
from beam_cross.job import writers
from beam_cross.job.readers import ReadChunks
from beam_cross.job.rejections import rejection

METRICS_NAMESPACE = "beam_cross"
RESULTS_NAME = "_results.json"
PROGRESS_SECONDS = 10
_RESULTS_KEY = -1
_ROW = "__beam_cross_row__"  # each row's place in its chunk, to locate the rows crossing rejects
_log = logging.getLogger("beam_cross")


class Outcome(NamedTuple):
    """What one chunk (or one written shard) left behind; small, whatever the chunk's size."""

    rows_read: int
    files: tuple  # (kind, path, rows written, shard or -1, first source)
    reasons: tuple  # (reason, count)
    stats: tuple  # one CrossStatsAccumulator per cross, or ()


class Progress:
    """A line now and then: rows done, rate, and (against a known total) share done and time left."""

    def __init__(self, total: int, unit: str, whole_job: bool, every: float = PROGRESS_SECONDS):
        self.total, self.unit, self.whole_job, self.every = total, unit, whole_job, every
        self.rows = self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, rows: int, units: int = 0) -> None:
        """``rows`` more rows read, standing for ``units`` of the total (rows or bytes)."""
        self.rows += rows
        self.done += units
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            _log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        seconds = max(now - self.started, 1e-9)
        rate = self.rows / seconds
        text = f"beam-cross: {self.rows:,} rows in {seconds:,.0f} s ({rate:,.0f} rows/s)"
        if self.whole_job and self.total and self.done:
            share = min(self.done / self.total, 1.0)
            left = seconds * (1 - share) / share
            of = f"{self.total:,} rows" if self.unit == "rows" else f"{self.total / 2**20:,.0f} MiB"
            text += f", {share:.0%} of {of}, about {left:,.0f} s left"
        elif not self.whole_job:
            text += " on this worker"
        return text


def cross_chunk(crosser, chunk):
    """A chunk's crossed rows (a RecordBatch, None when all were rejected) and its crossing
    rejections as records, each with its ``file:line``. ``crosser`` is an
    :class:`~beam_cross.beam.elements.ElementCrosser`; the chunk's reading rejections are not included."""
    rows = chunk.rows
    numbered = rows.append_column(_ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    crossed, errors = crosser.cross_record_batch(numbered)
    records = []
    if errors:
        kept = np.zeros(rows.num_rows, bool)
        if crossed is not None:
            kept[crossed.column(_ROW).to_numpy()] = True
        for error, source in zip(errors, chunk.locate(np.flatnonzero(~kept))):
            element = {k: v for k, v in error.element.items() if k != _ROW}
            records.append(rejection(error.reason, f"{source}: {error.message}", element, source=source,
                                     feature=error.feature, cross=error.cross))
    return (crossed.drop_columns([_ROW]) if crossed is not None else None), records


class _CrossAndWrite(beam.DoFn):
    """Chunk in; crossed and rejected rows to this bundle's files; one Outcome out per chunk."""

    def __init__(self, spec: dict):
        self._spec = spec
        self._counters = {n: Metrics.counter(METRICS_NAMESPACE, n) for n in ("rows_read", "rows_crossed", "rows_rejected")}
        self._local = threading.local()  # DaskRunner may run one DoFn object in several threads: state per thread

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_local", "_crosser")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def setup(self):
        from beam_cross.beam.elements import ElementCrosser

        spec = self._spec
        self._crosser = ElementCrosser(spec["crosses"], keep_inputs=True, feature_types=spec["feature_types"])

    def start_bundle(self):
        local = self._local
        local.crossed = local.rejected = None
        local.next_shard = random.randrange(self._spec["num_shards"]) if self._spec["num_shards"] else 0
        if not hasattr(local, "progress"):
            local.progress = Progress(self._spec["progress_total"], self._spec["progress_unit"], self._spec["whole_job"])

    def _writer(self, kind):
        local, spec = self._local, self._spec
        if getattr(local, kind) is None:
            suffix = writers.SUFFIXES[spec["output_format"]] if kind == "crossed" else ".jsonl"
            path = FileSystems.join(spec["temp_dir"], kind, f"{uuid.uuid4().hex}{suffix}")
            setattr(local, kind, writers.open_writer(path, spec["output_format"]) if kind == "crossed"
                    else writers.RejectedWriter(path))
        return getattr(local, kind)

    def process(self, chunk):
        spec, local = self._spec, self._local
        crossed, errors = cross_chunk(self._crosser, chunk)
        records = list(chunk.rejected) + errors
        files = []
        if records:
            written = self._writer("rejected").write(records)
            files.append(("rejected", local.rejected.path, written, -1, chunk.source))
        stats = ()
        if crossed is not None and crossed.num_rows:
            stats = tuple(self._stats(crossed))
            if spec["num_shards"]:
                local.next_shard = (local.next_shard + 1) % spec["num_shards"]
                yield local.next_shard, crossed
            else:
                written = self._writer("crossed").write(crossed)
                files.append(("crossed", local.crossed.path, written, -1, chunk.source))
        reasons = collections.Counter(r["reason"] for r in records)
        self._counters["rows_read"].inc(chunk.rows_read)
        self._counters["rows_crossed"].inc(crossed.num_rows if crossed is not None else 0)
        self._counters["rows_rejected"].inc(len(records))
        local.progress.add(chunk.rows_read, chunk.progress)
        outcome = Outcome(chunk.rows_read, tuple(files), tuple(reasons.items()), stats)
        yield (_RESULTS_KEY, outcome) if spec["num_shards"] else outcome

    def _stats(self, crossed):
        spec = self._spec
        for cross in spec["crosses"]:
            accumulator = CrossStatsAccumulator(cross, spec["target_collision_share"])
            if cross.output_mode == "int":  # the crossed column holds the bins: only the full hash is left
                accumulator.add_columns({f: crossed.column(f) for f in cross.features}, bins=crossed.column(cross.name))
            else:
                accumulator.add_record_batch(crossed)
            yield accumulator

    def finish_bundle(self):
        local = self._local
        for kind in ("crossed", "rejected"):
            writer = getattr(local, kind)
            if writer is not None:
                writer.close()
            setattr(local, kind, None)


class _WriteShard(beam.DoFn):
    """``(shard, batches)`` -> one file holding them; ``(-1, outcomes)`` pass through."""

    def __init__(self, spec: dict):
        self._spec = spec

    def process(self, group):
        key, values = group
        if key == _RESULTS_KEY:
            yield from values
            return
        spec = self._spec
        path = FileSystems.join(spec["temp_dir"], "crossed", f"shard-{key:05d}-{uuid.uuid4().hex}"
                                f"{writers.SUFFIXES[spec['output_format']]}")
        writer = writers.open_writer(path, spec["output_format"])
        for batch in values:
            writer.write(batch)
        yield Outcome(0, (("crossed", path, writer.close(), key, f"shard {key:05d}"),), (), ())


class ResultsFn(beam.CombineFn):
    """Outcomes -> one dict: rows read, files written with their rows, reasons, merged statistics."""

    def create_accumulator(self):
        return {"rows_read": 0, "files": {}, "reasons": collections.Counter(), "stats": None}

    def add_input(self, accumulator, outcome):
        accumulator["rows_read"] += outcome.rows_read
        for kind, path, rows, shard, source in outcome.files:
            entry = accumulator["files"].setdefault(path, [kind, 0, shard, source])
            entry[1] += rows
            entry[3] = min(entry[3], source)
        accumulator["reasons"].update(dict(outcome.reasons))
        if outcome.stats:
            if accumulator["stats"] is None:
                accumulator["stats"] = list(outcome.stats)
            else:
                for mine, theirs in zip(accumulator["stats"], outcome.stats):
                    mine.merge(theirs)
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            merged["rows_read"] += other["rows_read"]
            for path, (kind, rows, shard, source) in other["files"].items():
                entry = merged["files"].setdefault(path, [kind, 0, shard, source])
                entry[1] += rows
                entry[3] = min(entry[3], source)
            merged["reasons"].update(other["reasons"])
            if other["stats"] is not None:
                if merged["stats"] is None:
                    merged["stats"] = other["stats"]
                else:
                    for mine, theirs in zip(merged["stats"], other["stats"]):
                        mine.merge(theirs)
        return merged

    def extract_output(self, accumulator):
        return {
            "rows_read": accumulator["rows_read"],
            "files": [{"kind": k, "path": p, "rows": r, "shard": s, "first_source": f}
                      for p, (k, r, s, f) in sorted(accumulator["files"].items())],
            "reasons": dict(accumulator["reasons"]),
            "stats": [s.result().to_dict() for s in accumulator["stats"] or []],
        }


def _write_results(keyed, path):
    _, results = keyed
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(results).encode("utf-8"))
    return path


def build_pipeline(pipeline, job, whole_job_progress: bool = True):
    """Adds the job's steps to ``pipeline``; the last step writes ``_results.json`` in the temp dir."""
    spec = {
        "crosses": list(job.crosses),
        "feature_types": dict(job.feature_types),
        "output_format": job.output_format,
        "num_shards": job.num_shards,
        "temp_dir": job.temp_dir,
        "target_collision_share": job.target_collision_share,
        "progress_total": job.progress_total,
        "progress_unit": job.progress_unit,
        "whole_job": whole_job_progress,
    }
    outcomes = (
        pipeline
        | "Read" >> ReadChunks(job.files, job.input_format, job.schema)
        | "CrossAndWrite" >> beam.ParDo(_CrossAndWrite(spec)).with_output_types(typing.Any)
    )
    if job.num_shards:
        outcomes = (
            outcomes
            | "ByShard" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(_WriteShard(spec)).with_output_types(typing.Any)
        )
    return (
        outcomes
        | "OneKey" >> beam.Map(lambda outcome: (None, outcome))
        | "Results" >> beam.CombinePerKey(ResultsFn())
        | "WriteResults" >> beam.Map(_write_results, FileSystems.join(job.temp_dir, RESULTS_NAME))
    )
