"""The learning stage of ``beam-cross``: a spec with unlearned transforms (``Bucketize(num_buckets=k)``,
``Lookup`` without a vocabulary) is learned by a pipeline of its own before the crossing pipeline runs.

    ReadChunks -> rows -> LearnCrosses -> WriteLearned

It reads the input once, keeping only the statistics (memory flat in the input), and writes the
learned crosses (``Cross.to_dict`` dicts, as JSON) to the run's temporary directory; the launcher
reads them back and plans the crossing stage with them, which reads the input again, so the crossing
read's accounting (every planned byte read exactly once) is the crossing stage's alone. Rows the
reader or the crossing would reject are not learned from (``LearnCrosses(skip_invalid=True)``).
The learned spec is committed with the output, under ``learned/`` (:func:`learned_spec_moves`).
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_cross.beam.learn import LearnCrosses
from beam_cross.core.spec import Cross
from beam_cross.core.spec_file import spec_files
from beam_cross.job.errors import RowsLost
from beam_cross.job.readers import ReadChunks

LEARNED_NAME = "_learned.json"
SPEC_DIR = "learned"
SPEC_NAME = "crosses.json"


def _rows(chunk):
    """A chunk's rows; a work item the reader could not read to its end (a damaged or cut-short file,
    in its coverage) stops the stage here: what it learned from would not be the input."""
    error = (chunk.coverage or {}).get("error")
    if error:
        raise RowsLost(f"The input was not read exactly once: {error}")
    return (chunk.rows,) if chunk.rows.num_rows else ()


def _write_learned(crosses, path):
    with FileSystems.create(path) as handle:
        handle.write(json.dumps([c.to_dict() for c in crosses]).encode("utf-8"))
    return path


def learned_path(job) -> str:
    return FileSystems.join(job.temp_dir, "learning", LEARNED_NAME)


def build_learning_pipeline(pipeline, job, epsilon: float = 1e-3):
    """Adds the learning stage's steps to ``pipeline``; the last writes the learned crosses."""
    return (
        pipeline
        | "Read" >> ReadChunks(job.files, job.input_format, job.schema, range_bytes=job.range_bytes)
        | "Rows" >> beam.FlatMap(_rows)
        | "Learn" >> LearnCrosses(job.crosses, epsilon=epsilon, skip_invalid=True)
        | "WriteLearned" >> beam.Map(_write_learned, learned_path(job))
    )


def read_learned(job) -> list[Cross]:
    """The crosses the learning stage wrote."""
    with FileSystems.open(learned_path(job)) as handle:
        return [Cross.from_dict(c) for c in json.loads(handle.read().decode("utf-8"))]


def learned_spec_moves(job) -> list[tuple[str, str, None]]:
    """Writes the learned spec (``crosses.json`` and its vocabulary files, see
    :func:`beam_cross.core.spec_file.write_crosses`) to the temporary directory; returns the moves
    (temporary path, path relative to the output, None) that commit it under ``learned/``."""
    moves = []
    for name, data in spec_files(job.crosses, SPEC_NAME).items():
        temp = FileSystems.join(job.temp_dir, SPEC_DIR, name)
        with FileSystems.create(temp) as handle:
            handle.write(data)
        moves.append((temp, f"{SPEC_DIR}/{name}", None))
    return moves
