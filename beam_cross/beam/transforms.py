"""``CrossFeatures``: Keras ``HashedCrossing`` / ``tf.sparse.cross_hashed`` crosses as a Beam PTransform.

Elements are instance dicts, schema'd rows (``beam.Row``, NamedTuple) or ``pyarrow.RecordBatch``
(what tfx_bsl's TFXIO produces); each comes back as the same kind of element with one new field per
cross. Each element is crossed as it comes, in ``process``: a dict or row on its own (one call into the
compiled kernel when its features are plain values), a RecordBatch as the batch it is. Nothing is
buffered, so each element keeps its own timestamp, window and pane, on every runner.

Nothing is lost: a row that cannot be crossed fails the pipeline with a :class:`FeatureError`
naming the feature, the cross and the value, or, with :meth:`CrossFeatures.with_exception_handling`,
goes to an errors output as a :class:`Rejected` record. Counters in the ``beam_cross`` namespace
count ``rows_crossed``, ``rows_rejected`` and ``rows_rejected_<reason>`` (:mod:`beam_cross.beam.counters`).
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.transforms.display import DisplayDataItem

from beam_cross.beam import frames
from beam_cross.beam.counters import RowCounters
from beam_cross.beam.schemas import declared_kinds, output_row_type
from beam_cross.core.elements import ElementCrosser, Rejected, as_mapping
from beam_cross.core.spec import Cross, check_crosses

__all__ = ["CrossFeatures", "Rejected"]

ENGINES = ("numpy", "tensorflow")


def to_row(mapping: dict) -> beam.Row:
    """The output of a schema'd row: a ``beam.Row`` of its fields."""
    return beam.Row(**mapping)


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


class _CrossElementsDoFn(beam.DoFn):
    """Crosses each element as it comes, in ``process``: a dict or row on its own, a RecordBatch
    (Table, DataFrame) as the batch it is. Nothing is buffered and nothing is emitted from
    ``finish_bundle``, so every output keeps its input's timestamp, windows and pane by construction,
    and a batched consumer right after (``WriteToJson``) gets every row.

    A dict whose crossed features are plain values is crossed by the core's
    :class:`~beam_cross.core.rows.RowPlan` (one call into the compiled kernel); any other element by
    :class:`~beam_cross.core.elements.ElementCrosser`, which crosses lists, applies the whole value
    rule and names why a row is rejected. With ``route_errors`` the output is ``(True, crossed)`` /
    ``(False, Rejected)`` pairs (split by the transform into two PCollections).

    Counters are kept per bundle and added once at its end; with a ``threshold`` below 1, a bundle
    whose share of rejected rows exceeds it fails there (the share is over the whole bundle)."""

    def __init__(self, crosses, keep_inputs, engine, feature_types, route_errors, threshold=1.0):
        self._args = (crosses, keep_inputs, engine, feature_types)
        self._route_errors = route_errors
        self._threshold = threshold

    def setup(self):
        self._side_crosses = None
        if self._args[0] is not None:
            self._build(self._args[0])

    def _build(self, crosses):
        _, keep_inputs, engine, feature_types = self._args
        self._crosser = ElementCrosser(
            crosses, keep_inputs=keep_inputs, engine=_make_engine(engine), feature_types=feature_types,
            raise_errors=not self._route_errors, make_row=to_row,
        )
        self._plan = self._crosser.row_plan() if engine == "numpy" else None
        self._cross_row = self._plan.cross if self._plan is not None else None
        self._counters = RowCounters()

    def start_bundle(self):
        self._crossed = 0
        self._rejected = {}  # reason -> rows

    def process(self, element, crosses=None):
        # Not a generator: a tuple is cheaper, and most elements take the first branch.
        if crosses is not None and crosses is not self._side_crosses:  # the side input's crosses (LearnCrosses)
            self._build(check_crosses(crosses, require_learned=True))
            self._side_crosses = crosses
        if self._cross_row is not None and type(element) is dict:
            out = self._cross_row(element)
            if out is not None:
                self._crossed += 1
                return ((True, out),) if self._route_errors else (out,)
        outcomes = self._cross_other(element)
        if self._route_errors:
            return outcomes
        return [value for _, value in outcomes]  # the crosser raised on a rejected row

    def _cross_other(self, element) -> list:
        """``(ok, value)`` pairs for an element off the fast path."""
        if frames.is_batch(element):
            out, rejected = frames.cross_batch(self._crosser, element)
            crossed = frames.num_rows(out)
            outcomes = ([(True, out)] if out is not None else []) + [(False, record) for record in rejected]
        else:
            mapping, is_row = as_mapping(element)
            out = self._cross_row(mapping) if is_row and self._cross_row is not None else None
            if out is not None:  # a schema'd row of plain values
                crossed, outcomes, rejected = 1, [(True, to_row(out))], ()
            else:
                outputs, by_position = self._crosser.cross_elements([element])
                rejected = list(by_position.values())
                crossed = 1 - len(rejected)
                outcomes = [(True, outputs[0])] if crossed else [(False, rejected[0])]
        self._crossed += crossed
        for record in rejected:
            self._rejected[record.reason] = self._rejected.get(record.reason, 0) + 1
        return outcomes

    def finish_bundle(self):
        self._counters.add(crossed=self._crossed, rejected=self._rejected)
        bad = sum(self._rejected.values())
        rows = self._crossed + bad
        if self._threshold < 1 and bad > rows * self._threshold:
            raise ValueError(
                f"CrossFeatures rejected {bad} of the {rows} rows of a bundle ({bad / rows:.2%}), more than "
                f"with_exception_handling(threshold={self._threshold}) allows."
            )


def _crossed_of(outcome):
    return (outcome[1],) if outcome[0] else ()


def _rejected_of(outcome):
    return () if outcome[0] else (outcome[1],)


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
        crosses: a list of :class:`~beam_cross.Cross` (or of their dicts, ``Cross.to_dict()``), every
            transform learned; or a side input of them, ``beam.pvalue.AsSingleton(learned)`` of the
            output of :class:`~beam_cross.LearnCrosses`, read on the workers (output elements are
            then typed as their input's kind, without the schema of the new fields).
        keep_inputs: keep the features consumed by the crosses. Defaults to True; False drops
            them (other fields are always kept).
        engine: ``"numpy"`` (the vectorised core) or ``"tensorflow"`` (``tf.sparse.cross_hashed``
            itself, TensorFlow imported on the workers). Both give identical output.
        batch_size: deprecated, and without effect: elements are crossed one by one. Passing it
            warns (``DeprecationWarning``); it will be removed.
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

    def __init__(self, crosses, *, keep_inputs: bool = True, engine: str = "numpy", batch_size: int | None = None,
                 feature_types: Mapping[str, str] | None = None, label: str | None = None):
        super().__init__(label)
        if isinstance(crosses, beam.pvalue.AsSideInput):
            self._side, self._crosses = crosses, None
        else:  # the core's one validation
            self._side, self._crosses = None, check_crosses(crosses, require_learned=True)
        if not isinstance(keep_inputs, bool):
            raise TypeError(f"`keep_inputs` must be a bool. Received: keep_inputs={keep_inputs!r}")
        if engine not in ENGINES:
            raise ValueError(f"`engine` must be one of {ENGINES}. Received: engine={engine!r}")
        if batch_size is not None:
            warnings.warn(
                "CrossFeatures(batch_size=...) has no effect: elements are crossed one by one. "
                "Remove the argument; it will be removed.", DeprecationWarning, stacklevel=2,
            )
        self._keep_inputs = keep_inputs
        self._engine = engine
        self._feature_types = _check_feature_types(feature_types)

    @property
    def crosses(self) -> tuple[Cross, ...] | None:
        """The crosses; None when they come from a side input."""
        return self._crosses

    def default_label(self) -> str:
        if self._crosses is None:
            return "CrossFeatures(side input)"
        return f"CrossFeatures({', '.join(c.name for c in self._crosses)})"

    def display_data(self) -> dict:
        crosses = "from a side input" if self._crosses is None else "; ".join(c.to_json() for c in self._crosses)
        return {
            "crosses": DisplayDataItem(crosses, label="Crosses"),
            "keep_inputs": DisplayDataItem(self._keep_inputs, label="Keep input features"),
            "engine": DisplayDataItem(self._engine, label="Engine"),
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
        if self._crosses is None:  # known on the workers only
            feature_types, output_type = dict(self._feature_types), _same_kind(input_type)
            side = {"crosses": self._side}
        else:
            feature_types = {**declared_kinds(input_type, self._crosses), **self._feature_types}
            output_type = output_row_type(input_type, self._crosses, self._keep_inputs) or _same_kind(input_type)
            side = {}
        cross = _CrossElementsDoFn(self._crosses, self._keep_inputs, self._engine, feature_types, route_errors, threshold)
        if route_errors:
            # One output of (ok, value) pairs, split by two plain steps: the same expansion on every
            # runner (the DaskRunner hands every output of a multi-output ParDo to every consumer).
            outcomes = pcoll | "Cross" >> beam.ParDo(cross, **side)
            crossed = outcomes | "Crossed" >> beam.FlatMap(_crossed_of)
            errors = outcomes | "Rejected" >> beam.FlatMap(_rejected_of)
        else:
            crossed = pcoll | "Cross" >> beam.ParDo(cross, **side)
            errors = None
        crossed.element_type = output_type
        if errors is not None:
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
