"""Grouping Beam elements into batches for ``CrossFeatures``, safely under retries.

- :class:`BufferRows` buffers a bundle's elements into :class:`Batch` elements, for a following
  step that crosses them and emits from ``process`` only (see its docstring for why);
- :class:`KeyByBatch` keys elements for a ``GroupByKey`` (the DaskRunner, which drops what
  ``finish_bundle`` emits), deterministically in each bundle's input.

No state outlives a bundle, so a retried bundle starts afresh.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import pyarrow as pa
from apache_beam.utils.windowed_value import WindowedValue

from beam_cross.beam import frames
from beam_cross.beam.keys import stable_digest


class Batch(list):
    """Elements (as WindowedValues) on their way from :class:`BufferRows` to the crossing step:
    buffered dicts / rows, or one RecordBatch (Table, DataFrame). ``window`` is the one window in which it is crossed."""

    def __init__(self, windowed_values, window):
        super().__init__(windowed_values)
        self.window = window

    def __reduce__(self):
        return (Batch, (list(self), self.window))


class BatchCoder(beam.coders.Coder):
    """Pickles a :class:`Batch` (only when a runner does not fuse the two steps) and estimates its
    size cheaply: Beam samples element sizes, and encoding a whole batch for that measured slower."""

    def encode(self, value):
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded):
        return pickle.loads(encoded)

    def estimate_size(self, value):
        first = value[0].value if value else None
        return first.nbytes if isinstance(first, (pa.RecordBatch, pa.Table)) else 64 * len(value)

    def is_deterministic(self):
        return False


beam.coders.registry.register_coder(Batch, BatchCoder)


class BufferRows(beam.DoFn):
    """Buffers dicts and rows into :class:`Batch` elements of up to ``batch_size``; a RecordBatch,
    already a batch, goes on alone.

    A full buffer is emitted from ``process``, the rest from ``finish_bundle``. Only the next step,
    the crossing DoFn of :mod:`beam_cross.beam.transforms`, receives them, and it emits from ``process``
    alone: Beam (2.77) flushes a batched consumer such as ``WriteToJson`` before a DoFn's
    ``finish_bundle``, so anything a DoFn emits there towards such a consumer is dropped. The
    buffer lives in one bundle: a retried bundle starts from an empty one.
    """

    def __init__(self, batch_size):
        self._batch_size = batch_size

    def start_bundle(self):
        self._pending = []

    def process(self, element, windowed_value=beam.DoFn.WindowedValueParam):
        # Not a generator: most calls only buffer, and returning a tuple is cheaper than a generator.
        if frames.is_batch(element):  # a RecordBatch, Table or DataFrame
            return (Batch([windowed_value], windowed_value.windows[0]),)
        self._pending.append(windowed_value)
        if len(self._pending) >= self._batch_size:
            # Emitted in every window of the current element; crossed in the first one only.
            batch, self._pending = Batch(self._pending, windowed_value.windows[0]), []
            return (batch,)
        return ()

    def finish_bundle(self):
        if self._pending:
            first, window = self._pending[0], self._pending[0].windows[0]
            batch, self._pending = Batch(self._pending, window), []
            return [WindowedValue(batch, first.timestamp, (window,))]
        return None


class KeyByBatch(beam.DoFn):
    """Keys elements by (bundle digest, position // batch_size): a GroupByKey then rebuilds batches.

    The key is deterministic in the bundle's input: the digest of its first element (see
    :mod:`beam_cross.beam.keys`) and the element's position. A recomputed bundle gives every element the
    key it had before, so a runner that redoes lost work (Dask) neither loses nor duplicates rows.
    Bundles whose first elements are equal share keys: their groups merge, which is harmless.
    """

    def __init__(self, batch_size):
        self._batch_size = batch_size

    def start_bundle(self):
        self._bundle = None
        self._count = 0

    def process(self, element):
        if self._bundle is None:
            self._bundle = stable_digest(element)
        self._count += 1
        yield (self._bundle, self._count // self._batch_size), element
