"""The cross-features job behind ``beam-cross``: plan, run the pipeline, account for every row, commit.

``run(argv)`` parses the command line (flags it does not know go to Beam's ``PipelineOptions``,
and a flag neither knows is refused), plans the job (:mod:`beam_cross.job.plan`), runs the pipeline
(:mod:`beam_cross.job.pipeline`) on any runner, then reads the run's one small result file: rows read,
and the rows each writer wrote. Rows read must equal rows crossed + rows rejected (and agree with
Beam's counters where the runner reports them), or :class:`RowsLost` is raised and nothing is
committed. Too many rejected rows (``--max_rejected_share``; every row rejected; no row read)
raise :class:`TooManyRejected`, also without committing. Otherwise the output is committed with its
manifest (:mod:`beam_cross.job.commit`). The launcher never reads the inputs or the outputs to count.

With ``--runner DataflowRunner --template_location PATH`` the runner only writes the job's description
(the template, its ``pipeline.pb`` and the staged sdist) and nothing runs: ``run`` returns a
:class:`TemplateWritten` instead of a summary, and nothing is committed (docs/dataflow.md).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.runners.runner import PipelineState

import beam_cross
from beam_cross.beam.counters import ROWS_READ, counted
from beam_cross.job import commit, formats, report
from beam_cross.job.errors import JobError, JobFailed, PlanError, RowsLost, TooManyRejected
from beam_cross.job.flags import build_parser, crosses_of, own_flags
from beam_cross.job.learning import build_learning_pipeline, learned_spec_moves, read_learned
from beam_cross.job.pipeline import PROGRESS_SECONDS, RESULTS_NAME, build_pipeline
from beam_cross.job.plan import Job, check_beam_flags, plan
from beam_cross.job.readers import check_coverage
from beam_cross.job.summary import Summary

__all__ = ["RowsLost", "TooManyRejected", "check_accounting", "finish", "run"]
_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_log = logging.getLogger("beam_cross")


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


def _wait(result, runner: str):
    """Waits for the run; logs the runner's counters now and then where it reports them while running."""
    if "dask" in runner.lower():
        result.wait_until_finish()  # DaskRunner's wait_until_finish(duration=...) raises on timeout
        return result
    while not PipelineState.is_terminal(result.state):
        read = counted(result, ROWS_READ)
        if read is not None:
            _log.info("beam-cross: read %s rows so far (all workers)", f"{read:,}")
        result.wait_until_finish(duration=PROGRESS_SECONDS * 1000)
    return result


def _options(beam_args):
    options = PipelineOptions(beam_args)
    if "runner" not in options.get_all_options(drop_default=True):
        options = PipelineOptions(["--runner=FnApiRunner", *beam_args])  # DirectRunner would fetch Prism
    runner = str(options.get_all_options().get("runner") or "")
    workers = options.view_as(DirectOptions).direct_num_workers
    workers = os.cpu_count() if workers == 0 else workers  # 0: one per CPU
    in_process = runner.split(".")[-1] in ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner") and workers <= 1
    return options, runner, in_process


def run(argv=None) -> Summary | TemplateWritten:
    """Runs the job described by ``argv`` (see ``beam-cross --help``); returns its summary."""
    started = time.monotonic()
    known, beam_args = build_parser().parse_known_args(argv)
    beam_args = _runner_args(beam_args)
    check_beam_flags(beam_args, own_flags())
    crosses, notes = crosses_of(known)
    options, runner, in_process = _options(beam_args)
    template = _template_location(options, runner)
    if runner.split(".")[-1] == "DataflowRunner":
        local = [p for p in (known.input, known.output) if "://" not in p]
        if local and (template is None or "://" in template):
            raise PlanError(f"DataflowRunner workers cannot see local paths such as {local[0]}; use gs:// paths for "
                            "--input and --output.")
        if local:  # a local template: the translation, checked offline (docs/dataflow.md)
            notes.append(f"the template reads and writes local paths such as {local[0]}, which Dataflow workers "
                         "cannot see: it is for checking the translation, not for launching")
    job = plan(known, crosses, notes)
    if template is not None and job.learns:
        raise PlanError("--template_location cannot hold a run that learns its spec: learning is a pipeline of its "
                        "own, run before the crossing one. Learn it with a run of the command (it commits the learned "
                        "spec under learned/), then write the template with that spec as --config.")
    for note in job.notes:
        _log.info("beam-cross: %s", note)
    _log.info("beam-cross: %d %s file(s), %d cross(es) -> %s", len(job.files), job.input_format, len(job.crosses),
              job.output)
    with commit.OutputLock(job.output, job.run_id):
        try:
            if job.learns:
                job = _learn(job, options, runner)
            pipeline = beam.Pipeline(options=options)
            build_pipeline(pipeline, job, whole_job_progress=in_process)
            if template is not None:  # the runner writes the job's description: nothing runs
                _make_local_dirs(options, template)
                pipeline.run()
                return TemplateWritten(job, template, time.monotonic() - started)
            result = _wait(pipeline.run(), runner)
            if result.state != PipelineState.DONE:
                raise JobFailed(f"The pipeline ended in state {result.state}; nothing was committed and the previous "
                                "output is unchanged.")
        except JobError:
            commit.remove_temp(job.temp_dir)
            raise
        except Exception as error:  # a worker's error: a full disk, no permission, a bug
            commit.remove_temp(job.temp_dir)
            raise JobFailed(f"The pipeline failed: {failure_text(error)}. Nothing was committed; the previous output "
                            "is unchanged.") from error
        results = _read_results(job)
        counters = {n: counted(result, f"rows_{n}") for n in ("read", "crossed", "rejected")}
        try:
            return finish(job, results, counters, argv, started)
        except OSError as error:
            raise JobFailed(f"Committing the output failed: {failure_text(error)}. The previous output and the run's "
                            f"files are as the commit journal {commit.JOURNAL} in {job.output} lists them.") from error


def _template_location(options, runner: str) -> str | None:
    """Dataflow's ``--template_location``: the runner then writes the job's description there and runs nothing."""
    if runner.split(".")[-1] != "DataflowRunner":
        return None
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return options.view_as(GoogleCloudOptions).template_location or None


def _make_local_dirs(options, template: str) -> None:
    """The local folders of a template and its staging: Beam writes into them without creating them (and
    retries a missing one for minutes)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    cloud = options.view_as(GoogleCloudOptions)
    for folder in (os.path.dirname(template), cloud.staging_location, cloud.temp_location):
        if folder and "://" not in folder:
            os.makedirs(folder, exist_ok=True)


@dataclass
class TemplateWritten:
    """What the command says after writing a Dataflow template (``--template_location``) instead of a run."""

    job: Job
    template: str
    seconds: float

    def text(self, shown=()) -> str:
        """What to print; as :meth:`beam_cross.job.summary.Summary.text`, a note already printed as
        ``beam-cross: <note>`` (in ``shown``) is not printed again."""
        job, shown = self.job, set(shown)
        lines = [f"beam-cross: wrote the Dataflow template {self.template} in {self.seconds:.1f} s; nothing ran and "
                 "nothing was committed"] + [f"  note: {n}" for n in job.notes if f"beam-cross: {n}" not in shown]
        lines.append(f"  it holds this plan: {len(job.files)} {job.input_format} file(s) as listed now (its workers "
                     f"read no other, and record a file changed since as a read error), {len(job.crosses)} cross(es)")
        lines.append(f"  a job launched from it writes into {job.temp_dir} and is not committed: the command "
                     "accounts for the rows and commits only a run it launches and waits for")
        return "\n".join(lines)


def _learn(job: Job, options, runner: str) -> Job:
    """Runs the learning stage (:mod:`beam_cross.job.learning`); returns the job with its learned crosses."""
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build_learning_pipeline(pipeline, job)
    result = _wait(pipeline.run(), runner)
    if result.state != PipelineState.DONE:
        raise JobFailed(f"The learning stage ended in state {result.state}; nothing was committed and the previous "
                        "output is unchanged.")
    learned = job.with_learned(read_learned(job))
    _log.info("beam-cross: learned %s in %.1f s", ", ".join(
        t.describe() for c in job.crosses for t in c.transforms if t is not None and not t.learned), time.monotonic() - started)
    learned.notes.append(f"learned the spec in {time.monotonic() - started:.1f} s (committed under learned/)")
    return learned


def failure_text(error: BaseException) -> str:
    """The last ``SomethingError: message`` line of an error (a runner wraps a worker's error in its own)."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b.*: ", line)]
    last = found[-1] if found else (lines[-1] if lines else type(error).__name__)
    last = re.sub(r" \[while running '[^']*'\]$", "", last)
    return last if found or not isinstance(error, OSError) else f"{type(error).__name__}: {last}"


def _read_results(job: Job) -> dict:
    path = FileSystems.join(job.temp_dir, RESULTS_NAME)
    if not FileSystems.exists(path):  # no chunk at all reached the end of the pipeline
        return {"rows_read": 0, "files": [], "reasons": {}, "stats": []}
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def check_accounting(job: Job, results: dict, counters: dict) -> tuple[int, int, int]:
    """(read, crossed, rejected) from the writers' counts; raises RowsLost on any difference."""
    read = results["rows_read"]
    crossed = sum(f["rows"] for f in results["files"] if f["kind"] == "crossed")
    rejected = sum(f["rows"] for f in results["files"] if f["kind"] == "rejected")
    problems = []
    if read != crossed + rejected:
        problems.append(f"{read - crossed - rejected:+,} rows unaccounted for: read {read:,}, the writers wrote "
                        f"{crossed:,} crossed and {rejected:,} rejected")
    for name, mine in (("read", read), ("crossed", crossed), ("rejected", rejected)):
        theirs = counters.get(name)
        if theirs is not None and theirs != mine:
            problems.append(f"Beam's counter of rows {name} says {theirs:,}, the written files {mine:,}")
    if problems:
        raise RowsLost("; ".join(problems) + f". Nothing was committed; the run's files are in {job.temp_dir}.")
    return read, crossed, rejected


def check_rejected_share(job: Job, read: int, crossed: int, rejected: int) -> None:
    where = f"the run's files, rejected rows included, are in {job.temp_dir}"
    if read == 0:
        raise TooManyRejected(f"No row was read from {len(job.files)} file(s); nothing was committed.")
    if crossed == 0:
        raise TooManyRejected(f"Every one of the {read:,} rows was rejected; nothing was committed ({where}).")
    if rejected / read > job.max_rejected_share:
        raise TooManyRejected(
            f"{rejected:,} of {read:,} rows ({rejected / read:.2%}) were rejected, more than --max_rejected_share "
            f"{job.max_rejected_share:.2%}; nothing was committed ({where})."
        )


def _final_names(job: Job, results: dict) -> list[tuple[str, str, int]]:
    """(temporary path, path relative to the output, rows) of every file to commit."""
    moves = []
    crossed = sorted((f for f in results["files"] if f["kind"] == "crossed"), key=lambda f: (f["shard"], f["first_source"]))
    extension = formats.get(job.output_format).suffix
    if job.num_shards:
        by_shard = {f["shard"]: f for f in crossed}
        for shard in range(job.num_shards):  # every -of-N shard exists, even with no row
            if shard not in by_shard:
                path = FileSystems.join(job.temp_dir, "crossed", f"empty-{shard:05d}{extension}")
                formats.open_writer(path, job.output_format, schema=job.output_schema).close()
                by_shard[shard] = {"path": path, "rows": 0}
        crossed = [by_shard[s] for s in range(job.num_shards)]
    for index, entry in enumerate(crossed):
        moves.append((entry["path"], f"crossed/part-{index:05d}-of-{len(crossed):05d}{extension}", entry["rows"]))
    rejected = sorted((f for f in results["files"] if f["kind"] == "rejected"), key=lambda f: f["first_source"])
    for index, entry in enumerate(rejected):
        moves.append((entry["path"], f"rejected/part-{index:05d}-of-{len(rejected):05d}.jsonl", entry["rows"]))
    return moves


def _manifest(job: Job, argv, moves, results, read, crossed, rejected, inputs) -> dict:
    files = {"crossed": [], "rejected": [], "report": [], "learned": []}
    for _, relative, rows in moves:
        kind = relative.split("/", 1)[0]
        files[kind].append({"path": relative} if rows is None else {"path": relative, "rows": rows})
    return {
        "manifest_version": 2,
        "complete": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"beam_cross": beam_cross.__version__, "apache_beam": beam.__version__, "pyarrow": pa.__version__},
        "command": list(argv if argv is not None else sys.argv[1:]),
        "crosses": [c.to_dict() for c in job.crosses],
        "input": {"format": job.input_format, "files": inputs,
                  "schema": [{"name": f.name, "type": str(f.type)} for f in job.schema]},
        "output": {"format": job.output_format,
                   "schema": [{"name": f.name, "type": str(f.type)} for f in job.output_schema]},
        "rows": {"read": read, "crossed": crossed, "rejected": rejected},
        "rejected_by_reason": dict(sorted(results["reasons"].items())),
        "files": files,
    }


def finish(job: Job, results: dict, counters: dict, argv, started: float) -> Summary:
    """Checks the input's coverage and the accounting, writes the report, commits; returns the summary."""
    try:
        inputs = check_coverage(job.files, results.get("coverage", []))
    except RowsLost:  # rows of an input that changed, or was read in part: nothing of the run is kept
        commit.remove_temp(job.temp_dir)
        raise
    read, crossed, rejected = check_accounting(job, results, counters)
    check_rejected_share(job, read, crossed, rejected)
    moves = _final_names(job, results)
    json_temp = FileSystems.join(job.temp_dir, "report", report.JSON_NAME)
    report.write_json(results["stats"], json_temp)
    reports = [(json_temp, f"report/{report.JSON_NAME}", None)]
    if job.chart:
        try:
            png_temp = report.write_chart(results["stats"], FileSystems.join(job.temp_dir, "report", report.PNG_NAME))
            reports.append((png_temp, f"report/{report.PNG_NAME}", None))
        except ImportError:  # matplotlib is the optional [report] extra; the JSON report is complete
            job.notes.append("no chart: matplotlib is not installed (pip install 'beam-cross[report]')")
    moves += reports
    if job.learned_spec:
        moves += learned_spec_moves(job)
    manifest = _manifest(job, argv, moves, results, read, crossed, rejected, inputs)
    commit.commit(job.output, job.temp_dir, [(source, relative) for source, relative, _ in moves], manifest)
    at = lambda relative: FileSystems.join(job.output, relative)  # noqa: E731
    return Summary(
        job=job, rows_read=read, rows_crossed=crossed, rows_rejected=rejected,
        crossed_files=[at(r) for _, r, _ in moves if r.startswith("crossed/")],
        rejected_files=[at(r) for _, r, _ in moves if r.startswith("rejected/")],
        reasons=results["reasons"], report_json=at(f"report/{report.JSON_NAME}"),
        report_png=at(f"report/{report.PNG_NAME}") if len(reports) > 1 else None,
        stats=results["stats"], seconds=time.monotonic() - started, notes=job.notes,
        manifest=at(commit.MANIFEST),
    )

