"""The ``beam-cross`` pipeline: one straight line of steps, the same on every runner.

    ReadChunks -> CrossAndWrite -> (key) -> CombinePerKey(Results)
               -> PlaceTasks -> GroupByKey -> Place -> (key) -> CombinePerKey(Placed) -> WriteResults

``CrossAndWrite`` crosses each chunk's RecordBatch and writes crossed rows and rejected rows to
files of its own in the run's temporary directory (one crossed and one rejected file per bundle,
named uniquely per attempt, in the spirit of Beam's FileBasedSink: a retried bundle's files are
never listed, so never counted). For each chunk it emits only a small :class:`Outcome`: the files
written to, the rows the writers took, the rejection reasons and the chunk's collision statistics.
Each work item's last chunk adds its coverage (what it read of its file). Those are combined into
one result per run (``_results.json``), from which the launcher checks that every planned byte was
read exactly once and rows read = rows crossed + rows rejected, and commits.

Rejected rows of text ranges past byte 0 are written with their line within the range; once the
results hold every range's line count, ``Place`` rewrites those files (in parallel, one task per
file) with each record's ``file:line``. With no such record, the tasks are the one result alone.

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

from beam_cross.beam.counters import RowCounters
from beam_cross.core.stats import CrossStatsAccumulator
from beam_cross.job import formats
from beam_cross.job.readers import ReadChunks, line_bases
from beam_cross.job.rejections import RejectedWriter, place_file

RESULTS_NAME = "_results.json"
PROGRESS_SECONDS = 10
_RESULTS_KEY = -1
_ROW = "__beam_cross_row__"  # each row's place in its chunk, to locate the rows crossing rejects
_log = logging.getLogger("beam_cross")


class Outcome(NamedTuple):
    """What one chunk (or one written shard) left behind; small, whatever the chunk's size."""

    rows_read: int
    files: tuple  # (kind, path, rows written, shard or -1, first source, rows waiting for their place)
    reasons: tuple  # (reason, count)
    stats: tuple  # one CrossStatsAccumulator per cross, or ()
    coverage: tuple = ()  # the coverage of the work item this chunk ended (see readers.read_item)


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
    :class:`~beam_cross.core.elements.ElementCrosser`; the chunk's reading rejections are not included."""
    rows = chunk.rows
    numbered = rows.append_column(_ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    crossed, errors = crosser.cross_record_batch(numbered)
    records = []
    if errors:
        kept = np.zeros(rows.num_rows, bool)
        if crossed is not None:
            kept[crossed.column(_ROW).to_numpy()] = True
        numbers = chunk.numbers
        for error, index in zip(errors, np.flatnonzero(~kept).tolist()):
            element = {k: v for k, v in error.element.items() if k != _ROW}
            number = int(numbers[index]) if numbers is not None else chunk.first + index
            records.append(chunk.record(number, error.reason, error.message, element, feature=error.feature,
                                        cross=error.cross))
    return (crossed.drop_columns([_ROW]) if crossed is not None else None), records


class _CrossAndWrite(beam.DoFn):
    """Chunk in; crossed and rejected rows to this bundle's files; one Outcome out per chunk."""

    def __init__(self, spec: dict):
        self._spec = spec
        self._counters = RowCounters()
        self._local = threading.local()  # DaskRunner may run one DoFn object in several threads: state per thread

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_local", "_crosser")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def setup(self):
        from beam_cross.core.elements import ElementCrosser

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
            suffix = formats.get(spec["output_format"]).suffix if kind == "crossed" else ".jsonl"
            path = FileSystems.join(spec["temp_dir"], kind, f"{uuid.uuid4().hex}{suffix}")
            setattr(local, kind, formats.open_writer(path, spec["output_format"]) if kind == "crossed"
                    else RejectedWriter(path))
        return getattr(local, kind)

    def process(self, chunk):
        spec, local = self._spec, self._local
        crossed, errors = cross_chunk(self._crosser, chunk)
        records = list(chunk.rejected) + errors
        files = []
        if records:
            writer = self._writer("rejected")
            waiting = writer.pending
            written = writer.write(records)
            files.append(("rejected", writer.path, written, -1, chunk.source, writer.pending - waiting))
        stats = ()
        if crossed is not None and crossed.num_rows:
            stats = tuple(self._stats(crossed))
            if spec["num_shards"]:
                local.next_shard = (local.next_shard + 1) % spec["num_shards"]
                yield local.next_shard, crossed
            else:
                written = self._writer("crossed").write(crossed)
                files.append(("crossed", local.crossed.path, written, -1, chunk.source, 0))
        reasons = collections.Counter(r["reason"] for r in records)
        self._counters.add(read=chunk.rows_read, crossed=crossed.num_rows if crossed is not None else 0, rejected=reasons)
        local.progress.add(chunk.rows_read, chunk.progress)
        coverage = (chunk.coverage,) if chunk.coverage is not None else ()
        outcome = Outcome(chunk.rows_read, tuple(files), tuple(reasons.items()), stats, coverage)
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
                                f"{formats.get(spec['output_format']).suffix}")
        writer = formats.open_writer(path, spec["output_format"])
        for batch in values:
            writer.write(batch)
        yield Outcome(0, (("crossed", path, writer.close(), key, f"shard {key:05d}", 0),), (), ())


class ResultsFn(beam.CombineFn):
    """Outcomes -> one dict: rows read, files written with their rows, reasons, merged statistics."""

    def create_accumulator(self):
        return {"rows_read": 0, "files": {}, "reasons": collections.Counter(), "stats": None, "coverage": []}

    def add_input(self, accumulator, outcome):
        accumulator["rows_read"] += outcome.rows_read
        accumulator["coverage"] += outcome.coverage
        for kind, path, rows, shard, source, pending in outcome.files:
            entry = accumulator["files"].setdefault(path, [kind, 0, shard, source, 0])
            entry[1] += rows
            entry[3] = min(entry[3], source)
            entry[4] += pending
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
            merged["coverage"] += other["coverage"]
            for path, (kind, rows, shard, source, pending) in other["files"].items():
                entry = merged["files"].setdefault(path, [kind, 0, shard, source, 0])
                entry[1] += rows
                entry[3] = min(entry[3], source)
                entry[4] += pending
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
            "files": [{"kind": k, "path": p, "rows": r, "shard": s, "first_source": f, "pending": n}
                      for p, (k, r, s, f, n) in sorted(accumulator["files"].items())],
            "reasons": dict(accumulator["reasons"]),
            "stats": [s.result().to_dict() for s in accumulator["stats"] or []],
            "coverage": sorted(accumulator["coverage"], key=lambda c: (c["path"], c["start"])),
        }


def _place_tasks(keyed, temp_dir):
    """The results (task 0), and one task per rejected file with records waiting for their place."""
    _, results = keyed
    waiting = [f for f in results["files"] if f["pending"]]
    bases = line_bases(results["coverage"]) if waiting else {}
    yield 0, ("results", results)
    for index, entry in enumerate(waiting, 1):
        yield index, ("place", entry["path"], FileSystems.join(temp_dir, "rejected", f"placed-{uuid.uuid4().hex}.jsonl"),
                      bases)


def _place(group):
    _, tasks = group
    for task in tasks:
        if task[0] == "results":
            yield task
        else:
            _, source, target, bases = task
            yield "placed", source, target, place_file(source, target, bases)


class PlacedFn(beam.CombineFn):
    """The results, with each rewritten rejected file in place of its first version."""

    def create_accumulator(self):
        return {"results": None, "placed": {}}

    def add_input(self, accumulator, item):
        if item[0] == "results":
            accumulator["results"] = item[1]
        else:
            _, source, target, rows = item
            accumulator["placed"][source] = (target, rows)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            merged["results"] = accumulator["results"] or merged["results"]
            merged["placed"].update(accumulator["placed"])
        return merged

    def extract_output(self, accumulator):
        results = accumulator["results"]
        for entry in results["files"]:
            if entry["path"] in accumulator["placed"]:
                target, rows = accumulator["placed"][entry["path"]]
                if rows != entry["rows"]:
                    raise RuntimeError(f"placing {entry['path']} wrote {rows} rows of {entry['rows']}")
                entry["path"], entry["pending"] = target, 0
        return results


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
        | "Read" >> ReadChunks(job.files, job.input_format, job.schema, range_bytes=job.range_bytes)
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
        | "PlaceTasks" >> beam.FlatMap(_place_tasks, job.temp_dir)
        | "ByTask" >> beam.GroupByKey()
        | "Place" >> beam.FlatMap(_place)
        | "OneKeyAgain" >> beam.Map(lambda item: (None, item))
        | "Placed" >> beam.CombinePerKey(PlacedFn())
        | "WriteResults" >> beam.Map(_write_results, FileSystems.join(job.temp_dir, RESULTS_NAME))
    )
