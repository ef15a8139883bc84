"""What the reading tests share: ``ReadChunks`` run on the FnApiRunner, chunks summarised with their places.

Inputs are real files in ``tmp_path``; pipelines write what they read to files (one Arrow file and
one JSON file per chunk) that the tests read back and compare with what was written. Places are
resolved from the chunks' coverage, as the command's pipeline does.
"""

from __future__ import annotations

import json
import os
import uuid

import apache_beam as beam
import pyarrow as pa

from beam_cross.job.readers import Chunk, ReadChunks, WorkItem, line_bases, read_item
from beam_cross.job.rejections import placed


class _Save(beam.DoFn):
    """Writes each chunk to ``folder``: its rows as an Arrow file, the rest as JSON."""

    def __init__(self, folder):
        self._folder = folder

    def process(self, chunk):
        name = os.path.join(self._folder, uuid.uuid4().hex)
        with pa.OSFile(name + ".arrow", "wb") as sink, pa.ipc.new_file(sink, chunk.rows.schema) as writer:
            writer.write_batch(chunk.rows)
        with open(name + ".json", "w") as handle:
            json.dump({"rejected": list(chunk.rejected), "rows_read": chunk.rows_read, "source": chunk.source,
                       "where": chunk.locate(range(chunk.rows.num_rows)), "progress": chunk.progress,
                       "coverage": chunk.coverage, "is_chunk": isinstance(chunk, Chunk)}, handle)


def run(tmp_path, files, fmt, schema, **options) -> dict:
    """Reads with ``ReadChunks`` on the FnApiRunner; returns what the chunks held, in file order."""
    folder = tmp_path / f"out-{uuid.uuid4().hex}"
    folder.mkdir()
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        _ = pipeline | ReadChunks(files, fmt, schema, **options) | beam.ParDo(_Save(str(folder)))
    chunks = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(folder / name) as handle:
                chunk = json.load(handle)
            chunk["rows"] = pa.ipc.open_file(str(folder / (name[:-5] + ".arrow"))).read_all()
            chunks.append(chunk)
    return summary(chunks, sort_key=_place)


def _place(source: str):
    path, _, where = source.rpartition(":")
    return path, int(where.split()[-1])


def _resolved(place, bases) -> str:
    source, pending = place
    return source if pending is None else f"{pending['path']}:{bases[(pending['path'], pending['start'])] + pending['line'] + 1}"


def summary(chunks, sort_key=None) -> dict:
    """Rows (with their place), rejections and counts of chunks (dicts or Chunk objects), places
    resolved from the chunks' coverage as the pipeline does."""
    chunks = list(chunks)
    getters = [chunk.get if isinstance(chunk, dict) else (lambda name, c=chunk: getattr(c, name)) for chunk in chunks]
    bases = line_bases([get("coverage") for get in getters if get("coverage") is not None])
    rows, rejected, read, progress = [], [], 0, 0
    for chunk, get in zip(chunks, getters):
        where = get("where") if isinstance(chunk, dict) else chunk.locate(range(chunk.rows.num_rows))
        rows += list(zip([_resolved(w, bases) for w in where], get("rows").to_pylist()))
        rejected += [placed(dict(r), bases) for r in get("rejected")]
        read += get("rows_read")
        progress += get("progress")
        assert get("rows_read") == get("rows").num_rows + len(get("rejected"))
        assert not isinstance(chunk, dict) or chunk["is_chunk"]
    key = sort_key or _place
    return {
        "rows": sorted(rows, key=lambda item: key(item[0])),
        "rejected": sorted(rejected, key=lambda item: key(item["source"])),
        "rows_read": read,
        "progress": progress,
    }


def item(plan, start=0, stop=None, index=0) -> WorkItem:
    planned = plan.files[index]
    return WorkItem(planned, start, planned.size if stop is None else stop)


def read_whole(path, plan, **options) -> dict:
    return summary(read_item(item(plan), plan.format, plan.schema, **options))


def reasons(result) -> list[tuple[str, str]]:
    return [(r["source"].rpartition(":")[2], r["reason"]) for r in result["rejected"]]
