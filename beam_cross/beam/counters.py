"""The row counters of every beam_cross pipeline: one set of names in Beam's ``beam_cross`` namespace.

- ``rows_read``: rows read from files (by ``beam-cross`` and the tf.Transform job; ``CrossFeatures``
  gets its rows from its input and does not count them);
- ``rows_crossed``: rows out with their crosses (for the tf.Transform job, rows handed to tf.Transform);
- ``rows_rejected``: rows rejected, whatever the reason, and ``rows_rejected_<reason>`` for each
  reason (one of :data:`beam_cross.core.errors.REASONS`, or a reader's reason).

Rows in = ``rows_crossed`` + ``rows_rejected``. A DoFn adds its counts once per bundle
(:meth:`RowCounters.add`); :func:`counted` reads them back from a pipeline's result.
"""

from __future__ import annotations

from collections.abc import Mapping

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

__all__ = ["NAMESPACE", "ROWS_CROSSED", "ROWS_READ", "ROWS_REJECTED", "RowCounters", "counted", "rejected_counter"]

NAMESPACE = "beam_cross"
ROWS_READ = "rows_read"
ROWS_CROSSED = "rows_crossed"
ROWS_REJECTED = "rows_rejected"


def rejected_counter(reason: str) -> str:
    """The name of the counter of rows rejected for ``reason``: ``rows_rejected_<reason>``."""
    return f"{ROWS_REJECTED}_{reason}"


class RowCounters:
    """A DoFn's counters, made on first use (a DoFn makes this in ``setup``)."""

    def __init__(self):
        self._counters = {}

    def _inc(self, name: str, value: int):
        if value:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Metrics.counter(NAMESPACE, name)
            counter.inc(value)

    def add(self, *, read: int = 0, crossed: int = 0, rejected: Mapping[str, int] | None = None):
        """Adds rows read, rows crossed and rows rejected by reason (reason -> rows)."""
        self._inc(ROWS_READ, read)
        self._inc(ROWS_CROSSED, crossed)
        for reason, rows in (rejected or {}).items():
            self._inc(rejected_counter(reason), rows)
        self._inc(ROWS_REJECTED, sum((rejected or {}).values()))


def counted(result, name: str) -> int | None:
    """The counter ``name`` summed over the run's steps (committed, else attempted), or None where
    the runner reports no metrics (the DaskRunner) or never counted it."""
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))["counters"]
    except Exception:  # DaskRunner reports no metrics (NotImplementedError)
        return None
    if not found:
        return None
    return sum((c.committed if c.committed is not None else c.attempted) or 0 for c in found)
