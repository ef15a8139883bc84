"""The cross-features job behind ``beam-cross``: build the pipeline, run it, account for every row.

``run(argv)`` parses the command line (unknown flags go to Beam's ``PipelineOptions``), runs the
pipeline, then counts what was actually written (crossed + rejected) against the rows read and
raises :class:`RowsLost` when they differ. Runners that report metrics while running (Dataflow,
Flink...) get a progress line every ``PROGRESS_SECONDS``; workers also log their own progress.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from beam_cross import io, report
from beam_cross.cli import Job, build_parser, plan
from beam_cross.linear_job import build_linear_pipeline
from beam_cross.sinks import WriteShards
from beam_cross.sources import METRICS_NAMESPACE, REJECTED, ROWS, ReadRows, rejection
from beam_cross.stats import CrossStatsFn

PROGRESS_SECONDS = 10
_log = logging.getLogger("beam_cross")


class RowsLost(RuntimeError):
    """Rows read != rows written (crossed + rejected) after the run."""


class _Progress(beam.DoFn):
    """Counts rows into a Beam metric and logs this worker's count now and then."""

    def __init__(self, name, every_seconds=PROGRESS_SECONDS):
        self._name = name
        self._every = every_seconds
        self._counter = Metrics.counter(METRICS_NAMESPACE, name)

    def setup(self):
        self._seen, self._last = 0, time.monotonic()

    def process(self, element):
        self._counter.inc()
        self._seen += 1
        if time.monotonic() - self._last > self._every:
            self._last = time.monotonic()
            _log.info("beam-cross: %s %d rows so far (this worker)", self._name.replace("_", " "), self._seen)
        yield element


def _rejected_record(error) -> dict:
    """A ``beam_cross.transforms.Rejected`` as a rejected-output record."""
    return rejection(error.reason, error.message, error.element, feature=error.feature, cross=error.cross)


def _cross_step(job: Job):
    from beam_cross.transforms import CrossFeatures

    return CrossFeatures(job.crosses, keep_inputs=True, feature_types=job.feature_types).with_exception_handling()


def build_pipeline(pipeline, job: Job, runner: str | None = None):
    """Adds the job's steps to ``pipeline``; returns the shard outputs ``(crossed, rejected)``."""
    read = pipeline | "Read" >> ReadRows(job.files, job.input_format, job.schema)
    crossed, errors = read[ROWS] | "Cross" >> _cross_step(job)
    rejected = (
        (read[REJECTED], errors | "AsRecords" >> beam.Map(_rejected_record))
        | "AllRejected" >> beam.Flatten()
        | "CountRejected" >> beam.ParDo(_Progress("rows_rejected"))
    )
    crossed = crossed | "CountCrossed" >> beam.ParDo(_Progress("rows_crossed"))
    written = crossed | "WriteCrossed" >> WriteShards(
        job.crossed_prefix, job.output_format, num_shards=job.num_shards, columns=job.columns, schema=job.schema
    )
    written_rejected = rejected | "WriteRejected" >> WriteShards(job.rejected_prefix, "jsonl", num_shards=1)
    json_path = FileSystems.join(job.report_dir, report.JSON_NAME)
    _ = (
        crossed
        | "Stats" >> beam.CombineGlobally(CrossStatsFn(job.crosses, target_collision_share=job.target_collision_share))
        | "WriteReport" >> beam.Map(report.write_json, json_path)
    )
    return written, written_rejected


@dataclass
class Summary:
    job: Job
    rows_read: int
    rows_crossed: int
    rows_rejected: int
    crossed_files: list[str]
    rejected_files: list[str]
    reasons: dict[str, int]
    report_json: str
    report_png: str | None
    stats: list[dict]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"beam-cross: done in {self.seconds:.1f} s"] + [f"  note: {n}" for n in self.notes]
        lines += [
            f"  rows read      {self.rows_read:>10,}  from {len(self.job.files)} {self.job.input_format} file(s)",
            f"  rows crossed   {self.rows_crossed:>10,}  -> {_where(self.crossed_files)}",
            f"  rows rejected  {self.rows_rejected:>10,}  -> {_where(self.rejected_files)}",
        ]
        if self.reasons:
            lines.append("                 by reason: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items())))
        lines.append(f"  all {self.rows_read:,} rows accounted for (read = crossed + rejected)")
        lines.append(f"  report         {self.report_json}" + (f"\n                 {self.report_png}" if self.report_png else ""))
        lines.append(f"  {'cross':<28} {'num_bins':>9} {'distinct':>9} {'bins used':>9} {'collide':>8} {'suggested':>10}")
        for s in self.stats:
            lines.append(
                f"  {s['cross']:<28} {s['num_bins']:>9,} {s['distinct_crosses']:>9,} {s['bins_used']:>9,} "
                f"{s['collision_share']:>8.1%} {s['suggested_num_bins']:>10,}"
            )
        return "\n".join(lines)


def _where(files) -> str:
    if not files:
        return "(no file)"
    return files[0] if len(files) == 1 else f"{len(files)} shards: {files[0].rsplit('-', 3)[0]}-*"


def _shards(prefix: str) -> list[str]:
    return sorted(m.path for r in FileSystems.match([prefix + "-*-of-*"]) for m in r.metadata_list
                  if not m.path.endswith(".in-progress"))


def _clear_previous(job: Job) -> None:
    # A previous run may have left shards with another -of-N count; remove only our own files.
    stale = _shards(job.crossed_prefix) + _shards(job.rejected_prefix)
    stale += [p for p in (FileSystems.join(job.report_dir, n) for n in (report.JSON_NAME, report.PNG_NAME))
              if FileSystems.exists(p)]
    if stale:
        FileSystems.delete(stale)


def _counter(result, name):
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name))["counters"]
    except Exception:  # some runners (e.g. Dask) report no metrics; the files are counted anyway
        return None
    if not found:
        return None
    return sum((c.committed if c.committed is not None else c.attempted) or 0 for c in found)


def _wait_with_progress(result):
    while not PipelineState.is_terminal(result.state):
        read, crossed, rejected = (_counter(result, n) for n in ("rows_read", "rows_crossed", "rows_rejected"))
        if read is not None:
            _log.info("beam-cross: read %s, crossed %s, rejected %s rows so far", read, crossed, rejected)
        result.wait_until_finish(duration=PROGRESS_SECONDS * 1000)
    return result


_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _runner_args(beam_args: list[str]) -> list[str]:
    """Lets ``--runner DaskRunner`` name Beam's Dask runner, which Beam only knows by module path."""
    args = list(beam_args)
    for i, arg in enumerate(args):
        if arg in ("--runner=DaskRunner", "--runner=dask"):
            args[i] = f"--runner={_DASK_RUNNER}"
        elif arg == "--runner" and i + 1 < len(args) and args[i + 1] in ("DaskRunner", "dask"):
            args[i + 1] = _DASK_RUNNER
    if any(_DASK_RUNNER in a for a in args):
        import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers --dask_client_address)
    return args


def run(argv=None) -> Summary:
    """Runs the job described by ``argv`` (see ``beam-cross --help``) and returns its summary."""
    started = time.monotonic()
    known, beam_args = build_parser().parse_known_args(argv)
    job = plan(known)
    beam_args = _runner_args(beam_args)
    options = PipelineOptions(beam_args)
    if "runner" not in options.get_all_options(drop_default=True):
        options = PipelineOptions(["--runner=FnApiRunner", *beam_args])  # DirectRunner would fetch Prism
    for note in job.notes:
        _log.info("beam-cross: %s", note)
    _log.info("beam-cross: %d file(s), %d cross(es) -> %s", len(job.files), len(job.crosses), job.output)
    _clear_previous(job)
    pipeline = beam.Pipeline(options=options)
    runner = str(options.get_all_options().get("runner") or "")
    if known.single_path or "dask" in runner.lower():
        _log.info("beam-cross: using the branch-free pipeline (DaskRunner mishandles branches)")
        build_linear_pipeline(pipeline, job)
    else:
        build_pipeline(pipeline, job, runner)
    result = _wait_with_progress(pipeline.run())
    if result.state != PipelineState.DONE:
        raise RuntimeError(f"The pipeline ended in state {result.state}")
    read = _counter(result, "rows_read")
    if read is None:  # no metrics from this runner (DaskRunner): count the input itself
        read = sum(1 for path in job.files for _ in io.read_file(path, job.input_format, job.schema))
    return _account(job, read, started)


def _account(job: Job, read: int, started: float) -> Summary:
    """Counts the rows written; raises RowsLost unless ``read`` == crossed + rejected."""
    crossed_files, rejected_files = _shards(job.crossed_prefix), _shards(job.rejected_prefix)
    crossed = sum(io.count_rows(p, job.output_format) for p in crossed_files)
    reasons = collections.Counter()
    for path in rejected_files:
        with FileSystems.open(path) as handle:
            reasons.update(json.loads(line)["reason"] for line in handle if line.strip())
    rejected = sum(reasons.values())
    if read != crossed + rejected:
        raise RowsLost(
            f"{read - crossed - rejected:+,} rows unaccounted for: read {read:,}, wrote {crossed:,} crossed "
            f"({len(crossed_files)} files under {job.crossed_prefix}) and {rejected:,} rejected."
        )
    json_path = FileSystems.join(job.report_dir, report.JSON_NAME)
    stats = report.read_json(json_path)
    png_path = None
    if job.chart:
        try:
            png_path = report.write_chart(stats, FileSystems.join(job.report_dir, report.PNG_NAME))
        except ImportError:  # matplotlib is the optional [report] extra; the JSON report is complete
            job.notes.append("no chart: matplotlib is not installed (pip install 'beam-cross[report]')")
    return Summary(job, read, crossed, rejected, crossed_files, rejected_files, dict(reasons), json_path, png_path,
                   stats, time.monotonic() - started, job.notes)
