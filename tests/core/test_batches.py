"""``beam_cross.core.batches``: an Arrow column holding nulls is fingerprinted on the fast path, with
exactly the values, rows and rejections of the row-by-row path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from beam_cross.core.batches import _fingerprint_rows, as_python, cross_batch, fingerprint_values
from beam_cross.core.spec import Cross

TYPES = {
    "string": (pa.string(), st.text(max_size=12)),
    "large_string": (pa.large_string(), st.text(max_size=12)),
    "binary": (pa.binary(), st.binary(max_size=12)),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
}


def _same(fast, slow):
    assert fast.fingerprints.tolist() == slow.fingerprints.tolist()
    assert fast.row_splits.tolist() == slow.row_splits.tolist()
    assert fast.is_list.tolist() == slow.is_list.tolist()
    assert {row: str(e) for row, e in fast.errors.items()} == {row: str(e) for row, e in slow.errors.items()}
    assert {row: e.reason for row, e in fast.errors.items()} == {row: e.reason for row, e in slow.errors.items()}


@pytest.mark.parametrize("name", sorted(TYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_column_with_nulls_gives_what_the_row_path_gives(name, data):
    arrow_type, values = TYPES[name]
    rows = data.draw(st.lists(st.one_of(st.none(), values), min_size=1, max_size=40))
    assume(None in rows)  # a column without nulls takes the dense path (other tests)
    array = pa.array(rows, arrow_type)
    declared = data.draw(st.sampled_from([None, "string" if "int" not in name else "int"]))
    fast = fingerprint_values(array, "f", declared)
    _same(fast, _fingerprint_rows(as_python(array), "f", declared))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=40),
       st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=1, max_size=40))
def test_crossed_bins_of_columns_with_nulls_match_the_row_path(strings, ints):
    n = min(len(strings), len(ints))
    strings, ints = pa.array(strings[:n], pa.string()), pa.array(ints[:n], pa.int64())
    cross = Cross(["s", "i"], 97)
    fast = cross_batch([cross], {"s": fingerprint_values(strings, "s"), "i": fingerprint_values(ints, "i")}, n)
    slow = cross_batch([cross], {"s": _fingerprint_rows(as_python(strings), "s", None),
                                 "i": _fingerprint_rows(as_python(ints), "i", None)}, n)
    assert fast.kept.tolist() == slow.kept.tolist()
    assert {r: str(e) for r, e in fast.rejected.items()} == {r: str(e) for r, e in slow.rejected.items()}
    assert _ids(fast.bins[cross.name]) == _ids(slow.bins[cross.name])


def _ids(bins) -> list[int]:
    """One bin per kept row (every feature is a scalar), whether the fold gave an array or lists."""
    if isinstance(bins, np.ndarray):
        return bins.tolist()
    lists = bins.to_pylist()
    assert all(len(ids) == 1 for ids in lists)
    return [ids[0] for ids in lists]
