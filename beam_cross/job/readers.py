"""Columnar, splittable reading of the ``beam-cross`` inputs: ``ReadChunks`` and the coverage it reports.

``ReadChunks(files, fmt, schema)`` is a ``PBegin -> PCollection[Chunk]`` transform with one output.
``files`` are the planned :class:`~beam_cross.job.input_plan.InputFile` objects (from ``plan_input``;
paths are planned on the spot). Each file is cut into work items (byte ranges of ``range_bytes`` of
uncompressed splittable files; the whole file otherwise), spread over workers, and read by a ``DoFn``:
each item opens its file **by its literal path**, checks that the file is still the planned one,
and yields :class:`Chunk` objects (a RecordBatch of the good rows, typed by the schema, plus the
rejected records of the same block, each with a reason and its place). Its last chunk carries the
item's *coverage*: the bytes it read (``[begin, end)``), the row groups, records and lines, and any
read error (a damaged or cut-short file, a file changed or gone). :func:`check_coverage` then proves
that every planned byte was read exactly once.

Places: a rejection is at ``file:line`` (text), ``file:record N`` (TFRecord) or ``file:row N``
(Parquet). Lines are counted by the reader as it goes; for a text range past byte 0, the lines
before it are known only once every range is read, so its records carry their line within the
range (``_pending``) and the pipeline places them after the read (:func:`place_records`), from the
line counts of the coverage. No byte is read twice to number a line.

The work items go through ``beam.Create`` and a ``ParDo`` rather than a ``BoundedSource`` read:
Beam's DaskRunner turns ``beam.io.Read`` into nothing, while this shape runs on every runner.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from beam_cross.job import formats
from beam_cross.job.errors import ReadError, RowsLost
from beam_cross.job.formats import compression
from beam_cross.job.formats.base import BLOCK_BYTES, MAX_RECORD_BYTES, RANGE_BYTES, Extent, ReadContext, empty_batch
from beam_cross.job.input_plan import InputFile, InputPlan, plan_input
from beam_cross.job.rejections import rejection

__all__ = ["Chunk", "InputPlan", "ReadChunks", "WorkItem", "check_coverage", "plan_input", "read_item"]
_UNITS = {"csv": "line", "jsonl": "line", "tfrecord": "record", "parquet": "row"}


@dataclass(frozen=True)
class WorkItem:
    file: InputFile
    start: int
    stop: int


@dataclass(frozen=True, eq=False)
class Chunk:
    """Rows read from one block of one work item, with the rejected records of that block.

    ``rows`` holds the good rows typed by the schema (possibly none); ``rejected`` holds records
    shaped by :func:`beam_cross.job.rejections.rejection`; ``rows_read == rows.num_rows + len(rejected)``.
    ``progress`` is the part of :attr:`InputPlan.total` this chunk stands for; ``coverage`` is set on
    the last chunk of a work item.
    """

    rows: pa.RecordBatch
    rejected: tuple
    source: str
    rows_read: int
    path: str = ""
    unit: str = "line"  # "line" (1-based), "record" or "row" (0-based)
    base: int | None = 0  # lines / records before the item; None: not known until every range is read
    start: int = 0  # the item's first byte
    numbers: np.ndarray | None = None  # per row: its number from the item's first record
    first: int = 0
    progress: int = 0
    coverage: dict | None = None

    def place(self, number: int) -> tuple[str | None, dict | None]:
        """(``file:line``, None) of record ``number`` of the item, or (None, pending place) while unknown."""
        if self.base is None:
            return None, {"path": self.path, "start": self.start, "line": int(number)}
        return _where(self.path, self.unit, self.base + int(number)), None

    def locate(self, indices) -> list[tuple[str | None, dict | None]]:
        """:meth:`place` of the good rows at ``indices``."""
        numbers = self.numbers
        return [self.place(numbers[i] if numbers is not None else self.first + int(i)) for i in indices]

    def record(self, number, reason, message, row, **where) -> dict:
        """A rejected-row record of record ``number``, placed or pending."""
        source, pending = self.place(number)
        return rejection(reason, message, row, source=source, pending=pending, **where)


def _where(path: str, unit: str, number: int) -> str:
    return f"{path}:{number + 1}" if unit == "line" else f"{path}:{unit} {number}"


# -- worker side ----------------------------------------------------------------------------------------
def identity(path: str) -> dict:
    metadata = FileSystems.get_filesystem(path).metadata(path)
    return {"size": metadata.size_in_bytes, "modified": metadata.last_updated_in_seconds}


def _check_identity(item: WorkItem, when: str) -> None:
    try:
        seen = identity(item.file.path)
    except Exception:  # BeamIOError: gone
        raise ReadError(f"{item.file.path}: the file is gone ({when})") from None
    planned = item.file.identity()
    if seen != planned:
        changes = ", ".join(f"{k} {planned[k]} -> {seen[k]}" for k in planned if seen[k] != planned[k])
        raise ReadError(f"{item.file.path}: the file changed during the run ({changes}, {when})")


def read_item(item: WorkItem, fmt: str, schema: pa.Schema, *, block_bytes: int = BLOCK_BYTES,
              max_record_bytes: int = MAX_RECORD_BYTES):
    """The chunks of one work item; the last one carries the item's coverage."""
    form, path = formats.get(fmt), item.file.path
    unit = _UNITS[fmt]
    codec = compression.codec_of(path)
    context = ReadContext(path, item.file.header, block_bytes, max_record_bytes, codec is not None, item.file.whole)
    extent, error, records, progress = Extent(), None, 0, 0
    base = 0 if item.start == 0 or unit != "line" else None
    try:
        _check_identity(item, "before it was read")
        whole = item.file.whole
        with compression.open_stream(path) as handle:
            stop = float("inf") if whole else item.stop
            for piece in form.read(handle, item.start, stop, schema, extent, context=context):
                records += piece.records
                progress += piece.progress
                chunk = Chunk(piece.rows, (), f"{path}@{item.start}", piece.records, path, unit, base, item.start,
                              piece.numbers, piece.first, piece.progress)
                rejected = tuple(chunk.record(number, reason, message, raw) for number, reason, message, raw in piece.rejected)
                yield Chunk(piece.rows, rejected, chunk.source, piece.records, path, unit, base, item.start,
                            piece.numbers, piece.first, piece.progress)
            if whole:  # read to the end: what the stream consumed of the file is the extent
                if handle.read(1):
                    raise ReadError(f"{path}: the {fmt} reader stopped before the end of the file")
                extent.begin, extent.end = 0, handle.raw_bytes if codec is not None else handle.tell()
        _check_identity(item, "after it was read")
    except ReadError as failure:
        error = str(failure)
    except OSError as failure:  # EIO, a connection reset...: a read error of this file
        error = f"{path}: {failure}"
    coverage = {"path": path, "start": item.start, "stop": item.stop, "begin": extent.begin, "end": extent.end,
                "lines": extent.lines, "records": records, "groups": [list(g) for g in extent.groups], "error": error}
    rest = item.file.size - progress if unit != "row" and not error else 0
    yield Chunk(empty_batch(schema), (), f"{path}@{item.start}", 0, path, unit, base, item.start,
                progress=max(rest, 0) if item.file.whole else 0, coverage=coverage)


def work_items(files, range_bytes: int = RANGE_BYTES) -> list[WorkItem]:
    items = []
    for planned in files:
        if planned.whole:
            items.append(WorkItem(planned, 0, planned.size))
        else:
            items += [WorkItem(planned, s, min(s + range_bytes, planned.size)) for s in range(0, planned.size, range_bytes)]
    return items


class _ReadItem(beam.DoFn):
    def __init__(self, fmt, schema, options):
        self._fmt, self._schema, self._options = fmt, schema, options

    def process(self, item):
        yield from read_item(item, self._fmt, self._schema, **self._options)


class ReadChunks(beam.PTransform):
    """Reads ``files`` (planned :class:`InputFile` objects, or paths) of format ``fmt`` as :class:`Chunk` elements."""

    def __init__(self, files, fmt: str, schema: pa.Schema, *, range_bytes: int = RANGE_BYTES,
                 block_bytes: int = BLOCK_BYTES, max_record_bytes: int = MAX_RECORD_BYTES):
        super().__init__()
        formats.get(fmt)
        if not isinstance(schema, pa.Schema):
            raise TypeError(f"`schema` must be a pyarrow.Schema (see plan_input). Received: schema={schema!r}")
        files = [files] if isinstance(files, (str, InputFile)) else list(files)
        if any(isinstance(f, str) for f in files):
            files = list(plan_input([f for f in files if isinstance(f, str)], input_format=fmt).files) + \
                [f for f in files if isinstance(f, InputFile)]
        self._files, self._fmt, self._schema, self._range = files, fmt, schema, int(range_bytes)
        self._options = {"block_bytes": int(block_bytes), "max_record_bytes": int(max_record_bytes)}

    def work_items(self) -> list[WorkItem]:
        return work_items(self._files, self._range)

    def expand(self, pbegin):
        return (
            pbegin
            | "WorkItems" >> beam.Create(self.work_items())
            | "Read" >> beam.ParDo(_ReadItem(self._fmt, self._schema, self._options))
        )


# -- after the run ----------------------------------------------------------------------------------------
def line_bases(coverage: list[dict]) -> dict[tuple[str, int], int]:
    """``(path, item start) -> lines before the item``, from the items' line counts."""
    bases, by_file = {}, {}
    for entry in coverage:
        by_file.setdefault(entry["path"], []).append(entry)
    for path, entries in by_file.items():
        lines = 0
        for entry in sorted(entries, key=lambda e: (e["begin"], e["end"])):
            bases[(path, entry["start"])] = lines
            lines += entry["lines"]
    return bases


def place_records(records, bases) -> list[dict]:
    """Rejected records with their pending places turned into ``file:line``."""
    from beam_cross.job.rejections import placed

    return [placed(r, bases) for r in records]


def check_coverage(files, coverage: list[dict]) -> list[dict]:
    """Per planned file, what was read; raises :class:`RowsLost` (exit 3) naming each file not read
    exactly once, changed, or damaged. ``files`` are the plan's :class:`InputFile` objects."""
    by_file: dict[str, list[dict]] = {}
    for entry in coverage:
        by_file.setdefault(entry["path"], []).append(entry)
    problems, report = [], []
    for planned in files:
        entries = sorted(by_file.pop(planned.path, []), key=lambda e: (e["begin"], e["end"], e["start"]))
        errors = [e["error"] for e in entries if e["error"]]
        problems += errors
        rows = sum(e["records"] for e in entries)
        report.append({"path": planned.path, **planned.identity(), "rows": rows})
        if errors:
            continue
        if not entries:
            problems.append(f"{planned.path}: not read (no work item of it reported)")
            continue
        if planned.groups:  # Parquet: every row group once, with its footer's rows
            read: dict[int, int] = {}
            for entry in entries:
                for index, count in entry["groups"]:
                    if index in read:
                        problems.append(f"{planned.path}: row group {index} read twice")
                    read[index] = count
            for index, (_, count) in enumerate(planned.groups):
                if read.get(index) != count:
                    problems.append(f"{planned.path}: row group {index} " + ("not read" if index not in read else
                                    f"read as {read[index]:,} rows, its footer says {count:,}"))
            continue
        at = 0
        starts = [e["start"] for e in entries]
        if len(set(starts)) != len(starts):
            problems.append(f"{planned.path}: a byte range was read twice")
            continue
        for entry in entries:
            if entry["begin"] > at:
                problems.append(f"{planned.path}: bytes {at:,} to {entry['begin']:,} not read")
            elif entry["begin"] < at:
                problems.append(f"{planned.path}: bytes {entry['begin']:,} to {at:,} read twice (a CSV quoted value "
                                f"holding a line break across byte {entry['start']:,}, where the file was split, is "
                                f"one cause: pass `--read_whole` to read such files by one worker each)")
            at = max(at, entry["end"])
        if at != planned.size:
            problems.append(f"{planned.path}: read up to byte {at:,} of {planned.size:,}: the file changed during the run"
                            if at < planned.size else f"{planned.path}: read {at:,} bytes, more than its planned "
                            f"{planned.size:,}: the file changed during the run")
    for path in by_file:
        problems.append(f"{path}: read, but not in the plan")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise RowsLost(f"The input was not read exactly once: {shown}.")
    return report
