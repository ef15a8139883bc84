"""``WriteShards``: rows into ``num_shards`` files named like Beam's (``prefix-00000-of-00004.csv``).

Each shard is written by one worker through :func:`beam_cross.io.write_shard` (a temporary file
renamed at the end), and every shard file exists even when it gets no row, so a reader can rely on
the ``-of-N`` count. The transform outputs ``(path, rows written)`` per shard, which the command
checks against what was read.
"""

from __future__ import annotations

import apache_beam as beam

from beam_cross import io

SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet", "tfrecord": ".tfrecord"}


def shard_path(prefix: str, index: int, num_shards: int, fmt: str) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}{SUFFIXES[fmt]}"


class _AssignShard(beam.DoFn):
    def __init__(self, num_shards):
        self._num_shards = num_shards

    def setup(self):
        self._next = None

    def process(self, row):
        if self._next is None:
            import random  # start each worker at a different shard so small inputs spread out

            self._next = random.randrange(self._num_shards)
        self._next = (self._next + 1) % self._num_shards
        yield self._next, row


class WriteShards(beam.PTransform):
    """Writes dict rows as ``num_shards`` files of ``fmt`` under ``prefix``.

    ``columns`` fixes the column order (CSV header, Parquet schema); ``schema`` maps columns to
    :data:`beam_cross.io.TYPES` for Parquet.
    """

    def __init__(self, prefix, fmt, *, num_shards=1, columns=(), schema=None):
        super().__init__()
        if fmt not in io.FORMATS:
            raise ValueError(f"`fmt` must be one of {io.FORMATS}. Received: fmt={fmt!r}")
        if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
            raise ValueError(f"`num_shards` must be a positive int. Received: num_shards={num_shards!r}")
        self._prefix = prefix
        self._fmt = fmt
        self._num_shards = num_shards
        self._columns = list(columns)
        self._schema = dict(schema or {})

    def expand(self, rows):
        every_shard = (
            rows.pipeline
            | "ShardIndices" >> beam.Create([(i, None) for i in range(self._num_shards)])
        )
        keyed = rows | "AssignShard" >> beam.ParDo(_AssignShard(self._num_shards))
        prefix, fmt, num_shards, columns, schema = self._prefix, self._fmt, self._num_shards, self._columns, self._schema

        def write(shard):
            index, items = shard
            path = shard_path(prefix, index, num_shards, fmt)
            rows_of_shard = (row for row in items if row is not None)
            if not columns and fmt == "csv":
                materialized = list(rows_of_shard)
                header = list(dict.fromkeys(k for row in materialized for k in row))
                return path, io.write_shard(path, fmt, materialized, header, schema)
            return path, io.write_shard(path, fmt, rows_of_shard, columns, schema)

        return (
            (keyed, every_shard)
            | "Together" >> beam.Flatten()
            | "ByShard" >> beam.GroupByKey()
            | "Write" >> beam.Map(write)
        )
