"""Learned parameters: the boundaries of ``Bucketize(name, num_buckets=k)`` and the vocabulary of an
unlearned ``Lookup(name, max_tokens=...)``, from a column's statistics, and crosses with them filled in.

The statistics of one transform are what its ``learn`` method takes:

- :class:`~beam_cross.Bucketize`: the ``k - 1`` inner quantiles of the column's numbers (NaN left
  out). :func:`exact_quantiles` gives them exactly: the values of ranks ``(i * N - 1) // k`` for
  ``i = 1 .. k - 1`` (0-based, in sorted order), the ranks Beam's ``ApproximateQuantiles`` picks when
  it keeps every value; :func:`rank_error` measures how far approximate ones are.
- :class:`~beam_cross.Lookup`: the count of each token (:func:`exact_counts`).

:func:`learned` takes them per transform (as :func:`unlearned_transforms` lists them) and returns the
crosses with every unlearned transform replaced by its learned form; :func:`learn_exactly` computes
the statistics of in-memory columns itself. ``beam_cross.LearnCrosses`` computes them with bounded
memory in a Beam pipeline.

>>> from beam_cross.core.spec import Cross
>>> from beam_cross.core.transforms import Bucketize, Lookup
>>> crosses = [Cross([Bucketize("age", num_buckets=3), Lookup("country", max_tokens=3)], 100)]
>>> columns = {"age": [15, 22, 30, 41, 58, 63], "country": ["fr", "us", "fr", "de", "us", "fr"]}
>>> [c.inputs for c in learn_exactly(crosses, columns)]
[(Bucketize(name='age', boundaries=(22.0, 41.0), num_buckets=3), Lookup('country', ['fr', 'us'], num_oov_indices=1, style='keras', max_tokens=3))]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core.lookup import Lookup
from beam_cross.core.raw_values import INT, STRING, raw_values
from beam_cross.core.spec import Cross, check_crosses
from beam_cross.core.transform_base import Transform
from beam_cross.core.transforms import Bucketize

__all__ = ["exact_counts", "exact_quantiles", "learn_exactly", "learned", "learning_values", "rank_error",
           "unlearned_transforms"]


def unlearned_transforms(crosses) -> tuple[Transform, ...]:
    """The distinct unlearned transforms of ``crosses``, in the order they first appear (two crosses
    sharing ``Bucketize("age", num_buckets=4)`` learn it once).

    >>> from beam_cross.core.transforms import Bucketize
    >>> unlearned_transforms([Cross([Bucketize("age", num_buckets=4), "country"], 10)])
    (Bucketize(name='age', boundaries=None, num_buckets=4),)
    """
    seen: dict = {}
    for cross in check_crosses(crosses):
        for transform in cross.transforms:
            if transform is not None and not transform.learned:
                seen.setdefault(transform, None)
    return tuple(seen)


def learned(crosses, stats: Mapping) -> tuple[Cross, ...]:
    """``crosses`` with every unlearned transform learned from ``stats[transform]`` (its quantiles or
    token counts, see the module docstring); learned transforms and raw columns are kept as they are.

    >>> from beam_cross.core.transforms import Bucketize
    >>> age = Bucketize("age", num_buckets=3)
    >>> learned([Cross([age, "country"], 10)], {age: [25, 40]})[0].inputs[0]
    Bucketize(name='age', boundaries=(25.0, 40.0), num_buckets=3)
    """
    crosses = check_crosses(crosses)
    missing = [t for t in unlearned_transforms(crosses) if t not in stats]
    if missing:
        raise ValueError(f"`stats` lacks the statistics of {', '.join(t.describe() for t in missing)}.")
    done = {t: t.learn(stats[t]) for t in unlearned_transforms(crosses)}
    out = []
    for cross in crosses:
        inputs = [done.get(f, f) if isinstance(f, Transform) else f for f in cross.inputs]
        out.append(Cross(inputs, cross.num_bins, name=cross.name, output_mode=cross.output_mode,
                         hash_key=cross.hash_key))
    return tuple(out)


def learning_values(transform: Transform, values, feature=None):
    """What ``transform`` learns from in a column (any layout :func:`~beam_cross.hashed_cross` takes):
    for a ``Bucketize`` a float64 array of its numbers, NaN left out; for a ``Lookup`` a list of
    ``(kind, tokens)``, the tokens an int64 array or an Arrow binary array (UTF-8 bytes). A value the
    transform does not take is a :class:`~beam_cross.FeatureError`, as when crossing."""
    feature = transform.name if feature is None else feature
    fast = _fast_values(transform, values)
    if fast is not None:
        return fast
    raw = raw_values(values, feature)
    for part in raw.parts:
        if part.kind not in transform.takes:
            transform._refuse(part, raw, feature)
    if isinstance(transform, Bucketize):
        numbers = [part.data.astype(np.float64) for part in raw.parts]
        flat = np.concatenate(numbers) if numbers else np.zeros(0, np.float64)
        return flat[~np.isnan(flat)]
    if isinstance(transform, Lookup):
        return [(part.kind, transform._int64(part, raw, feature) if part.kind == INT else part.data)
                for part in raw.parts]
    raise TypeError(f"{type(transform).__name__} learns nothing.")


def _fast_values(transform, values):
    """:func:`learning_values` of a NumPy or Arrow column without nulls of one plain type, read directly."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and not values.null_count:
        kind = values.type
        if isinstance(transform, Bucketize) and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            values = values.to_numpy(zero_copy_only=False)
        elif isinstance(transform, Lookup) and (pa.types.is_string(kind) or pa.types.is_large_string(kind)
                                                 or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
            return [(STRING, values.cast(pa.large_binary()))]
        elif isinstance(transform, Lookup) and pa.types.is_signed_integer(kind):
            return [(INT, values.cast(pa.int64()).to_numpy())]
        else:
            return None
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "if":
        if isinstance(transform, Bucketize):
            flat = values.astype(np.float64, copy=False)
            return flat[~np.isnan(flat)]
        if values.dtype.kind == "i":
            return [(INT, values.astype(np.int64, copy=False))]
    return None


def token_counts(parts) -> list[tuple[str, object, int]]:
    """``(kind, token, count)`` of the tokens of :func:`learning_values` (a Lookup's), counted by Arrow:
    strings as UTF-8 ``bytes``, integers as ints."""
    out = []
    for kind, data in parts:
        counted = pc.value_counts(pa.array(data) if isinstance(data, np.ndarray) else data)
        out.extend(zip([kind] * len(counted), counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
    return out


def exact_counts(transform: Lookup, values, feature=None) -> Counter:
    """The count of each token of a column, exactly: strings as ``str``, integers as ints."""
    counts: Counter = Counter()
    for kind, token, count in token_counts(learning_values(transform, values, feature)):
        counts[token.decode("utf-8") if kind == STRING else token] += count
    return counts


def exact_quantiles(values, num_buckets: int) -> list[float]:
    """The ``num_buckets - 1`` inner quantiles of ``values`` (numbers; NaN left out), exactly: the
    values of ranks ``(i * N - 1) // num_buckets``, ``i = 1 .. num_buckets - 1``, of the sorted values.

    >>> exact_quantiles(range(100), 4)
    [24.0, 49.0, 74.0]
    """
    data = np.asarray(values, np.float64).reshape(-1)
    data = np.sort(data[~np.isnan(data)])
    if not len(data):
        return []
    ranks = (np.arange(1, num_buckets) * len(data) - 1) // num_buckets
    return data[np.clip(ranks, 0, len(data) - 1)].tolist()


def rank_error(values, boundaries, num_buckets: int) -> float:
    """How far ``boundaries`` are from the exact inner quantiles of ``values``, in rank, as a share of
    the values: the larger of (the farthest target rank ``(i * N - 1) // k`` from its nearest boundary)
    and (the farthest boundary from its nearest target rank), over N. A boundary covers the ranks of
    the values equal to it (as float32, how ``Bucketize`` compares), so ties cost nothing, and the
    measure holds for deduplicated boundaries.

    >>> rank_error(range(100), [24, 49, 74], 4), rank_error(range(100), [29, 49, 74], 4)
    (0.0, 0.05)
    """
    data = np.asarray(values, np.float64).reshape(-1)
    data = np.sort(data[~np.isnan(data)].astype(np.float32))
    n = len(data)
    bounds = np.asarray(boundaries, np.float64).astype(np.float32)
    low = np.searchsorted(data, bounds, side="left")
    high = np.searchsorted(data, bounds, side="right") - 1  # the ranks a boundary covers; high < low if none
    present = high >= low  # a boundary no value equals sits between ranks low - 1 and low
    lo = np.where(present, low, low - 0.5)[None, :]
    hi = np.where(present, high, low - 0.5)[None, :]
    targets = ((np.arange(1, num_buckets) * n - 1) // num_buckets)[:, None]
    distance = np.maximum(0, np.maximum(lo - targets, targets - hi))  # target x boundary
    return float(max(distance.min(axis=1).max(), distance.min(axis=0).max()) / n)


def learn_exactly(crosses, columns: Mapping) -> tuple[Cross, ...]:
    """:func:`learned` with exact statistics of in-memory ``columns`` (a mapping of column name to
    column): exact quantiles and counts. For tests and small data; ``LearnCrosses`` scales."""
    stats = {}
    for transform in unlearned_transforms(crosses):
        if transform.name not in columns:
            raise KeyError(f"{transform.describe()} learns from column `{transform.name}`, missing from the input")
        column = columns[transform.name]
        if isinstance(transform, Bucketize):
            stats[transform] = exact_quantiles(learning_values(transform, column), transform.num_buckets)
        else:
            stats[transform] = exact_counts(transform, column)
    return learned(crosses, stats)

