"""The one crossing path from elements to bins: instance dicts, schema'd rows and Arrow RecordBatches,
and the one shape of a row that could not be crossed (:class:`Rejected`).

No Beam here: every front door that crosses rows goes through an :class:`ElementCrosser` (the Beam
DoFn of :mod:`beam_cross.beam.transforms`, MLTransform's provider, the command's chunks, the tf.Transform
job's split). The DoFn crosses a dict of plain values with the core's
:class:`~beam_cross.core.rows.RowPlan` (:meth:`ElementCrosser.row_plan`), and hands every other element
(lists, values the value rule rejects, rows, one RecordBatch) to an :class:`ElementCrosser`, getting
back, per input row, either the crossed element or a :class:`Rejected` record. A batch flows down once:
elements -> one column per feature (:func:`~beam_cross.core.batches.fingerprint_values`) -> the core's
fold (:func:`~beam_cross.core.batches.cross_batch`) -> bins -> output values or columns
(:func:`bins_as_python`, :func:`bins_as_arrow`) -> elements.
"""

from __future__ import annotations

import operator
from collections import deque
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core.arrow_values import is_list_type
from beam_cross.core.batches import MISSING_VALUE, cross_batch, fingerprint_values, missing_feature
from beam_cross.core.errors import FeatureError
from beam_cross.core.rows import RowPlan
from beam_cross.core.spec import Cross
from beam_cross.core.transformed_batches import transform_values


class Rejected(NamedTuple):
    """A row that could not be crossed (or read): the one rejected-row shape of every front door.

    ``element`` is the original element (for a RecordBatch, the row as a dict), ``reason`` one of
    :data:`beam_cross.core.errors.REASONS`, ``feature`` and ``cross`` where the problem was found (None
    when the element itself is not a row), ``message`` the full error text, ``source`` the row's place
    where it has one (the command's ``file:line``).

    Its encodings: :meth:`as_record` (the command's rejected-rows JSON line) and :meth:`as_error_row`
    (Beam YAML's error record).

    >>> r = Rejected({"age": "x"}, "unsupported_type", "age", "age_X_country", "feature `age`: ...", "a.csv:3")
    >>> r.as_record()["message"]
    'a.csv:3: feature `age`: ...'
    >>> r.as_error_row()["stack"]
    "beam_cross.FeatureError(reason='unsupported_type', feature='age', cross='age_X_country')"
    """

    element: Any
    reason: str
    feature: str | None
    cross: str | None
    message: str
    source: str | None = None

    @property
    def placed_message(self) -> str:
        """The message after the row's place, where it has one (``file:line: ...``)."""
        return f"{self.source}: {self.message}" if self.source else self.message

    def as_record(self) -> dict:
        """The JSON-ready record: ``reason``, ``message`` (:attr:`placed_message`), ``feature``,
        ``cross``, ``source`` and ``row``."""
        return {
            "reason": self.reason,
            "message": self.placed_message,
            "feature": self.feature,
            "cross": self.cross,
            "source": self.source,
            "row": self.element,
        }

    def as_error_row(self) -> dict:
        """Beam YAML's error record: ``element``, ``msg`` and ``stack``. The row was checked, not
        crashed, so there is no traceback: ``stack`` names the error type and its machine-readable fields."""
        stack = f"beam_cross.FeatureError(reason={self.reason!r}, feature={self.feature!r}, cross={self.cross!r})"
        return {"element": self.element, "msg": self.placed_message, "stack": stack}


def rejected_from(element, error: FeatureError) -> Rejected:
    return Rejected(element, error.reason, error.feature, error.cross, str(error))


def as_mapping(element):
    """A dict view of a dict, ``beam.Row`` or NamedTuple, and whether it was a row; None otherwise."""
    if isinstance(element, dict):
        return element, False
    as_dict = getattr(element, "_asdict", None)  # beam.Row and NamedTuple both have it
    if callable(as_dict) and not isinstance(element, type):
        return as_dict(), True
    return None, False


class ElementCrosser:
    """Applies ``crosses`` to batches of elements. Picklable; holds no Beam state.

    Args:
        crosses: the validated :class:`~beam_cross.Cross` list.
        keep_inputs: keep the features consumed by the crosses in the outputs.
        engine: None (NumPy core) or a callable computing bins (see :func:`beam_cross.core.batches.cross_batch`).
        feature_types: feature name -> ``"string"`` / ``"int"``, the declared kinds.
        raise_errors: raise the first row's error (a FeatureError, or a TypeError for an element
            that is not a row) instead of returning Rejected records.
        make_row: builds the output of a schema'd row (a ``beam.Row``, NamedTuple) from its dict;
            None gives the dict.
    """

    def __init__(self, crosses, *, keep_inputs=True, engine=None, feature_types=None, raise_errors=False, make_row=None):
        self.raise_errors = raise_errors
        self.make_row = make_row
        self.crosses = tuple(crosses)
        self.keep_inputs = keep_inputs
        self.engine = engine
        self.feature_types = dict(feature_types or {})
        self.features = tuple(dict.fromkeys(f for cross in self.crosses for f in cross.features))
        # What is fingerprinted: each raw feature crossed as it is, and each transform of one.
        self.inputs = tuple(dict.fromkeys(f for cross in self.crosses for f in cross.inputs))
        self._consumed = set(self.features)
        # Cross names that must not already be a field of an element (the output would overwrite it).
        self._guarded = tuple(c.name for c in self.crosses if keep_inputs or c.name not in self._consumed)

    def row_plan(self) -> RowPlan | None:
        """The core's one-row fast path for these crosses (None when a cross is one_hot, whose rows
        the general path checks)."""
        if any(cross.output_mode != "int" or any(cross.transforms) for cross in self.crosses):
            return None  # one_hot rows and transformed features go through the batch path
        return RowPlan(self.crosses, keep_inputs=self.keep_inputs, feature_types=self.feature_types, guarded=self._guarded)

    def _fingerprint(self, get_column, num_rows):
        columns = {}
        for item in self.inputs:
            feature = item if isinstance(item, str) else item.name
            values = get_column(feature)
            if values is None:
                columns[item] = missing_feature(feature, num_rows)
            elif isinstance(item, str):
                columns[item] = fingerprint_values(values, feature, self.feature_types.get(feature))
            else:
                columns[item] = transform_values(values, item)
        return columns

    def _clash(self, name, fields) -> FeatureError:
        return FeatureError(
            name, errors.NAME_CLASH,
            f"the element already has a field `{name}`, which the cross would overwrite; give the cross "
            "another name (Cross(..., name=...)).", f"fields={sorted(map(str, fields))}", None, name,
        )

    def _clashes(self, mappings) -> dict[int, FeatureError]:
        """Row -> error for the rows holding a field named like a cross."""
        clashes: dict[int, FeatureError] = {}
        for name in self._guarded:
            if not any(map(operator.contains, mappings, repeat(name))):  # the common case, in C
                continue
            for row in [i for i, m in enumerate(mappings) if name in m]:
                clashes.setdefault(row, self._clash(name, mappings[row]))
        return clashes

    def _batch_error(self, batch: pa.RecordBatch) -> FeatureError | None:
        """Why a whole RecordBatch cannot be crossed (a cross name already a column, a feature
        named by two columns), or None."""
        names = batch.schema.names
        for name in self._guarded:
            if name in names:
                return self._clash(name, names)
        for feature in self.features:
            if names.count(feature) > 1:
                return FeatureError(
                    feature, errors.NAME_CLASH, "the RecordBatch has two columns of this name; which one to cross is ambiguous.",
                    f"columns={names}", None,
                )
        return None

    def _maybe_raise(self, crossed, in_batch=False):
        if self.raise_errors and crossed.rejected:
            row = min(crossed.rejected)
            error = crossed.rejected[row]
            # A row index only means something inside a RecordBatch; a bundle's order is arbitrary.
            raise FeatureError(error.feature, error.reason, error.detail, error.value, row if in_batch else None, error.cross)

    def cross_elements(self, elements: list) -> tuple[list, dict[int, Rejected]]:
        """Per element, in order, its crossed element (None where rejected), and position -> Rejected."""
        rejected: dict[int, Rejected] = {}
        if set(map(type, elements)) <= {dict}:  # the common case, without bookkeeping
            rows, positions, is_row = elements, None, None
        else:
            rows, positions, is_row = [], [], []
            for position, element in enumerate(elements):
                mapping, row_like = as_mapping(element)
                if mapping is None:
                    error = FeatureError(None, errors.UNSUPPORTED, errors.NOT_A_ROW, element)
                    if self.raise_errors:
                        raise TypeError(str(error))
                    rejected[position] = rejected_from(element, error)
                    continue
                rows.append(mapping)
                positions.append(position)
                is_row.append(row_like)
        outputs: list = [None] * len(elements)
        if not rows:
            return outputs, rejected
        columns = self._fingerprint(lambda f: [row.get(f, MISSING_VALUE) for row in rows], len(rows))
        clashes = self._clashes(rows) if self._guarded else None
        crossed = cross_batch(self.crosses, columns, len(rows), engine=self.engine, rejected=clashes)
        self._maybe_raise(crossed)
        for row, error in crossed.rejected.items():
            position = row if positions is None else positions[row]
            rejected[position] = rejected_from(elements[position], error)
        kept = crossed.kept.tolist()
        kept_rows = rows if len(kept) == len(rows) else [rows[row] for row in kept]
        crossed_rows = self._crossed_mappings(kept_rows, crossed)
        if positions is None and len(kept) == len(rows):
            return crossed_rows, rejected
        for row, out in zip(kept, crossed_rows):
            if is_row is not None and is_row[row] and self.make_row is not None:
                out = self.make_row(out)
            outputs[row if positions is None else positions[row]] = out
        return outputs, rejected

    def _crossed_mappings(self, mappings: list, crossed) -> list[dict]:
        """The output dicts: each input (or its unconsumed fields) plus one field per cross."""
        if self.keep_inputs:
            outs = list(map(dict, mappings))
        else:
            outs = [{k: v for k, v in m.items() if k not in self._consumed} for m in mappings]
        for cross in self.crosses:  # out[name] = value for every row, looped in C
            values = bins_as_python(crossed.bins[cross.name], crossed.scalar[cross.name], cross)
            deque(map(operator.setitem, outs, repeat(cross.name), values), maxlen=0)
        return outs

    def cross_record_batch(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch | None, list[Rejected]]:
        """The crossed rows as one RecordBatch (None if all were rejected), and the rejected rows.

        A RecordBatch that cannot be crossed as a whole (a column named like a cross, a feature
        named twice, malformed Arrow data) has each of its rows rejected with the reason."""
        error = self._batch_error(batch)
        try:
            if error is None:
                names = set(batch.schema.names)
                columns = self._fingerprint(lambda f: batch.column(f) if f in names else None, batch.num_rows)
        except FeatureError as malformed:
            if malformed.reason != errors.MALFORMED:
                raise
            error = malformed
        if error is not None:
            if self.raise_errors:
                raise error
            element = _readable_row if error.reason == errors.MALFORMED else _row_element
            return None, [rejected_from(element(batch, row), error) for row in range(batch.num_rows)]
        crossed = cross_batch(self.crosses, columns, batch.num_rows, engine=self.engine)
        self._maybe_raise(crossed, in_batch=True)
        rejected = [rejected_from(_row_element(batch, row), error) for row, error in sorted(crossed.rejected.items())]
        if batch.num_rows and not len(crossed.kept):
            return None, rejected
        out = batch.take(pa.array(crossed.kept)) if crossed.rejected else batch
        if not self.keep_inputs:
            out = out.select([n for n in out.schema.names if n not in self._consumed])
        for cross in self.crosses:
            listed = any(is_list_type(batch.schema.field(f).type) for f in cross.features if f in names)
            column = bins_as_arrow(crossed.bins[cross.name], crossed.scalar[cross.name], cross, listed)
            out = out.append_column(cross.name, column)
        return out, rejected


def bins_as_python(bins, scalar, cross: Cross) -> list:
    """Per kept row, the cross as a Python value: an int, a list of ints, or a one-hot list."""
    if isinstance(bins, np.ndarray):
        ids = bins.tolist()
        if cross.output_mode == "one_hot":
            return [_one_hot(i, cross.num_bins) for i in ids]
        return ids
    lists = bins.to_pylist()
    if cross.output_mode == "one_hot":
        return [_one_hot(ids[0], cross.num_bins) for ids in lists]
    return [ids[0] if is_scalar else ids for ids, is_scalar in zip(lists, scalar)]


def _one_hot(index: int, depth: int) -> list:
    vector = [0] * depth
    vector[index] = 1
    return vector


def bins_as_arrow(bins, scalar, cross: Cross, listed: bool) -> pa.Array:
    """The cross as an Arrow column: int64, list<int64> (``listed``), or a fixed-size one-hot list."""
    if isinstance(bins, np.ndarray):
        ids = bins
    elif cross.output_mode == "one_hot" or not listed:
        ids = bins.flatten().to_numpy()  # one bin per row, checked before
    else:
        return bins
    if cross.output_mode == "one_hot":
        one_hot = np.zeros((len(ids), cross.num_bins), np.int64)
        one_hot[np.arange(len(ids)), ids] = 1
        return pa.FixedSizeListArray.from_arrays(pa.array(one_hot.reshape(-1)), cross.num_bins)
    return pa.array(ids, pa.int64())


def _row_element(batch: pa.RecordBatch, row: int):
    """A RecordBatch row for a Rejected record: a dict, or, when the batch has two columns of one
    name (a dict would lose one), the one-row RecordBatch."""
    names = batch.schema.names
    if len(set(names)) < len(names):
        return batch.slice(row, 1)
    try:
        return batch.slice(row, 1).to_pylist()[0]
    except (pa.ArrowException, UnicodeDecodeError):  # e.g. invalid UTF-8 in a string column
        return _readable_row(batch, row)


def _readable_row(batch: pa.RecordBatch, row: int) -> dict:
    """The row as a dict of the columns that pass Arrow's full validation: a value of a malformed
    column is left out rather than read as something it is not."""
    readable = {}
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            column.validate(full=True)
            readable[name] = column[row].as_py()
        except (pa.ArrowException, UnicodeDecodeError):
            continue
    return readable
