"""The flags of ``beam-cross``: its argument parser, ``--cross`` specs and the crosses a run computes.

Flags this parser does not know are handed to Beam's ``PipelineOptions`` (see :mod:`beam_cross.job.run`).
"""

from __future__ import annotations

import argparse
import importlib.resources
import re

import beam_cross
from beam_cross.core import _fingerprint
from beam_cross.core.spec import OUTPUT_MODES, Cross
from beam_cross.core.stats import DEFAULT_TARGET_COLLISION_SHARE
from beam_cross.core.transforms import Bucketize, Hash, Identity
from beam_cross.job.errors import PlanError
from beam_cross.job.formats import FORMATS
from beam_cross.job.formats.base import RANGE_BYTES
from beam_cross.job.plan import load_crosses
from beam_cross.job.schema import TYPES

DEFAULT_OUTPUT = "beam-cross-output"


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
        allow_abbrev=False,  # --out must not silently mean --output_format
        description="Hash-cross categorical features of CSV / JSON Lines / Parquet / TFRecord files with Apache "
        "Beam, bit for bit as Keras HashedCrossing. With no arguments, runs on a bundled sample. "
        "Unknown flags go to Beam (e.g. --runner DataflowRunner --project ... --region ...).",
    )
    parser.add_argument("--version", action="version",
                        version=f"beam-cross {beam_cross.__version__} (kernel: {_fingerprint.KERNEL})")
    _flag(parser, "input", help="a file, a glob or a directory (default: the bundled sample)")
    _flag(parser, "input_format", choices=FORMATS, help="default: from the file extension")
    _flag(parser, "schema", help="column types: 'name:type,...' or a JSON/YAML file; types: " + ", ".join(TYPES))
    _flag(parser, "cross", action="append", default=[], metavar="[NAME=]F1,F2[,...]:NUM_BINS",
          help="a cross, e.g. country,hour:1000, or of a transformed column, e.g. 'bucketize(age:18,25,35),country:1000' "
               "(also hash(column:N), identity(column:N); repeatable)")
    _flag(parser, "output_mode", choices=OUTPUT_MODES, default="int", help="for --cross flags (default: int)")
    _flag(parser, "hash_key", type=int, default=None, help="seed for --cross flags (default: TF's 0xDECAFCAFFE)")
    _flag(parser, "config", help="a JSON/YAML file: a list of Cross specs, or {crosses: [...]}")
    _flag(parser, "output", default=None, help=f"output directory (default: ./{DEFAULT_OUTPUT})")
    _flag(parser, "output_format", choices=FORMATS, help="default: the input's format")
    _flag(parser, "num_shards", type=int, default=0,
          help="exactly this many crossed files (groups the crossed rows by shard; default 0: one file per "
               "bundle, as the runner splits the work)")
    _flag(parser, "max_rejected_share", type=float, default=1.0,
          help="fail (exit 4, nothing committed) when a larger share of rows is rejected (default 1: only when "
               "every row is)")
    _flag(parser, "target_collision_share", type=float, default=DEFAULT_TARGET_COLLISION_SHARE,
          help="collision share the suggested num_bins aims at (default: 0.01)")
    _flag(parser, "no_chart", action="store_true", help="write the report JSON only (no matplotlib needed)")
    _flag(parser, "range_bytes", type=int, default=RANGE_BYTES,
          help="the work of an uncompressed file is cut into byte ranges of this size, read by different workers "
               f"(default {RANGE_BYTES >> 20} MiB)")
    _flag(parser, "read_whole", action="store_true",
          help="read each input file by one worker, never as byte ranges (CSV files whose quoted values hold line "
               "breaks anywhere; files with such a value in their first MiB are read whole anyway)")
    _flag(parser, "verbose", action="store_true", help="on a failure, print the traceback too")
    return parser


# The transforms of the short `--cross` form: name(column:ARGS), ARGS as the transform's one argument.
_SHORT_TRANSFORMS = {
    "bucketize": lambda column, args: Bucketize(column, [float(b) for b in args.split(",")]),
    "hash": lambda column, args: Hash(column, int(args)),
    "identity": lambda column, args: Identity(column, int(args)),
}
_SHORT_FORM = re.compile(r"^\s*(\w+)\(\s*([^:()]+?)\s*:\s*([^()]*?)\s*\)\s*$")


def _split_features(text: str) -> list[str]:
    """``text`` split on the commas outside parentheses (a bucketize's boundaries stay together)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


def _feature(text: str, flag: str):
    """A raw column name, or a transform of one in the short form (``bucketize(age:18,25)``)."""
    if "(" not in text and ")" not in text:
        return text.strip()
    match = _SHORT_FORM.match(text)
    if match is None or match.group(1) not in _SHORT_TRANSFORMS:
        raise ValueError(f"`--cross` feature {text.strip()!r} must be a column name or one of "
                         f"{', '.join(f'{k}(column:...)' for k in _SHORT_TRANSFORMS)}, e.g. bucketize(age:18,25,35). "
                         f"Received: cross={flag!r}")
    kind, column, args = match.groups()
    try:
        return _SHORT_TRANSFORMS[kind](column, args)
    except ValueError as error:  # float('x') / int('x'): say which feature
        raise ValueError(f"`--cross` feature {text.strip()!r}: {error}. Received: cross={flag!r}") from None


def parse_cross_flag(text: str, output_mode: str = "int", hash_key=None) -> Cross:
    """``"country,hour:1000"``, ``"name=country,hour:1000"``, or with transforms of the columns:
    ``"bucketize(age:18,25,35),country:1000"`` (also ``hash(column:NUM_BINS)``, ``identity(column:NUM_BUCKETS)``;
    a ``Lookup``'s vocabulary belongs in a ``--config`` file) as a :class:`Cross`.

    >>> parse_cross_flag("bucketize(age:18,25),country:1000").to_dict()["features"]
    [{'transform': 'bucketize', 'name': 'age', 'boundaries': [18.0, 25.0]}, 'country']
    """
    head, _, rest = text.partition("=") if "=" in text.split("(", 1)[0] else (None, "", text)
    features, _, bins = rest.rpartition(":")
    if not features or not bins.strip().isdigit() or features.count("(") != features.count(")"):
        raise ValueError(f"`--cross` must look like `feature,feature:num_bins` (a feature may be "
                         f"`bucketize(column:B1,B2,...)`). Received: cross={text!r}")
    return Cross([_feature(f, text) for f in _split_features(features)], int(bins), name=head or None,
                 output_mode=output_mode, hash_key=hash_key)


def own_flags() -> list[str]:
    return [s for action in build_parser()._actions for s in action.option_strings]


def crosses_of(args) -> tuple[list[Cross], list[str]]:
    """The crosses of ``--cross`` and ``--config`` (the bundled sample's without ``--input``), and notes."""
    notes = []
    if args.input is None:
        args.input = sample_path()
        if not args.cross and not args.config:
            args.config = sample_path("sample_crosses.yaml")
        notes.append(f"no --input: running on the bundled sample {args.input}")
    if args.output is None:
        args.output = DEFAULT_OUTPUT
    try:
        crosses = [parse_cross_flag(c, args.output_mode, args.hash_key) for c in args.cross]
    except (TypeError, ValueError) as error:
        raise PlanError(str(error)) from None
    if args.config:
        crosses += load_crosses(args.config)
    if not crosses:
        raise PlanError("No cross to compute: pass `--cross feature,feature:num_bins` or `--config crosses.yaml`.")
    return crosses, notes

