"""The launcher side of reading the ``beam-cross`` inputs: the files, their identity, format and schema.

``plan_input(pattern, input_format=None, declared=None)`` reads metadata only (the file listing,
Parquet footers, CSV headers and a bounded sample at the start of each file, read in parallel
threads) and returns an :class:`InputPlan`. Each planned file is an :class:`InputFile` with its
identity (size and modification time, as the filesystem gives them), which the workers check and
the run's coverage check compares. Bad input arguments raise :class:`~beam_cross.job.errors.InputError`.

Files are listed once, here. A literal file or directory is taken by its name (a name holding
``[``, ``*``, ``?`` or spaces is a name, not a pattern); anything else is a glob, matched as a shell
would (a relative glob with no directory part matches in the working directory). In a directory
or a glob match, names starting with ``.`` or ``_`` are skipped (``_SUCCESS``, ``.crc`` files).
"""

from __future__ import annotations

import functools
import glob
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from beam_cross.job import formats
from beam_cross.job.errors import InputError
from beam_cross.job.formats.base import SAMPLE_BYTES, Facts, is_float
from beam_cross.job.remote import check_remote
from beam_cross.job.schema import arrow_schema

SAMPLING_THREADS = 16


@dataclass(frozen=True)
class InputFile:
    """One planned input file: its literal path and identity, and what planning learnt of it."""

    path: str
    size: int
    modified: float  # seconds, as the filesystem reports the last update
    header: tuple = ()  # CSV: the columns in the file's order
    rows: int | None = None  # Parquet: rows in the footer
    groups: tuple = ()  # Parquet: (first byte, rows) of each row group
    whole: bool = False  # read by one worker (compressed, TFRecord, CSV with quoted line breaks)

    def identity(self) -> dict:
        return {"size": self.size, "modified": self.modified}


@dataclass(frozen=True)
class InputPlan:
    files: tuple[InputFile, ...]
    format: str
    schema: pa.Schema
    float_columns: tuple[str, ...]  # crossing these needs bucketizing first
    total: int  # rows (Parquet) or bytes (other formats) of the input, for progress
    total_unit: str  # "rows" or "bytes"
    facts: tuple = field(default=(), repr=False, compare=False)  # (InputFile, Facts), to retype without re-reading

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def retyped(self, declared: dict[str, str]) -> InputPlan:
        """The plan with ``declared`` column types (``--schema``), from the facts already read."""
        schema = _schema(formats.get(self.format), self.facts, declared)
        return replace(self, schema=schema, float_columns=tuple(f.name for f in schema if is_float(f.type)))


# -- listing ----------------------------------------------------------------------------------------
def _visible(path: str) -> bool:
    return not os.path.basename(path.rstrip("/")).startswith((".", "_"))


def _local(path: str) -> tuple[str, int, float]:
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime


def _escape(path: str) -> str:
    """``path`` as a glob matching only itself (Beam's patterns, as Python's ``glob.escape``)."""
    scheme, sep, rest = path.partition("://")
    return scheme + sep + glob.escape(rest) if sep else glob.escape(path)


def _remote(pattern: str) -> list[tuple[str, int, float]]:
    literal = not any(c in pattern for c in "*?[")
    if pattern.endswith("/"):
        pattern, literal = _escape(pattern) + "*", False
    elif not literal and FileSystems.exists(pattern):  # a literal name holding a glob character
        pattern, literal = _escape(pattern), True
    found = [(m.path, m.size_in_bytes, m.last_updated_in_seconds)
             for result in FileSystems.match([pattern]) for m in result.metadata_list]
    return found if literal else [f for f in found if _visible(f[0])]


def list_files(patterns) -> list[tuple[str, int, float]]:
    """``(path, size, modified)`` of the files of paths, globs or directories, sorted, each once."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    found = set()
    for pattern in patterns:
        if "://" in pattern:
            check_remote(pattern, "--input")  # in seconds, not after the filesystem's retries
            found.update(_remote(pattern))
        elif os.path.isfile(pattern):
            found.add(_local(pattern))
        elif os.path.isdir(pattern):
            with os.scandir(pattern) as entries:
                found.update(_local(e.path) for e in entries if e.is_file() and _visible(e.name))
        else:
            found.update(_local(p) for p in glob.glob(pattern) if os.path.isfile(p) and _visible(p))
    if not found:
        shown = patterns[0] if len(patterns) == 1 else patterns
        raise InputError(f"`--input` matches no file. Received: input={shown!r}")
    return sorted(found)


# -- formats and schema ------------------------------------------------------------------------------
def _format(files, input_format) -> formats.Format:
    if input_format is not None:
        if input_format not in formats.FORMATS:
            raise InputError(f"`--input_format` must be one of {formats.FORMATS}. Received: input_format={input_format!r}")
        return formats.get(input_format)
    found = {}
    for path, _, _ in files:
        found.setdefault(formats.format_of(path).name, path)
    if len(found) > 1:
        raise InputError(
            f"The input mixes formats ({', '.join(f'{f} such as {p}' for f, p in sorted(found.items()))}); "
            f"read one format per run, or pass `--input_format` if every file is of one format."
        )
    return formats.get(next(iter(found)))


def _merge(found: dict, path: str, types: dict) -> None:
    for name, kind in types.items():
        if kind is None:
            found.setdefault(name, None)
        elif found.get(name) is None:
            found[name] = kind
        elif found[name] != kind:
            raise InputError(
                f"Column `{name}` is {found[name]} in the first lines of one file and {kind} in {path}; declare its "
                f"type with `--schema {name}:type`."
            )


def _schema(fmt: formats.Format, facts, declared: dict[str, str]) -> pa.Schema:
    """The run's schema from each file's facts and the declared types (files must agree)."""
    typed = arrow_schema(declared)
    if fmt.declared_types is False:
        schema = None
        for planned, fact in facts:
            if schema is None:
                schema = fact.schema
            elif fact.schema.remove_metadata() != schema.remove_metadata():
                raise InputError(f"{fmt.title} file {planned.path} has schema {fact.schema}, unlike the first file's {schema}.")
        return schema
    found: dict = {}
    order: list[str] = []
    for planned, fact in facts:
        if fmt.same_columns:
            if order and set(fact.columns) != set(order):
                raise InputError(f"{planned.path} has columns {list(fact.columns)}, unlike the first file's {order}.")
            order = order or list(fact.columns)
        _merge(found, planned.path, {n: t for n, t in fact.types.items() if n not in declared})
        order += [n for n in fact.columns if n not in order]
    for name in declared:
        if fmt.same_columns and name not in order:
            raise InputError(f"`--schema` declares column `{name}`, which the CSV header does not have: {order}")
        if name not in order:
            order.append(name)
    return pa.schema([typed.field(n) if n in declared else pa.field(n, found.get(n) or pa.string()) for n in order])


def _inspect(fmt, sample_bytes, declared, entry):
    path = entry[0]
    try:
        return fmt.inspect(path, sample_bytes, declared)
    except InputError:
        raise
    except (ValueError, OSError) as error:  # ReadError included: a damaged head
        raise InputError(f"{path}: {error}") from None


def plan_input(pattern, *, input_format: str | None = None, declared: dict[str, str] | None = None,
               sample_bytes: int = SAMPLE_BYTES) -> InputPlan:
    """The files, format, schema and progress total of an input, from metadata and file heads only.

    Inferred types come from a bounded sample at the start of *each* file, and files must agree, so
    a file's column types never depend on which other files are in the run.
    """
    declared = dict(declared or {})
    listed = list_files(pattern)
    fmt = _format(listed, input_format)
    if declared and not fmt.declared_types:
        raise InputError(f"`--schema` does not apply to {fmt.title} input: its column types come from the files.")
    non_empty = [entry for entry in listed if entry[1] > 0]
    if not non_empty:
        raise InputError(f"Every input file is empty: {[p for p, _, _ in listed]}")
    inspect = functools.partial(_inspect, fmt, sample_bytes, frozenset(declared))
    with ThreadPoolExecutor(SAMPLING_THREADS) as pool:  # remote filesystems: the files' heads in parallel
        found: list[Facts] = list(pool.map(inspect, non_empty))
    files, facts = [], []
    for (path, size, modified), fact in zip(non_empty, found):
        whole = not fmt.splits or formats.compression.codec_of(path) is not None or fact.whole
        planned = InputFile(path, size, modified, tuple(fact.columns) if fmt.same_columns else (), fact.rows,
                            fact.groups, whole)
        files.append(planned)
        facts.append((planned, fact))
    schema = _schema(fmt, facts, declared)
    if not len(schema):
        raise InputError(f"No column found in the first lines of {files[0].path} (is it {fmt.title}?); pass "
                         "`--input_format`.")
    if fmt.declared_types:
        total, unit = sum(f.size for f in files), "bytes"
    else:
        total, unit = sum(f.rows or 0 for f in files), "rows"
    floats = tuple(f.name for f in schema if is_float(f.type))
    return InputPlan(tuple(files), fmt.name, schema, floats, total, unit, tuple(facts))
