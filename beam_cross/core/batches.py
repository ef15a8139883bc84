"""Crossing a batch of rows at once: feature columns in, fingerprints folded by the core, bins and per-row rejections out.

No Beam here: :mod:`beam_cross.beam.transforms` buffers elements into batches and calls
:func:`cross_batch`. Every decision is made per row, so a row's bins, and whether it is rejected,
never depend on the other rows of its batch:

- a value is a string (``str`` / ``bytes``), an integer, or a list of them (a multivalent value:
  the row gets the cartesian cross, as a list); a row whose features are all scalars gets a scalar;
- each value has its own kind: a column may hold strings in some rows and integers in others,
  unless ``feature_types`` declares the feature's kind (then the other kind is rejected). A list
  value must hold one kind, as a TensorFlow tensor does;
- a missing feature, ``None`` (also a null Arrow list), a float, a bool, a nested list, an integer
  outside int64/uint64 or a value of the wrong declared kind rejects the row, with a reason from
  :mod:`beam_cross.core.errors`.

The fast path hands each whole column to the core (:func:`beam_cross.feature_column`); only when
the core rejects a column are its rows checked one by one, to find the bad ones and fingerprint
the rest (still a column at a time).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core._fingerprint import offset_steps
from beam_cross.core.arrow_values import arrow_kind, is_list_type
from beam_cross.core.columns import FeatureColumn, check_offsets, feature_column, kind_of
from beam_cross.core.cross import fold_columns
from beam_cross.core.errors import FeatureError
from beam_cross.core.spec import Cross

KINDS = ("string", "int")

class _Missing:
    """Stands for a feature absent from a row (distinct from an explicit None)."""

    def __repr__(self):
        return "<missing>"


MISSING_VALUE = _Missing()

@dataclass
class FeatureValues:
    """One feature over a batch, fingerprinted.

    ``row_splits`` is None when every row holds one value; otherwise row ``i`` owns
    ``fingerprints[row_splits[i]:row_splits[i + 1]]`` and ``is_list[i]`` says whether the row gave a
    list (its crosses are then a list) or a scalar. Rejected rows own no values and are in ``errors``.
    ``raw`` is the column as given (a list of Python values or an Arrow array), for the TF engine.
    """

    fingerprints: np.ndarray
    row_splits: np.ndarray | None
    is_list: np.ndarray | None
    errors: dict[int, FeatureError]
    raw: object = field(repr=False, default=None)
    one_per_row: bool | None = field(repr=False, default=None)  # cached by _one_value_per_row


def row_error(feature, reason, value, detail=None) -> FeatureError:
    """The FeatureError of one row's ``value`` of ``feature``, with the reason's standard detail unless given."""
    return FeatureError(feature, reason, detail or errors.detail_for(reason, value), value)


def _check_item(item, feature, declared):
    """The kind of one value, or the FeatureError rejecting it."""
    kind = kind_of(item)
    if kind not in KINDS:
        if kind == errors.NESTED:
            return row_error(feature, errors.NESTED, item)
        return row_error(feature, kind, item)
    if declared is not None and kind != declared:
        return row_error(feature, errors.MIXED_KINDS, item, f"the feature is declared as `{declared}`, this value is not.")
    return kind


def _fingerprint_rows(values, feature, declared) -> FeatureValues:
    """Slow path: check each row, then fingerprint the good values a kind at a time."""
    num_rows = len(values)
    bad: dict[int, FeatureError] = {}
    counts = np.zeros(num_rows, np.int64)
    is_list = np.zeros(num_rows, bool)
    strings, string_rows, ints, int_rows = [], [], [], []
    for row, value in enumerate(values):
        if value is MISSING_VALUE:
            bad[row] = row_error(feature, errors.MISSING, value)
            continue
        listed = errors.is_list_value(value)
        items = list(value) if listed else [value]
        kinds = set()
        for item in items:
            kind = _check_item(item, feature, declared)
            if isinstance(kind, FeatureError):
                bad[row] = kind
                break
            kinds.add(kind)
        if row in bad:
            continue
        if len(kinds) > 1:
            bad[row] = row_error(feature, errors.MIXED_KINDS, value, "a list value must hold only strings or only integers, not both.")
            continue
        is_list[row] = listed
        counts[row] = len(items)
        if kinds == {"string"}:
            strings.extend(items)
            string_rows.extend([row] * len(items))
        elif kinds == {"int"}:
            ints.extend(items)
            int_rows.extend([row] * len(items))
    splits = np.zeros(num_rows + 1, np.int64)
    np.cumsum(counts, out=splits[1:])
    fingerprints = np.zeros(splits[-1], np.uint64)
    # Values keep their row order within each kind, and one row holds one kind: place them by row.
    for items, rows in ((strings, string_rows), (ints, int_rows)):
        if not items:
            continue
        # Every item is checked: the core takes them as they are (its fast path) or one by one.
        column = feature_column(items, feature).fingerprints
        rows = np.asarray(rows, np.int64)
        first = np.searchsorted(rows, rows, side="left")  # index of each row's first value in `items`
        position = splits[rows] + (np.arange(len(rows)) - first)
        fingerprints[position] = column
    return FeatureValues(fingerprints, splits, is_list, bad, values)


def _first_kind(values):
    for value in values:
        if errors.is_list_value(value):
            if len(value):
                return kind_of(value[0])
        else:
            return kind_of(value)
    return None


def fingerprint_values(values, feature: str, declared: str | None = None) -> FeatureValues:
    """Fingerprints of one feature: ``values`` is a list (one Python value per row) or an Arrow array."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _fingerprint_arrow(values, feature, declared)
    try:
        column = feature_column(values, feature)
    except FeatureError:
        return _fingerprint_rows(values, feature, declared)
    if declared is not None and _first_kind(values) not in (None, declared):
        return _fingerprint_rows(values, feature, declared)
    if column.row_splits is None:
        return FeatureValues(column.fingerprints, None, None, {}, values)
    if any(value is None for value in values):  # the core reads a None list as "no values"; we reject it
        return _fingerprint_rows(values, feature, declared)
    is_list = np.fromiter(map(errors.is_list_value, values), bool, len(values))
    return FeatureValues(column.fingerprints, column.row_splits, is_list, {}, values)


def _fingerprint_arrow(array, feature, declared) -> FeatureValues:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    listed = is_list_type(array.type)
    clean = array.null_count == 0 and not (listed and array.values.null_count)
    kind_fits = declared is None or arrow_kind(array.type) in (None, declared)  # else each value is checked
    if clean:
        try:
            column = feature_column(array, feature)  # checks the offsets first
        except FeatureError as error:
            if error.reason == errors.MALFORMED:
                raise
        else:
            if kind_fits or len(column.fingerprints) == 0:
                is_list = None if column.row_splits is None else np.ones(len(array), bool)
                return FeatureValues(column.fingerprints, column.row_splits, is_list, {}, array)
    check_offsets(array, feature)  # a malformed array would read as wrong values below
    if not listed and array.null_count and kind_fits:
        return _fingerprint_with_nulls(array, feature, declared)
    return _fingerprint_rows(as_python(array), feature, declared)


def _fingerprint_with_nulls(array, feature, declared) -> FeatureValues:
    """A one-value-per-row Arrow array holding nulls: the valid values fingerprinted together (the
    fast path), each null row rejected as the slow path rejects it; the same FeatureValues as
    :func:`_fingerprint_rows` gives (a null row holds no value)."""
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    try:
        column = feature_column(array.filter(pa.array(valid)), feature)
    except FeatureError as error:
        if error.reason == errors.MALFORMED:
            raise
        return _fingerprint_rows(as_python(array), feature, declared)
    splits = np.zeros(len(array) + 1, np.int64)
    np.cumsum(valid, out=splits[1:])
    bad = {row: _check_item(None, feature, declared) for row in np.flatnonzero(~valid).tolist()}
    return FeatureValues(column.fingerprints, splits, np.zeros(len(array), bool), bad, array)


def as_python(array) -> list:
    """The values as Python objects; strings as their bytes, so that a string column holding
    invalid UTF-8 reads as the bytes the fast path hashes instead of failing to decode."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    value_type = array.type.value_type if is_list_type(array.type) else array.type
    if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
        binary = pa.large_binary()
        array = array.cast(binary if value_type == array.type else pa.large_list(binary))
    return array.to_pylist()


def missing_feature(feature: str, num_rows: int) -> FeatureValues:
    """A feature absent from a whole batch (an Arrow column not in the RecordBatch)."""
    bad = {row: row_error(feature, errors.MISSING, MISSING_VALUE) for row in range(num_rows)}
    return FeatureValues(np.zeros(0, np.uint64), np.zeros(num_rows + 1, np.int64), np.zeros(num_rows, bool), bad)


@dataclass
class CrossedBatch:
    """The outcome of crossing a batch.

    ``kept`` are the indices of the rows crossed (ascending); ``rejected`` maps every other row to
    the error that rejected it. ``bins[name]`` holds, for the kept rows, either an int64 array (one
    bin per row) or a list-typed Arrow array (a list of bins per row) with ``scalar[name]`` marking
    the rows whose features were all scalars (each has exactly one bin).
    """

    kept: np.ndarray
    rejected: dict[int, FeatureError]
    bins: dict[str, object]
    scalar: dict[str, np.ndarray | None]


def _folded(cross: Cross, columns: list[FeatureValues], num_rows: int, dense: bool):
    """The fold of the cross over the columns' fingerprints, straight into the core (no
    conversion): ``dense`` when every row holds exactly one value per feature (int64 bins, one
    per row), else the cartesian fold of each row's values (a list-typed Arrow array)."""
    feature_columns = [
        FeatureColumn(c.fingerprints, None if dense or c.row_splits is None else c.row_splits, (num_rows,))
        for c in columns
    ]
    return fold_columns(feature_columns, cross.num_bins, cross.hash_key)


def _cross_fingerprints(cross: Cross, columns: list[FeatureValues], num_rows: int):
    """(bins, scalar mask) over all rows; rows with errors get no bins. A row whose features are
    all scalars gets a scalar (mask None: every row is one)."""
    if all(c.row_splits is None and not c.errors for c in columns):
        return _folded(cross, columns, num_rows, dense=True), None
    if all(_one_value_per_row(c) for c in columns):
        # Lists of exactly one value (TFXIO's layout for a scalar feature): the dense fold gives
        # the same bins without the cartesian bookkeeping.
        bins = _folded(cross, columns, num_rows, dense=True)
        lists = pa.ListArray.from_arrays(_unit_offsets(num_rows), pa.array(bins))
        return lists, _scalar_mask(columns, num_rows)
    return _folded(cross, columns, num_rows, dense=False), _scalar_mask(columns, num_rows)


def cross_batch(crosses, columns: dict[str, FeatureValues], num_rows: int, *, engine=None,
                rejected: dict[int, FeatureError] | None = None) -> CrossedBatch:
    """Crosses every cross over a batch; a row fails if any of its crosses fails.

    ``columns`` maps each input of ``crosses`` (``Cross.inputs``: a raw feature name, or a transform
    of one) to its :class:`FeatureValues`. ``engine``
    is None (the NumPy core) or a callable ``engine(cross, columns, rows) -> list-typed Arrow array``
    computing the bins of the given rows another way (see :mod:`beam_cross.tf.engine`).
    ``rejected`` holds rows already rejected by the caller. A row's error is the first found:
    the caller's, then crosses in order, features in order.
    """
    rejected = dict(rejected or {})
    per_cross = []
    for cross in crosses:
        feature_columns = [columns[f] for f in cross.inputs]  # a raw name or a transform
        for column in feature_columns:
            for row, error in column.errors.items():
                rejected.setdefault(row, error.in_cross(cross.name))
        per_cross.append((cross, feature_columns))
    computed = {}
    for cross, feature_columns in per_cross:
        if engine is not None and cross.output_mode != "one_hot":
            continue  # the NumPy bins are only needed to check one_hot rows
        bins, scalar = _cross_fingerprints(cross, feature_columns, num_rows)
        computed[cross.name] = (bins, scalar)
        if cross.output_mode == "one_hot" and scalar is not None:
            lengths = _list_lengths(bins)
            for row in np.flatnonzero(lengths != 1).tolist():
                if row not in rejected:
                    rejected[row] = FeatureError(
                        "/".join(cross.features), errors.SHAPE,
                        "output_mode='one_hot' needs exactly one crossed value per row (single-valued features).",
                        f"{int(lengths[row])} crossed values", None, cross.name,
                    )
    kept = np.arange(num_rows)
    if rejected:
        kept = np.setdiff1d(kept, np.fromiter(rejected, np.int64, len(rejected)), assume_unique=True)
    result = CrossedBatch(kept, rejected, {}, {})
    take = pa.array(kept) if len(rejected) else None
    for cross, feature_columns in per_cross:
        if engine is not None:
            bins, scalar = engine(cross, feature_columns, kept), _scalar_mask(feature_columns, num_rows, kept)
        else:
            bins, scalar = computed[cross.name]
            if take is not None:
                bins = bins[kept] if isinstance(bins, np.ndarray) else bins.take(take)
                scalar = scalar[kept] if scalar is not None else None
        result.bins[cross.name] = bins
        result.scalar[cross.name] = scalar
    return result


@functools.lru_cache(maxsize=4)
def _unit_offsets(num_rows: int) -> pa.Array:
    """The offsets ``0, 1, ..., num_rows`` of one value per row (Arrow arrays are immutable: batches
    of one size share them)."""
    return pa.array(np.arange(num_rows + 1, dtype=np.int32))


def _one_value_per_row(column: FeatureValues) -> bool:
    if column.one_per_row is None:  # computed once per column, however many crosses use it
        splits = column.row_splits
        column.one_per_row = not column.errors and (splits is None or (
            len(column.fingerprints) == len(splits) - 1 and offset_steps(splits)[1]
        ))
    return column.one_per_row


def _scalar_mask(columns: list[FeatureValues], num_rows: int, kept: np.ndarray | None = None) -> np.ndarray:
    """Per row (of ``kept``, or of all ``num_rows``), whether every feature gave a scalar."""
    scalar = np.ones(num_rows if kept is None else len(kept), bool)
    for c in columns:
        if c.is_list is not None:
            scalar &= ~(c.is_list if kept is None else c.is_list[kept])
    return scalar


def _list_lengths(bins) -> np.ndarray:
    offsets = bins.offsets.to_numpy()
    return np.diff(offsets)
