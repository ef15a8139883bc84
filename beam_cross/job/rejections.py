"""The ``beam-cross`` rejected-rows output, for rows not read and rows not crossed: each a JSON line,
the encoding of the core's one rejected-row shape (:meth:`beam_cross.core.elements.Rejected.as_record`),
and its writer.

A record's ``source`` is its place (``file:line``, ``file:record N``, ``file:row N``) and its
``message`` starts with it. A record of a text range past byte 0 is written first with a pending
place (its line within the range) and placed once every range is read (:func:`placed`).

>>> record = rejection("type", "column `hour` must be int64", {"hour": "x"}, pending={"path": "a.csv", "start": 90, "line": 2})
>>> placed(record, {("a.csv", 90): 10})["message"]
'a.csv:13: column `hour` must be int64'
"""

from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from beam_cross.core.elements import Rejected
from beam_cross.job.formats.base import writing

PENDING = "_pending"


def rejection(reason, message, row, *, source=None, feature=None, cross=None, pending=None) -> dict:
    """The JSON-ready record of a rejected row (the core's :class:`Rejected`, encoded); ``pending``
    is the place of a row of a text range past byte 0, made ``file:line`` by :func:`placed`."""
    record = Rejected(row, reason, feature, cross, message, source).as_record()
    if pending is not None:
        record[PENDING] = pending
    return record


def placed(record: dict, bases: dict) -> dict:
    """``record`` with its pending place made ``file:line`` from ``bases`` ((path, item start) -> lines before)."""
    pending = record.pop(PENDING, None)
    if pending is None:
        return record
    source = f"{pending['path']}:{bases[(pending['path'], pending['start'])] + pending['line'] + 1}"
    record["source"], record["message"] = source, f"{source}: {record['message']}"
    return record


def json_default(value):
    """``json.dumps``' fallback for rejected rows: bytes as text (invalid UTF-8 backslash-escaped), the rest as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class RejectedWriter:
    """Rejected-row records (dicts) as JSON Lines; counts what it wrote, and how many wait for a place."""

    def __init__(self, path: str):
        self.path = path
        self.rows = 0
        self.pending = 0
        with writing(path):
            self._handle = FileSystems.create(path)

    def write(self, records) -> int:
        lines = [json.dumps(r, default=json_default) + "\n" for r in records]
        if lines:
            with writing(self.path):
                self._handle.write("".join(lines).encode("utf-8"))
            self.rows += len(lines)
            self.pending += sum(PENDING in r for r in records)
        return len(lines)

    def close(self) -> int:
        with writing(self.path):
            self._handle.close()
        return self.rows


def place_file(source: str, target: str, bases: dict) -> int:
    """Copies the rejected records of ``source`` to ``target`` with their places; returns the rows."""
    rows = 0
    with FileSystems.open(source) as reading, FileSystems.create(target) as writing:
        lines = []
        for line in reading:
            lines.append(json.dumps(placed(json.loads(line), bases), default=json_default) + "\n")
            rows += 1
            if len(lines) >= 10_000:
                writing.write("".join(lines).encode("utf-8"))
                lines = []
        if lines:
            writing.write("".join(lines).encode("utf-8"))
    return rows
