"""``ReadRows``: files of any supported format into a PCollection of dict rows, plus rejections."""

from __future__ import annotations

import logging
import time

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_cross.job import io

ROWS = "rows"
REJECTED = "rejected"
METRICS_NAMESPACE = "beam_cross"
PROGRESS_SECONDS = 10
_log = logging.getLogger("beam_cross")


def rejection(reason, message, row, *, source=None, feature=None, cross=None) -> dict:
    """The one record shape of the rejected-rows output (JSON-ready)."""
    return {
        "reason": reason,
        "message": message,
        "feature": feature,
        "cross": cross,
        "source": source,
        "row": row,
    }


class _ReadFile(beam.DoFn):
    def __init__(self, fmt, schema):
        self._fmt = fmt
        self._schema = schema
        self._read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._rejected = Metrics.counter(METRICS_NAMESPACE, "rows_rejected_reading")

    def process(self, path):
        last = time.monotonic()
        for count, item in enumerate(io.read_file(path, self._fmt, self._schema), start=1):
            self._read.inc()
            if time.monotonic() - last > PROGRESS_SECONDS:  # a person can follow a long file
                last = time.monotonic()
                _log.info("beam-cross: read %d rows of %s so far", count, path)
            if isinstance(item, dict):
                yield ROWS, item
            else:
                reason, source, raw, message = item
                self._rejected.inc()
                yield REJECTED, rejection(reason, f"{source}: {message}", raw, source=source)


def split_tagged(tagged, tags):
    """``{tag: PCollection}`` from a PCollection of ``(tag, value)`` pairs.

    Used instead of a multi-output ``ParDo(...).with_outputs()``: Beam 2.77's DaskRunner sends every
    element of such a ParDo to one of its tagged outputs, leaving the main output empty.
    """
    return {
        tag: tagged | f"Only{tag.title()}" >> beam.FlatMap(lambda pair, tag=tag: [pair[1]] if pair[0] == tag else [])
        for tag in tags
    }


class ReadRows(beam.PTransform):
    """Reads ``files`` (one worker per file) as dict rows; returns ``{"rows", "rejected"}`` outputs.

    Unreadable records (a CSV row with the wrong number of fields, a cell of the wrong type, a line
    that is not JSON, a record that is not a tf.Example) go to ``rejected`` with their reason and
    ``file:line``; they are never dropped.
    """

    def __init__(self, files, fmt, schema=None):
        super().__init__()
        if fmt not in io.FORMATS:
            raise ValueError(f"`fmt` must be one of {io.FORMATS}. Received: fmt={fmt!r}")
        self._files = list(files)
        self._fmt = fmt
        self._schema = dict(schema or {})

    def expand(self, pbegin):
        parsed = (
            pbegin
            | "Files" >> beam.Create(self._files)
            | "Spread" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ReadFile(self._fmt, self._schema))
        )
        return split_tagged(parsed, (ROWS, REJECTED))
