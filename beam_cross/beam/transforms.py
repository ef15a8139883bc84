"""``CrossFeatures``: Keras ``HashedCrossing`` / ``tf.sparse.cross_hashed`` crosses as a Beam PTransform.

Elements are instance dicts, schema'd rows (``beam.Row``, NamedTuple) or ``pyarrow.RecordBatch``
(what tfx_bsl's TFXIO produces); each comes back as the same kind of element with one new field per
cross. Dicts and rows are buffered per bundle (:mod:`beam_cross.beam.batching`) and crossed a column at a
time by the next step, which emits from ``process`` only; a RecordBatch already is a batch. Each
element keeps its own timestamp and window.

Nothing is lost: a row that cannot be crossed fails the pipeline with a :class:`FeatureError`
naming the feature, the cross and the value, or, with :meth:`CrossFeatures.with_exception_handling`,
goes to an errors output as a :class:`Rejected` record. Counters in the ``beam_cross`` namespace
count ``rows_crossed`` and ``rows_rejected_<reason>``.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.utils.windowed_value import WindowedValue

from beam_cross.beam import frames
from beam_cross.beam.batching import Batch, BufferRows, KeyByBatch
from beam_cross.beam.elements import ElementCrosser, Rejected
from beam_cross.beam.schemas import declared_kinds, output_row_type
from beam_cross.core.spec import Cross, check_crosses

__all__ = ["CrossFeatures", "Rejected"]

ENGINES = ("numpy", "tensorflow")
ERRORS_TAG = "errors"
_VALUE_OF = operator.attrgetter("value")
METRICS_NAMESPACE = "beam_cross"


def _check_crosses(crosses) -> tuple[Cross, ...]:
    checked = check_crosses(crosses)
    for cross in checked:
        if cross.output_mode == "one_hot" and cross.num_bins < 1:
            raise ValueError(f"A one_hot cross needs `num_bins` >= 1. Received: num_bins={cross.num_bins} for cross `{cross.name}`")
    features = {f for c in checked for f in c.features}
    clashing = sorted({c.name for c in checked} & features)
    if clashing:
        raise ValueError(f"A cross must not be named like a feature it could overwrite. Received: names={clashing}")
    return checked


def _check_feature_types(feature_types) -> dict:
    if feature_types is None:
        return {}
    if not isinstance(feature_types, Mapping):
        raise TypeError(f"`feature_types` must be a dict of feature name -> 'string' | 'int'. Received: feature_types={feature_types!r}")
    bad = {k: v for k, v in feature_types.items() if v not in ("string", "int")}
    if bad:
        raise ValueError(f"`feature_types` values must be 'string' or 'int'. Received: {bad}")
    return dict(feature_types)


def _make_engine(name):
    if name == "tensorflow":
        from beam_cross.tf.engine import cross_with_tensorflow  # imports TF on first call only

        return cross_with_tensorflow
    return None


class _CrossingDoFn(beam.DoFn):
    """Shared by both batching strategies: crossing, counting, and routing or raising errors.

    With a ``threshold`` below 1, a bundle whose share of rejected rows exceeds it fails (at the
    end of the bundle, so the share is over the whole bundle)."""

    def __init__(self, crosses, keep_inputs, engine, feature_types, route_errors, threshold=1.0):
        self._args = (crosses, keep_inputs, engine, feature_types)
        self._route_errors = route_errors
        self._threshold = threshold

    def setup(self):
        crosses, keep_inputs, engine, feature_types = self._args
        self._crosser = ElementCrosser(
            crosses, keep_inputs=keep_inputs, engine=_make_engine(engine), feature_types=feature_types,
            raise_errors=not self._route_errors,
        )
        self._crossed_counter = Metrics.counter(METRICS_NAMESPACE, "rows_crossed")
        self._rejected_counters = {}

    def start_bundle(self):
        self._bundle_rows = self._bundle_rejected = 0

    def finish_bundle(self):
        rows, bad = self._bundle_rows, self._bundle_rejected
        if self._threshold < 1 and bad > rows * self._threshold:
            raise ValueError(
                f"CrossFeatures rejected {bad} of the {rows} rows of a bundle ({bad / rows:.2%}), more than "
                f"with_exception_handling(threshold={self._threshold}) allows."
            )

    def _count(self, crossed: int, rejected: list[Rejected]):
        self._bundle_rows += crossed + len(rejected)
        self._bundle_rejected += len(rejected)
        if crossed:
            self._crossed_counter.inc(crossed)
        for record in rejected:
            counter = self._rejected_counters.get(record.reason)
            if counter is None:
                counter = Metrics.counter(METRICS_NAMESPACE, f"rows_rejected_{record.reason}")
                self._rejected_counters[record.reason] = counter
            counter.inc()

    def _cross_record_batch(self, batch):
        """``[(True, batch)]`` and ``(False, Rejected)`` pairs for one RecordBatch, Table or DataFrame."""
        out, rejected = frames.cross_batch(self._crosser, batch)
        self._count(frames.num_rows(out), rejected)
        outcomes = [(False, record) for record in rejected]
        return ([(True, out)] if out is not None else []) + outcomes

    def _cross_elements(self, elements):
        """Per element, the crossed element or None, and position -> Rejected."""
        outputs, rejected = self._crosser.cross_elements(elements)
        self._count(len(elements) - len(rejected), list(rejected.values()))
        return outputs, rejected


class _CrossBatchesDoFn(_CrossingDoFn):
    """Crosses each :class:`~beam_cross.beam.batching.Batch` in ``process``; every output comes out with
    its input's timestamp, windows and pane."""

    def process(self, batch, window=beam.DoFn.WindowParam):
        if window != batch.window:
            return ()  # the batch's copy in another window of the element that completed it
        if len(batch) == 1 and frames.is_batch(batch[0].value):
            windowed = batch[0]
            return [windowed.with_value(value) if ok else beam.pvalue.TaggedOutput(ERRORS_TAG, windowed.with_value(value))
                    for ok, value in self._cross_record_batch(windowed.value)]
        return self._flush(batch)

    def _flush(self, pending) -> list:
        outputs, rejected = self._cross_elements(list(map(_VALUE_OF, pending)))
        if not rejected:
            return list(map(WindowedValue.with_value, pending, outputs))
        return [
            beam.pvalue.TaggedOutput(ERRORS_TAG, windowed.with_value(rejected[i])) if i in rejected
            else windowed.with_value(outputs[i])
            for i, windowed in enumerate(pending)
        ]


class _CrossGroupsDoFn(_CrossingDoFn):
    """Crosses a grouped batch in ``process`` (``batch_size`` elements at a time) and emits
    ``(ok, value)`` pairs on one output."""

    def __init__(self, crosses, keep_inputs, engine, feature_types, route_errors, threshold, batch_size):
        super().__init__(crosses, keep_inputs, engine, feature_types, route_errors, threshold)
        self._batch_size = batch_size

    def process(self, keyed_batch):
        _, elements = keyed_batch
        rows = []
        for element in elements:
            if frames.is_batch(element):
                yield from self._cross_record_batch(element)
            else:
                rows.append(element)
        for start in range(0, len(rows), self._batch_size):
            chunk = rows[start : start + self._batch_size]
            outputs, rejected = self._cross_elements(chunk)
            for i, value in enumerate(outputs):
                yield (False, rejected[i]) if i in rejected else (True, value)


def _runs_on_dask(pipeline) -> bool:
    # Beam's DaskRunner (2.77) drops what finish_bundle emits and hands every output of a
    # multi-output ParDo to every consumer; on Dask the transform avoids both.
    runner = getattr(pipeline, "runner", None)
    return any(cls.__name__ == "DaskRunner" for cls in type(runner).__mro__)


class CrossFeatures(beam.PTransform):
    """Adds one hashed-cross field per :class:`~beam_cross.Cross` to every element, in one pass.

    The bins are bit for bit those of Keras ``HashedCrossing`` / ``tf.sparse.cross_hashed`` on the
    same values. Elements are dicts (``{"country": "fr", "hour": 13}``), schema'd rows
    (``beam.Row`` / NamedTuple, giving ``beam.Row`` with the new fields) or ``pyarrow.RecordBatch``
    (giving RecordBatches with new columns); ``pyarrow.Table`` and ``pandas.DataFrame`` come back
    as Tables and DataFrames (see :mod:`beam_cross.beam.frames`). A list value makes a feature
    multivalent: the row gets the list of bins of the cartesian cross, as ``tf.sparse.cross_hashed``
    computes it.

    Args:
        crosses: a list of :class:`~beam_cross.Cross` (or of their dicts, ``Cross.to_dict()``).
        keep_inputs: keep the features consumed by the crosses. Defaults to True; False drops
            them (other fields are always kept).
        engine: ``"numpy"`` (the vectorised core) or ``"tensorflow"`` (``tf.sparse.cross_hashed``
            itself, TensorFlow imported on the workers). Both give identical output.
        batch_size: how many dicts / rows are crossed at once. Defaults to 1024 (larger batches keep
            more objects alive between garbage collections and measured slower).
        feature_types: optional feature name -> ``"string"`` / ``"int"``: a value of the other
            kind is rejected (reason ``mixed_kinds``). Without it each value is hashed as its own
            kind. For schema'd rows the kinds come from the schema.

    Bad rows (missing feature, None, float, bool, nested list, wrong kind) fail the pipeline with
    a :class:`~beam_cross.FeatureError`; ``with_exception_handling()`` routes them instead.

    ``output_mode="one_hot"`` crosses give a list of ``num_bins`` 0/1 ints per row (a
    ``fixed_size_list<int64>`` column for Arrow); such a cross needs exactly one crossed value per
    row, and other rows are rejected with reason ``shape``.

    >>> from apache_beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline("FnApiRunner") as p:
    ...     rows = p | beam.Create([{"country": "fr", "hour": 13}, {"country": "us", "hour": 1.5}])
    ...     crossed, errors = rows | CrossFeatures([Cross(["country", "hour"], 1000)]).with_exception_handling()
    ...     _ = assert_that(crossed, equal_to([{"country": "fr", "hour": 13, "country_X_hour": 755}]))
    ...     _ = assert_that(errors | beam.Map(lambda r: r.reason), equal_to(["float"]), label="reasons")
    """

    def __init__(self, crosses, *, keep_inputs: bool = True, engine: str = "numpy", batch_size: int = 1024,
                 feature_types: Mapping[str, str] | None = None, label: str | None = None):
        super().__init__(label)
        self._crosses = _check_crosses(crosses)
        if not isinstance(keep_inputs, bool):
            raise TypeError(f"`keep_inputs` must be a bool. Received: keep_inputs={keep_inputs!r}")
        if engine not in ENGINES:
            raise ValueError(f"`engine` must be one of {ENGINES}. Received: engine={engine!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
        self._keep_inputs = keep_inputs
        self._engine = engine
        self._batch_size = batch_size
        self._feature_types = _check_feature_types(feature_types)

    @property
    def crosses(self) -> tuple[Cross, ...]:
        return self._crosses

    def default_label(self) -> str:
        return f"CrossFeatures({', '.join(c.name for c in self._crosses)})"

    def display_data(self) -> dict:
        return {
            "crosses": DisplayDataItem("; ".join(c.to_json() for c in self._crosses), label="Crosses"),
            "keep_inputs": DisplayDataItem(self._keep_inputs, label="Keep input features"),
            "engine": DisplayDataItem(self._engine, label="Engine"),
            "batch_size": DisplayDataItem(self._batch_size, label="Batch size"),
        }

    def with_exception_handling(self, *, threshold: float = 1.0) -> _CrossFeaturesWithErrors:
        """A transform returning ``(crossed, errors)``; errors are :class:`Rejected` records, and
        every input row ends in exactly one of the two: nothing a row holds fails the pipeline.

        Args:
            threshold: the largest share of rejected rows a bundle may have, as in Beam's
                ``ParDo.with_exception_handling``. Defaults to 1.0 (never fail); with 0.1, a bundle
                rejecting more than 10% of its rows fails (and the runner retries or stops).
                The share is counted per bundle, on every runner.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"`threshold` must be a number from 0 to 1. Received: threshold={threshold!r}")
        return _CrossFeaturesWithErrors(self, float(threshold))

    def expand(self, pcoll):
        crossed, _ = self._expand(pcoll, route_errors=False)
        return crossed

    def _expand(self, pcoll, route_errors: bool, threshold: float = 1.0):
        input_type = pcoll.element_type
        if input_type in _NOT_ROWS:
            raise TypeError(
                "CrossFeatures takes dicts, schema'd rows (beam.Row, NamedTuple), pyarrow RecordBatches or Tables, "
                "or pandas DataFrames. "
                f"Received: element type {input_type.__name__}"
            )
        feature_types = {**declared_kinds(input_type, self._crosses), **self._feature_types}
        output_type = output_row_type(input_type, self._crosses, self._keep_inputs) or _same_kind(input_type)
        args = (self._crosses, self._keep_inputs, self._engine, feature_types, route_errors, threshold)
        if _runs_on_dask(pcoll.pipeline):
            outcomes = (
                pcoll
                | "KeyIntoBatches" >> beam.ParDo(KeyByBatch(self._batch_size))
                | "GroupIntoBatches" >> beam.GroupByKey()
                | "CrossBatches" >> beam.ParDo(_CrossGroupsDoFn(*args, self._batch_size))
            )
            crossed = outcomes | "Crossed" >> beam.FlatMap(lambda o: [o[1]] if o[0] else [])
            errors = outcomes | "Rejected" >> beam.FlatMap(lambda o: [] if o[0] else [o[1]])
        else:
            results = (
                pcoll
                | "Batch" >> beam.ParDo(BufferRows(self._batch_size)).with_output_types(Batch)
                | "Cross" >> beam.ParDo(_CrossBatchesDoFn(*args)).with_outputs(ERRORS_TAG, main="crossed")
            )
            crossed, errors = results.crossed, results[ERRORS_TAG]
        crossed.element_type = output_type
        errors.element_type = Rejected
        return crossed, errors


# Element types that can never hold features (a PCollection of these is a wiring mistake).
_NOT_ROWS = (int, float, str, bytes, bool, list, tuple)


def _same_kind(input_type):
    if frames.is_batch_type(input_type):
        return input_type
    origin = typing.get_origin(input_type)
    if input_type is dict or origin is dict:
        return typing.Dict[str, typing.Any]  # noqa: UP006 - Beam type hints want typing generics
    return typing.Any


class _CrossFeaturesWithErrors(beam.PTransform):
    """``CrossFeatures(...).with_exception_handling()``: returns ``(crossed, errors)``."""

    def __init__(self, cross_features: CrossFeatures, threshold: float = 1.0):
        super().__init__(cross_features.label)
        self._cross_features = cross_features
        self._threshold = threshold

    def display_data(self) -> dict:
        return {
            **self._cross_features.display_data(),
            "errors": DisplayDataItem("routed", label="Bad rows"),
            "threshold": DisplayDataItem(self._threshold, label="Largest share of rejected rows per bundle"),
        }

    def expand(self, pcoll):
        return self._cross_features._expand(pcoll, route_errors=True, threshold=self._threshold)
