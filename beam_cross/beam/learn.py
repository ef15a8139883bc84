"""``LearnCrosses``: the learned parameters of a spec's unlearned transforms, computed by a Beam pipeline.

``Bucketize(name, num_buckets=k)`` learns ``k - 1`` boundaries, ``Lookup(name, max_tokens=...)`` a
vocabulary (:mod:`beam_cross.core.learning`). ``LearnCrosses(crosses)`` reads the elements
``CrossFeatures`` reads (dicts, schema'd rows, RecordBatches, Tables, DataFrames) and gives a
singleton PCollection: the tuple of :class:`~beam_cross.Cross` with every unlearned transform learned.
``CrossFeatures`` takes it as a side input, so one pipeline learns and crosses::

    learned = rows | LearnCrosses(crosses)
    crossed = rows | CrossFeatures(beam.pvalue.AsSingleton(learned))

Memory is bounded by the statistics, not the input: a vocabulary is counted per ``(token)`` with a
combiner (``CombinePerKey(sum)``), then the ``max_tokens`` most frequent are kept by ``Top`` (exactly
Keras ``adapt``'s order, count descending, ties by token descending); quantiles come from a
:class:`~beam_cross.core.quantiles.QuantileSketch` combiner: the algorithm and sizing of Beam's
``ApproximateQuantilesCombineFn`` (Manku-Rajagopalan-Lindsay) on NumPy arrays (Beam's own sorts Python
lists, and is some ten times slower), whose memory is bounded by ``epsilon`` alone.
"""

from __future__ import annotations

import contextlib

import apache_beam as beam
import numpy as np
import pyarrow as pa

from beam_cross.beam import frames
from beam_cross.core.elements import as_mapping
from beam_cross.core.errors import MISSING, FeatureError
from beam_cross.core.learning import exact_quantiles, learned, learning_values, token_counts, unlearned_transforms
from beam_cross.core.lookup import Lookup
from beam_cross.core.quantiles import QuantileSketch
from beam_cross.core.raw_values import STRING
from beam_cross.core.spec import check_crosses
from beam_cross.core.transforms import Bucketize

__all__ = ["LearnCrosses"]

_NUMBERS, _TOKENS = "numbers", "tokens"
_NO_LIMIT = 2**62


def _columns(element):
    """``(get column, rows)`` of an element: a one-row column per field of a dict or row, the columns of a batch."""
    if frames.is_batch(element):
        if frames.is_dataframe(element):
            element = pa.Table.from_pandas(element, preserve_index=False)
        batch = frames._table_as_batch(element) if isinstance(element, pa.Table) else element
        names = set(batch.schema.names)
        return (lambda name: batch.column(name) if name in names else None), batch.num_rows
    mapping, _ = as_mapping(element)
    if mapping is None:
        raise TypeError("LearnCrosses takes dicts, schema'd rows (beam.Row, NamedTuple), pyarrow RecordBatches or "
                        f"Tables, or pandas DataFrames. Received: an element of type {type(element).__name__}")
    return (lambda name: [mapping[name]] if name in mapping else None), 1


class _LearningValues(beam.DoFn):
    """Per element and unlearned transform: ``("numbers", i, [floats])`` for a ``Bucketize`` (a batch for
    the quantiles combiner), ``("tokens", i, (kind, token), count)`` for a ``Lookup``, the element's
    tokens counted (strings as UTF-8 bytes). One output, read by every branch: the same expansion on
    every runner."""

    def __init__(self, transforms, skip_invalid: bool):
        self._transforms = transforms
        self._skip_invalid = skip_invalid

    def setup(self):
        self._skipped = {
            i: {(STRING, t.encode("utf-8")) if isinstance(t, str) else ("int", t) for kind in (STRING, "int")
                for t in transform.skipped_tokens(kind)}
            for i, transform in enumerate(self._transforms) if isinstance(transform, Lookup)
        }

    def process(self, element):
        get_column, rows = _columns(element)
        for i, transform in enumerate(self._transforms):
            column = get_column(transform.name)
            if column is None:
                if self._skip_invalid:
                    continue
                raise FeatureError(transform.name, MISSING, f"{transform.describe()} learns from this column, "
                                   "missing from the input.", None)
            values = self._values(transform, column)
            if values is None:
                continue
            if isinstance(transform, Bucketize):
                if len(values):
                    yield _NUMBERS, i, values
            else:
                skipped = self._skipped[i]
                for kind, token, count in token_counts(values):
                    if (kind, token) not in skipped:
                        yield _TOKENS, i, (kind, token), count


    def _values(self, transform, column):
        """:func:`learning_values` of the column; with ``skip_invalid``, those of its rows that hold values
        the transform takes (a row the crossing stage rejects is not learned from), or None."""
        try:
            return learning_values(transform, column)
        except FeatureError:
            if not self._skip_invalid:
                raise
        rows = column.to_pylist() if isinstance(column, (pa.Array, pa.ChunkedArray)) else list(column)
        kept = []
        for value in rows:
            with contextlib.suppress(FeatureError):  # a value the crossing rejects
                kept.append(learning_values(transform, [value]))
        if not kept:
            return None
        if isinstance(transform, Bucketize):
            return np.concatenate(kept)
        return [part for parts in kept for part in parts]


class _Quantiles(beam.CombineFn):
    """``[min, num_buckets - 1 quantiles, max]`` of batches of numbers, by a :class:`QuantileSketch`
    (Beam's ``ApproximateQuantilesCombineFn`` algorithm and sizing, on NumPy arrays)."""

    def __init__(self, num_buckets: int, epsilon: float):
        self._num_buckets, self._epsilon = num_buckets, epsilon

    def create_accumulator(self):
        return QuantileSketch(self._epsilon)

    def add_input(self, sketch, values):
        return sketch.add(values)

    def merge_accumulators(self, sketches):
        sketches = iter(sketches)
        return next(sketches).merge(sketches)

    def extract_output(self, sketch):
        return sketch.quantiles(self._num_buckets + 1)


def _numbers_of(tagged, index):
    return ((None, tagged[2]),) if tagged[0] == _NUMBERS and tagged[1] == index else ()


def _keyed(stat):
    return None, stat


def _gathered(_, stats):
    return [s for s in stats if s is not None]


def _tokens_of(tagged, index):
    return ((tagged[2], tagged[3]),) if tagged[0] == _TOKENS and tagged[1] == index else ()


def _by_kind(counted):
    (kind, token), count = counted
    return kind, (count, token)


def _frequent(counted, min_count):
    return counted[1] >= min_count


def _quantile_stats(keyed, index, num_buckets):
    """The ``num_buckets - 1`` inner quantiles from the combiner's ``[min, q_1, ..., q_k-1, max]``; with
    fewer values than that, the combiner gives them all, sorted, and they are ranked exactly."""
    output = keyed[1]
    inner = output[1:-1] if len(output) == num_buckets + 1 else exact_quantiles(output, num_buckets)
    return index, inner


def _count_stats(top, index):
    kind, pairs = top
    return index, [(token, count) for count, token in pairs]


def _learn(stats, crosses, transforms):
    by_transform = {t: [] for t in transforms if isinstance(t, Lookup)}
    for index, payload in stats:
        if isinstance(transforms[index], Lookup):
            by_transform[transforms[index]].extend(payload)
        else:
            by_transform[transforms[index]] = payload
    for transform in transforms:
        if transform not in by_transform:  # no number at all
            by_transform[transform] = []
    return learned(crosses, by_transform)


class LearnCrosses(beam.PTransform):
    """The crosses with their unlearned transforms learned from the input: a singleton PCollection
    holding a tuple of :class:`~beam_cross.Cross` (the learned spec), ready for
    ``CrossFeatures(beam.pvalue.AsSingleton(learned))`` or for writing (``beam_cross.core.spec_file``).

    - ``Lookup(name, max_tokens=..., min_count=...)``: the exact vocabulary Keras ``adapt`` learns
      (every token counted exactly; see :meth:`~beam_cross.Lookup.learn`).
    - ``Bucketize(name, num_buckets=k)``: boundaries from a quantile sketch run as Beam's
      ``ApproximateQuantilesCombineFn`` runs (``k + 1`` quantiles, the ``k - 1`` inner ones kept), then as
      float32, deduplicated
      (:meth:`~beam_cross.Bucketize.learn`). **Bound**: each approximate quantile is a value of the
      column whose rank is within ``epsilon * N`` of the exact quantile's rank ``(i * N - 1) // k``
      (Beam's guarantee for ``N`` below 10**9 values; :func:`beam_cross.core.learning.rank_error`
      measures it). Keras ``Discretization(num_bins=k).adapt`` interpolates between the points of
      its own summary and keeps repeated boundaries; these boundaries are values of the column, and
      repeated ones are merged (a column with heavy ties has fewer buckets).

    NaN is not learned from (it goes to the last bucket); a ``Lookup`` of style ``"keras"`` never
    learns its OOV token (``"[UNK]"`` / ``-1``, as Keras removes it from its counts), one of style
    ``"feature_column"`` never learns ``""`` / ``-1`` (which feature columns drop before a lookup).

    Args:
        crosses: a list of :class:`~beam_cross.Cross` (or their dicts); learned transforms and raw
            columns are kept as they are.
        epsilon: the quantiles' rank error bound, as a share of the values. Defaults to 0.001.
        skip_invalid: learn from the values the transforms take and skip a row's value that is not
            one (``None``, a string for a ``Bucketize``), or a missing column: what
            ``CrossFeatures.with_exception_handling()`` would reject. Defaults to False: such a row
            fails the pipeline with a :class:`~beam_cross.FeatureError`.

    >>> from beam_cross import Bucketize, Cross, CrossFeatures, Lookup
    >>> from apache_beam.testing.util import assert_that, equal_to
    >>> crosses = [Cross([Bucketize("age", num_buckets=2), Lookup("country", max_tokens=2)], 100)]
    >>> rows = [{"age": a, "country": c} for a, c in [(15, "fr"), (30, "fr"), (45, "us"), (60, "fr")]]
    >>> spec = [Cross([Bucketize("age", [30], num_buckets=2), Lookup("country", ["fr"], max_tokens=2)], 100)]
    >>> expected = spec[0].apply({"age": [r["age"] for r in rows], "country": [r["country"] for r in rows]})
    >>> with beam.Pipeline("FnApiRunner") as p:
    ...     elements = p | beam.Create(rows)
    ...     learned = elements | LearnCrosses(crosses)
    ...     _ = assert_that(learned, equal_to([tuple(spec)]), label="spec")
    ...     crossed = elements | CrossFeatures(beam.pvalue.AsSingleton(learned))
    ...     _ = assert_that(crossed | beam.Map(lambda r: r["age_X_country"]), equal_to(expected.tolist()))
    """

    def __init__(self, crosses, *, epsilon: float = 1e-3, skip_invalid: bool = False, label: str | None = None):
        super().__init__(label)
        self._crosses = check_crosses(crosses)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon < 1:
            raise ValueError(f"`epsilon` must be a number between 0 and 1. Received: epsilon={epsilon!r}")
        if not isinstance(skip_invalid, bool):
            raise TypeError(f"`skip_invalid` must be a bool. Received: skip_invalid={skip_invalid!r}")
        self._epsilon = float(epsilon)
        self._skip_invalid = skip_invalid
        self._transforms = unlearned_transforms(self._crosses)

    @property
    def crosses(self):
        return self._crosses

    @property
    def transforms(self):
        """The transforms this learns, in the order of the spec."""
        return self._transforms

    def default_label(self) -> str:
        return f"LearnCrosses({', '.join(c.name for c in self._crosses)})"

    def expand(self, pcoll):
        crosses, transforms = self._crosses, self._transforms
        tagged = pcoll | "Values" >> beam.ParDo(_LearningValues(transforms, self._skip_invalid))
        branches = []
        for i, transform in enumerate(transforms):
            step = f"{i} {transform.name}"
            if isinstance(transform, Bucketize):
                combiner = _Quantiles(transform.num_buckets, self._epsilon)
                branches.append(
                    tagged
                    | f"Numbers {step}" >> beam.FlatMap(_numbers_of, i)
                    | f"Quantiles {step}" >> beam.CombinePerKey(combiner)
                    | f"Boundaries {step}" >> beam.Map(_quantile_stats, i, transform.num_buckets))
            else:
                most = transform.most_tokens
                branches.append(
                    tagged
                    | f"Tokens {step}" >> beam.FlatMap(_tokens_of, i)
                    | f"Count {step}" >> beam.CombinePerKey(sum)
                    | f"Frequent {step}" >> beam.Filter(_frequent, transform.min_count)
                    | f"By kind {step}" >> beam.Map(_by_kind)
                    | f"Top {step}" >> beam.combiners.Top.PerKey(_NO_LIMIT if most is None else most)
                    | f"Vocabulary {step}" >> beam.Map(_count_stats, i))
        # Keyed combines only (one key), and a seed so that the gathering always has an element: Beam's
        # DaskRunner mis-evaluates CombineGlobally (its default, injected through a side input) when the
        # input spans several partitions.
        seed = pcoll.pipeline | "Seed" >> beam.Create([(None, None)])
        stats = ([seed] + [b | f"Key {i}" >> beam.Map(_keyed) for i, b in enumerate(branches)]
                 | "Statistics" >> beam.Flatten()
                 | "Gather" >> beam.CombinePerKey(beam.combiners.ToListCombineFn())
                 | "Gathered" >> beam.MapTuple(_gathered))
        return stats | "Learn" >> beam.Map(_learn, crosses, transforms)
