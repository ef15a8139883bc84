"""Everything ``beam-cross`` decides before its pipeline runs, and every refusal (exit status 2).

``plan(args, beam_args)`` turns the parsed command line into a :class:`Job`: the input files, their
format and Arrow schema (from metadata and a small sample, never a pass over the data), the crosses,
the output. It refuses, with a message and before anything is written:

- a flag that neither the command nor Beam's ``PipelineOptions`` knows (with the closest known flag);
- a config file that does not parse, or uses YAML tags (``!!python/...``);
- through the core's one check of a spec against its input (``check_crosses_against``): a raw cross
  of a float column (Parquet schema, declared or inferred CSV type), with how to bucketize it; a
  cross named like an input column; a cross over a column the input does not have; a transform of
  a column of a kind it does not take;
- an ``--output`` inside the input (or the input inside it), one that cannot be written, or one
  holding files under ``crossed/``, ``rejected/`` or ``report/`` that no earlier run of the
  command lists in its manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import uuid
from dataclasses import dataclass, field, replace

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_cross.core.arrow_values import column_kinds
from beam_cross.core.spec import (
    MISSING_COLUMN,
    NAMED_LIKE_A_COLUMN,
    RAW_FLOAT,
    Cross,
    CrossSpecError,
    check_crosses,
    check_crosses_against,
)
from beam_cross.core.spec_file import read_crosses
from beam_cross.job import commit
from beam_cross.job.errors import PlanError
from beam_cross.job.formats import get as get_format
from beam_cross.job.formats.base import RANGE_BYTES
from beam_cross.job.input_plan import InputFile, InputPlan, plan_input
from beam_cross.job.remote import check_remote
from beam_cross.job.schema import parse_schema

__all__ = ["Job", "PlanError", "absolute", "check_beam_flags", "load_crosses", "plan", "plan_source"]


@dataclass
class Job:
    """Everything decided before the pipeline runs."""

    files: list[InputFile]
    input_format: str
    schema: pa.Schema  # the input's, as the reader produces it
    output_schema: pa.Schema | None  # the crossed rows' (input columns + one per cross); None until learned
    crosses: list[Cross]
    output: str
    output_format: str
    num_shards: int  # 0: as many files as the runner makes bundles
    target_collision_share: float
    max_rejected_share: float
    chart: bool
    progress_total: int
    progress_unit: str
    feature_types: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    range_bytes: int = RANGE_BYTES
    learned_spec: bool = False  # the crosses were learned by this run (committed under learned/)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def learns(self) -> bool:
        """Whether a transform of the crosses is still to learn (a learning stage runs first)."""
        return not all(c.learned for c in self.crosses)

    def with_learned(self, crosses) -> Job:
        """The job with its learned crosses, ready for the crossing stage."""
        return replace(self, crosses=list(crosses), learned_spec=True,
                       output_schema=output_schema(self.schema, crosses, self.feature_types))

    @property
    def temp_dir(self) -> str:
        return FileSystems.join(self.output, f"{commit.TEMP_PREFIX}{self.run_id}")


# -- flags ----------------------------------------------------------------------------------------
def _option_classes(cls=PipelineOptions):
    for sub in cls.__subclasses__():
        yield sub
        yield from _option_classes(sub)


def check_beam_flags(beam_args: list[str], own_flags: list[str]) -> None:
    """Raises PlanError naming every flag that neither the command nor Beam's PipelineOptions knows."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    seen = set()
    for options in _option_classes():
        if options in seen or "_add_argparse_args" not in vars(options):
            continue
        seen.add(options)
        with contextlib.suppress(argparse.ArgumentError):  # a flag two option classes both declare
            options._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(beam_args)
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("-")]
    strays = [a for a in unknown if not a.startswith("-")]
    if flags:
        known = own_flags + [s for a in parser._actions for s in a.option_strings]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        raise PlanError(f"Unknown flag(s): {', '.join(hints)}. Neither beam-cross nor Beam's PipelineOptions knows "
                        "them; see `beam-cross --help`.")
    if strays:
        raise PlanError(f"Unexpected argument(s) {strays}: every value belongs to a flag (e.g. `--input {strays[0]}`).")


# -- crosses --------------------------------------------------------------------------------------
def load_crosses(path: str) -> list[Cross]:
    """The crosses of a ``--config`` spec file (:func:`beam_cross.core.spec_file.read_crosses`)."""
    try:
        return list(read_crosses(path))
    except (TypeError, ValueError) as error:
        raise PlanError(f"`--config` {error}") from None


def _check_against_input(crosses, schema: pa.Schema, fmt: str, files) -> None:
    """The core's one check of the crosses against the input's columns
    (:func:`~beam_cross.core.spec.check_crosses_against`); its refusal as a PlanError, with the command's hint."""
    try:
        check_crosses_against(crosses, column_kinds(schema))
    except CrossSpecError as error:
        raise PlanError(f"{error}{_hint(error, crosses, schema, fmt, files)}") from None


def _hint(error: CrossSpecError, crosses, schema: pa.Schema, fmt: str, files) -> str:
    feature = error.features[0]
    if error.problem == NAMED_LIKE_A_COLUMN:
        cross = next(c for c in crosses if c.name == error.cross)
        return (f" (`--cross other_name={','.join(cross.features)}:{cross.num_bins}` or `name:` in the config).")
    if error.problem == MISSING_COLUMN:
        # JSON keys and tf.Example features outside the schema are rejected row by row, so a run
        # would reject every row: say so now, and how to declare a key that first appears later.
        late = "" if not get_format(fmt).typed_values else (
            f"; the columns are inferred from the first lines of each file: if `{feature}` appears later, declare "
            f"it (`--schema {feature}:string` or `:int`)")
        return f" (input file {files[0]}{late})."
    if error.problem == RAW_FLOAT:
        declare = (f"; or, if its values are whole numbers, declare it `--schema {feature}:int`"
                   if get_format(fmt).declared_types else "")
        return (f" Bucketize it in a `--config` file (`features: [{{transform: bucketize, name: {feature}, "
                f"boundaries: [...]}}, ...]`) or with `--cross 'bucketize({feature}:B1,B2,...),...:NUM_BINS'`{declare}.")
    return ""


# -- output ---------------------------------------------------------------------------------------
def absolute(path: str) -> str:
    return path.rstrip("/") if "://" in path else os.path.abspath(path)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_output(output: str, pattern: str, files: list[str]) -> None:
    """Refuses an output that overlaps the input or cannot be written."""
    source = absolute(pattern)
    for path in files:
        if _inside(absolute(path), output):
            raise PlanError(f"`--output` {output} contains the input file {path}: crossing a previous output into "
                            "the same place would overwrite what is being read. Choose another --output.")
    folder = source if (os.path.isdir(pattern) or pattern.endswith("/")) else os.path.dirname(source)
    if not any(c in pattern for c in "*?[") and _inside(output, folder) and os.path.isdir(pattern):
        raise PlanError(f"`--output` {output} is inside the input directory {pattern}; choose another --output.")
    if "://" not in output and os.path.exists(output) and not os.path.isdir(output):
        raise PlanError(f"`--output` {output} is a file; it must be a directory.")
    check_remote(output, "--output")  # in seconds, not after the filesystem's retries
    probe = FileSystems.join(output, f"{commit.TEMP_PREFIX}write-check-{uuid.uuid4().hex[:8]}")
    try:
        if "://" not in output:
            os.makedirs(output, exist_ok=True)
        with FileSystems.create(probe) as handle:
            handle.write(b"")
        FileSystems.delete([probe])
    except Exception as error:  # PermissionError, a read-only filesystem, a missing bucket...
        raise PlanError(f"`--output` {output} cannot be written: {error}") from None
    foreign = commit.foreign_files(output)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PlanError(f"`--output` {output} holds files that no earlier beam-cross run lists in its manifest "
                        f"({shown}); beam-cross never overwrites or deletes them. Move them or choose another --output.")


def output_schema(schema: pa.Schema, crosses, feature_types) -> pa.Schema:
    """The schema of the crossed rows, found by crossing an empty batch of ``schema``."""
    from beam_cross.core.elements import ElementCrosser

    empty = pa.RecordBatch.from_pylist([], schema=schema)
    crossed, _ = ElementCrosser(crosses, keep_inputs=True, feature_types=feature_types).cross_record_batch(empty)
    return crossed.schema


def plan_source(args, crosses: list[Cross], notes: list[str]) -> tuple[list[Cross], InputPlan, dict[str, str]]:
    """The input half of :func:`plan`: the checked crosses, the input's plan (files, format and the
    schema the reader produces) and the declared kinds of the crossed features; raises PlanError."""
    try:
        crosses = list(check_crosses(crosses))
    except ValueError as error:
        raise PlanError(str(error)) from None
    declared = parse_schema(args.schema)
    source = plan_input(args.input, input_format=args.input_format, declared=declared)
    if getattr(args, "read_whole", False):
        source = replace(source, files=tuple(replace(f, whole=True) for f in source.files))
    crossed_features = {f for c in crosses for f in c.features}
    if get_format(source.format).typed_values:
        # JSON and tf.Example values carry their own types: a crossed column where some values are
        # floats is crossed as int, and its float values are rejected row by row.
        # A column bucketized by every cross that uses it keeps its floats.
        raw = {f for c in crosses for f, t in zip(c.features, c.transforms) if t is None}
        loose = {f: "int_list" if pa.types.is_list(source.schema.field(f).type) else "int"
                 for f in source.float_columns if f in raw and f not in declared}
        if loose:
            declared.update(loose)
            notes.append("crossed as int, their float values rejected per row (declare `--schema` to choose): "
                         + ", ".join(sorted(loose)))
            source = source.retyped(declared)
    _check_against_input(crosses, source.schema, source.format, list(source.paths))
    feature_types = {f: t.removesuffix("_list") for f, t in declared.items()
                     if f in crossed_features and t.removesuffix("_list") in ("string", "int")}
    return crosses, source, feature_types


def plan(args, crosses: list[Cross], notes: list[str]) -> Job:
    """Checks the input, crosses and output before anything runs; returns the Job or raises PlanError."""
    if args.num_shards < 0:
        raise PlanError(f"`--num_shards` must be >= 0 (0: one file per bundle). Received: num_shards={args.num_shards}")
    if args.range_bytes < 1:
        raise PlanError(f"`--range_bytes` must be >= 1. Received: range_bytes={args.range_bytes}")
    if not 0 <= args.max_rejected_share <= 1:
        raise PlanError(f"`--max_rejected_share` must be between 0 and 1. Received: max_rejected_share={args.max_rejected_share}")
    crosses, source, feature_types = plan_source(args, crosses, notes)
    files = list(source.files)
    output = absolute(args.output)
    check_output(output, args.input, [f.path for f in files])
    return Job(
        files=files,
        input_format=source.format,
        schema=source.schema,
        output_schema=output_schema(source.schema, crosses, feature_types) if all(c.learned for c in crosses) else None,
        crosses=crosses,
        output=output,
        output_format=args.output_format or source.format,
        num_shards=args.num_shards,
        target_collision_share=args.target_collision_share,
        max_rejected_share=args.max_rejected_share,
        chart=not args.no_chart,
        progress_total=source.total,
        progress_unit=source.total_unit,
        feature_types=feature_types,
        notes=notes,
        range_bytes=args.range_bytes,
    )
