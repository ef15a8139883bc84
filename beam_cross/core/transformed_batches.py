"""The ids of a transformed feature over a batch, as the :class:`~beam_cross.core.batches.FeatureValues`
a cross folds: the fast path over a whole column, each bad row rejected on its own otherwise."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from beam_cross.core import errors
from beam_cross.core.arrow_values import is_list_type
from beam_cross.core.batches import MISSING_VALUE, FeatureValues, as_python, row_error
from beam_cross.core.columns import FeatureColumn, check_offsets
from beam_cross.core.errors import FeatureError
from beam_cross.core.transforms import transformed_column


def transform_values(values, transform) -> FeatureValues:
    """The ids of ``transform`` over one feature (a list of Python values per row, or an Arrow array),
    fingerprinted as the int64 ids a cross hashes; each row rejected on its own (see :func:`fingerprint_values`).

    ``raw`` holds the ids (an Arrow array, or per row an int or a list of ints), for the TF engine."""
    feature = transform.name
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        listed = is_list_type(array.type)
        if array.null_count == 0 and not (listed and array.values.null_count):
            try:
                column = transformed_column(array, transform)
            except FeatureError as error:
                if error.reason == errors.MALFORMED:
                    raise
            else:
                return _transformed(column, np.ones(len(array), bool) if listed else None)
        check_offsets(array, feature)
        values = as_python(array)
    else:
        try:
            column = transformed_column(values, transform)
        except FeatureError:
            column = None
        if column is not None and (column.row_splits is None or not any(value is None for value in values)):
            is_list = None
            if column.row_splits is not None:
                is_list = np.fromiter(map(errors.is_list_value, values), bool, len(values))
            return _transformed(column, is_list)
    return _transform_rows(values, transform)


def _transformed(column: FeatureColumn, is_list) -> FeatureValues:
    ids = pa.array(column.fingerprints.view(np.int64))
    if column.row_splits is None:
        return FeatureValues(column.fingerprints, None, None, {}, ids)
    raw = pa.LargeListArray.from_arrays(pa.array(column.row_splits), ids)
    return FeatureValues(column.fingerprints, column.row_splits, is_list, {}, raw)


def _transform_rows(values, transform) -> FeatureValues:
    """Slow path: each row transformed on its own, so that a bad value rejects its row only."""
    feature = transform.name
    num_rows = len(values)
    bad: dict[int, FeatureError] = {}
    counts = np.zeros(num_rows, np.int64)
    is_list = np.zeros(num_rows, bool)
    parts, raw = [], [None] * num_rows
    for row, value in enumerate(values):
        if value is MISSING_VALUE or value is None:
            bad[row] = row_error(feature, errors.MISSING if value is MISSING_VALUE else errors.NULL, value)
            continue
        try:
            column = transformed_column([value], transform)
        except FeatureError as error:
            bad[row] = FeatureError(feature, error.reason, error.detail, error.value)
            continue
        is_list[row] = column.row_splits is not None
        counts[row] = len(column.fingerprints)
        parts.append(column.fingerprints)
        ids = column.fingerprints.view(np.int64).tolist()
        raw[row] = ids if is_list[row] else ids[0]
    splits = np.zeros(num_rows + 1, np.int64)
    np.cumsum(counts, out=splits[1:])
    fingerprints = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    return FeatureValues(fingerprints, splits, is_list, bad, raw)
