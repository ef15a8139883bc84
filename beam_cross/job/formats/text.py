"""What the text formats (CSV, JSON Lines) share: blocks of whole records from a byte range, line bounds.

A text work item reads the records that *start* in its byte range ``[start, stop)``: a range past
byte 0 begins after the first line break at or after ``start - 1``, and the last record it reads may
run past ``stop``. So ranges never lose or repeat a record, and the first byte and the end of what a
range read (its :class:`~beam_cross.job.formats.base.Extent`) tile the file; the run checks that they
do. A line break is ``\\n`` (a ``\\r`` before it is part of the line end). Where a record ends is the
format's: a JSON Lines record is a line, a CSV record ends at a line break outside quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from beam_cross.job.formats.base import SNIPPET_CHARS


@dataclass
class Parsed:
    """One block parsed: the good rows, the line (0-based in the block) of each, the rejections."""

    rows: pa.RecordBatch
    row_lines: np.ndarray  # int64, the block line where each good row's record starts
    rejected: list  # (block line, reason, message, raw text)
    lines: int  # line breaks in the block (its last line without one counted too)


def line_cut(buffer: bytes, limit: int, eof: bool) -> int:
    """Where the last whole line that starts before ``limit`` ends in ``buffer`` (0: the first line is
    not whole); at the end of the file, the last line needs no line break."""
    cut = 0
    if limit < len(buffer):
        cut = buffer.find(b"\n", max(limit - 1, 0)) + 1
    if not cut:  # every line is whole but the last one: up to the last line break
        cut = buffer.rfind(b"\n") + 1
    if not cut and eof:
        return len(buffer)
    if eof and limit >= len(buffer) and cut < len(buffer):
        return len(buffer)  # the file's last line, without its line break
    return cut


def record_blocks(handle, start: int, stop: float, extent, *, block_bytes: int, max_record: int, cut=line_cut):
    """``(offset, block or None, snippet, end)`` for the records that start in ``[start, stop)``.

    ``block`` holds whole records (the file's last one may lack its ``\\n``); ``cut(buffer, limit,
    eof)`` says where the last whole record starting before ``limit`` ends. A record with no end
    within ``max_record`` bytes comes alone as ``(offset, None, its first bytes, end)``, skipped up to
    the next line break without being held in memory. ``extent`` receives the first byte, the end and
    the line breaks gone through.
    """
    offset, buffer, eof = start, b"", False
    if start > 0:  # the line that holds byte start - 1 belongs to the previous range
        handle.seek(start - 1)
        offset = start - 1
        while True:
            data = handle.read(block_bytes)
            found = data.find(b"\n")
            if found >= 0 or not data:
                offset, buffer, eof = offset + (found + 1 if found >= 0 else len(data)), data[found + 1:], not data
                break
            offset += len(data)
    extent.begin = extent.end = offset
    while offset < stop:
        if not eof and len(buffer) < block_bytes:
            data = handle.read(block_bytes)
            eof = not data
            buffer += data
            continue
        if not buffer:
            break
        end = cut(buffer, int(min(stop - offset, len(buffer) + 1)), eof)
        if not end:
            if len(buffer) <= max_record and not eof:
                data = handle.read(block_bytes)
                eof = not data
                buffer += data
                continue
            # an oversized record: skipped up to the first line break after max_record bytes; its
            # first bytes are kept for its rejection, the same whatever the block size
            while len(buffer) < SNIPPET_CHARS * 4 and buffer.find(b"\n", max_record) < 0 and not eof:
                data = handle.read(block_bytes)
                eof = not data
                buffer += data
            found = buffer.find(b"\n", max_record)
            snippet = buffer[: min(SNIPPET_CHARS * 4, found + 1 if found >= 0 else len(buffer))]
            if found >= 0:
                end = found + 1
                lines, rest = buffer.count(b"\n", 0, end), buffer[end:]
            else:
                end, lines = len(buffer), buffer.count(b"\n")
                while True:
                    data = handle.read(block_bytes)
                    found = data.find(b"\n")
                    if found >= 0 or not data:
                        end += found + 1 if found >= 0 else len(data)
                        lines += found >= 0
                        rest, eof = (data[found + 1:] if found >= 0 else b""), not data
                        break
                    end += len(data)
            extent.lines += lines
            yield offset, None, snippet, offset + end
            offset, buffer = offset + end, rest
            extent.end = offset
            continue
        block = buffer[:end]
        extent.lines += block.count(b"\n")
        yield offset, block, None, offset + end
        offset, buffer = offset + end, buffer[end:]
        extent.end = offset
        if eof and not buffer:
            break


def line_bounds(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the lines of ``block``; an end excludes its ``\\n`` (a ``\\r`` before it stays)."""
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    if not block.endswith(b"\n") and block:
        ends = np.append(ends, len(block))
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


def join_spans(block: bytes, starts, ends, keep) -> bytes:
    """The spans ``keep`` of ``block``, each followed by a line break."""
    return b"\n".join(block[s:e] for s, e in zip(starts[keep].tolist(), ends[keep].tolist())) + b"\n"
