"""The ``beam-cross`` command (also ``python -m beam_cross``): cross the features of files with Beam.

    beam-cross                                   # the bundled sample; writes ./beam-cross-output
    beam-cross --input 'logs/*.csv' --cross country,hour:1000 --cross device,site:64 --output out
    beam-cross --input data/ --config crosses.yaml --output_format parquet --runner DataflowRunner ...

Flags this command does not know are handed to Beam's ``PipelineOptions``, so every runner flag
works. The job reads the input, adds one column per cross, writes the crossed rows (sharded, in the
input's format unless ``--output_format`` says otherwise), writes every row it could not cross or
read to ``rejected/`` as JSON Lines with its reason, and writes a collision report (JSON + PNG).
After the run it counts what was written: rows read must equal rows crossed + rows rejected, or the
command exits with status 3.
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import sys
from dataclasses import dataclass, field

import yaml

from beam_cross import io
from beam_cross.spec import OUTPUT_MODES, Cross
from beam_cross.stats import DEFAULT_TARGET_COLLISION_SHARE

DEFAULT_OUTPUT = "beam-cross-output"
EXIT_INPUT_ERROR = 2
EXIT_ROWS_LOST = 3


def sample_path(name: str = "sample_clicks.jsonl") -> str:
    """Path of a file bundled in ``beam_cross/data``."""
    return str(importlib.resources.files("beam_cross") / "data" / name)


def _flag(parser, name, **kwargs):
    # Beam spells flags with underscores (--temp_location); accept dashes too (--output-mode).
    names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*names, dest=name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beam-cross",
        description="Hash-cross categorical features of CSV / JSON Lines / Parquet / TFRecord files with Apache "
        "Beam, bit for bit as Keras HashedCrossing. With no arguments, runs on a bundled sample. "
        "Unknown flags go to Beam (e.g. --runner DataflowRunner --project ... --region ...).",
    )
    _flag(parser, "input", help="a file, a glob or a directory (default: the bundled sample)")
    _flag(parser, "input_format", choices=io.FORMATS, help="default: from the file extension")
    _flag(parser, "schema", help="column types: 'name:type,...' or a JSON/YAML file; types: " + ", ".join(io.TYPES))
    _flag(parser, "cross", action="append", default=[], metavar="[NAME=]F1,F2[,...]:NUM_BINS",
          help="a cross, e.g. country,hour:1000 (repeatable)")
    _flag(parser, "output_mode", choices=OUTPUT_MODES, default="int", help="for --cross flags (default: int)")
    _flag(parser, "hash_key", type=int, default=None, help="seed for --cross flags (default: TF's 0xDECAFCAFFE)")
    _flag(parser, "config", help="a JSON/YAML file: a list of Cross specs, or {crosses: [...]}")
    _flag(parser, "output", default=None, help=f"output directory (default: ./{DEFAULT_OUTPUT})")
    _flag(parser, "output_format", choices=io.FORMATS, help="default: the input's format")
    _flag(parser, "num_shards", type=int, default=0, help="crossed-output shards (default: one per input file, at most 64)")
    _flag(parser, "target_collision_share", type=float, default=DEFAULT_TARGET_COLLISION_SHARE,
          help="collision share the suggested num_bins aims at (default: 0.01)")
    _flag(parser, "single_path", action="store_true",
          help="run the branch-free variant of the pipeline (automatic on DaskRunner)")
    _flag(parser, "no_chart", action="store_true", help="write the report JSON only (no matplotlib needed)")
    return parser


def parse_cross_flag(text: str, output_mode: str = "int", hash_key=None) -> Cross:
    """``"country,hour:1000"`` or ``"name=country,hour:1000"`` as a :class:`Cross`."""
    name, _, rest = text.rpartition("=") if "=" in text else (None, "", text)
    features, _, bins = rest.rpartition(":")
    if not features or not bins.strip().isdigit():
        raise ValueError(f"`--cross` must look like `feature,feature:num_bins`. Received: cross={text!r}")
    return Cross([f.strip() for f in features.split(",")], int(bins), name=name or None,
                 output_mode=output_mode, hash_key=hash_key)


def load_crosses(path: str) -> list[Cross]:
    with open(path) as handle:
        config = yaml.safe_load(handle)  # YAML is a superset of JSON: one loader for both
    if isinstance(config, dict):
        config = config.get("crosses")
    if not isinstance(config, list) or not config:
        raise ValueError(f"`--config` must hold a non-empty list of crosses (or `crosses: [...]`). Received: {path}")
    return [Cross.from_dict(item) for item in config]


@dataclass
class Job:
    """Everything decided before the pipeline runs."""

    files: list[str]
    input_format: str
    schema: dict[str, str]
    columns: list[str]
    crosses: list[Cross]
    output: str
    output_format: str
    num_shards: int
    target_collision_share: float
    chart: bool
    notes: list[str] = field(default_factory=list)
    # Kinds declared with --schema for crossed features ("string" / "int"): a value of the other kind
    # is rejected (reason mixed_kinds) instead of being hashed as what it is.
    feature_types: dict[str, str] = field(default_factory=dict)

    @property
    def crossed_prefix(self) -> str:
        return os.path.join(self.output, "crossed", "part")

    @property
    def rejected_prefix(self) -> str:
        return os.path.join(self.output, "rejected", "part")

    @property
    def report_dir(self) -> str:
        return os.path.join(self.output, "report")


def plan(args) -> Job:
    """Checks the input and options before anything runs (clear errors, no half-written output)."""
    notes = []
    if args.input is None:
        args.input = sample_path()
        if not args.cross and not args.config:
            args.config = sample_path("sample_crosses.yaml")
        notes.append(f"no --input: running on the bundled sample {args.input}")
    files = io.expand_input(args.input)
    input_format = args.input_format or io.format_of(files[0])
    crosses = [parse_cross_flag(c, args.output_mode, args.hash_key) for c in args.cross]
    if args.config:
        crosses += load_crosses(args.config)
    if not crosses:
        raise ValueError("No cross to compute: pass `--cross feature,feature:num_bins` or `--config crosses.yaml`.")
    names = [c.name for c in crosses]
    if len(set(names)) != len(names):
        raise ValueError(f"Cross names must be unique. Received: {names}")
    non_empty = [f for f in files if _size(f) > 0]
    if not non_empty:
        raise io.InputError(f"Every input file is empty: {files}")
    notes += [f"empty input file (no rows): {f}" for f in files if f not in non_empty]
    inferred, columns = io.sample_schema(non_empty[0], input_format)
    declared = io.parse_schema(args.schema)
    schema = {**inferred, **declared}
    crossed_features = {f for c in crosses for f in c.features}
    feature_types = {f: t.removesuffix("_list") for f, t in declared.items()
                     if f in crossed_features and t.removesuffix("_list") in ("string", "int")}
    if input_format == "csv" and args.schema:
        # Re-read the header with the declared types, so list columns are known as lists.
        columns = columns or list(schema)
    if input_format in ("csv", "parquet"):
        for cross in crosses:
            missing = [f for f in cross.features if f not in columns]
            if missing:
                raise io.InputError(
                    f"Input file {non_empty[0]} has no column {', '.join(f'`{m}`' for m in missing)}, needed by "
                    f"cross `{cross.name}`. Columns: {columns}"
                )
    for cross in crosses:
        list_valued = any(schema.get(f, "").endswith("_list") for f in cross.features)
        schema[cross.name] = "int_list" if cross.output_mode == "one_hot" or list_valued else "int"
    output_columns = [c for c in columns if c not in names] + names
    if args.num_shards < 0:
        raise ValueError(f"`--num_shards` must be >= 0 (0: one per input file). Received: num_shards={args.num_shards}")
    return Job(
        files=files,
        input_format=input_format,
        schema=schema,
        columns=output_columns,
        crosses=crosses,
        output=_absolute(args.output or DEFAULT_OUTPUT),
        output_format=args.output_format or input_format,
        num_shards=args.num_shards or min(len(files), 64),
        target_collision_share=args.target_collision_share,
        chart=not args.no_chart,
        notes=notes,
        feature_types=feature_types,
    )


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _size(path: str) -> int:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("apache_beam", "distributed", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from beam_cross.job import RowsLost, run

    try:
        summary = run(argv)
    except (io.InputError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"beam-cross: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except RowsLost as error:
        print(f"beam-cross: error: {error}", file=sys.stderr)
        return EXIT_ROWS_LOST
    print(summary.text())
    return 0
