"""``feature_column`` and ``FeatureError``: shapes, row splits, value bits, and error records.

Fingerprints are checked against pyfarmhash (``farmhash.fingerprint64`` is TF's Fingerprint64).
"""

from __future__ import annotations

import pickle

import farmhash
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from beam_cross import FeatureError, feature_column
from beam_cross.core import errors as reasons
from beam_cross.core.columns import kind_of

# Every test runs on both kernels, the compiled one and the NumPy path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kernel")


def fingerprints(strings) -> list[int]:
    return [farmhash.fingerprint64(s) for s in strings]


@pytest.mark.parametrize(
    ("values", "shape"),
    [
        ("a", ()),
        (b"a", ()),
        (7, ()),
        (np.int8(-7), ()),
        (np.array("a"), ()),
        (["a", "b", "c"], (3,)),
        (("a", "b"), (2,)),
        (np.array([1, 2, 3]), (3,)),
        (np.array([[1], [2]]), (2, 1)),
        (np.array([["a"], ["b"]], dtype=object), (2, 1)),
        (pa.array(["a", "b"]), (2,)),
        (pa.chunked_array([["a"], ["b", "c"]]), (3,)),
        (pa.chunked_array([], pa.string()), (0,)),
        ([], (0,)),
    ],
)
def test_single_valued_shapes(values, shape):
    column = feature_column(values, "f")
    assert column.shape == shape
    assert column.row_splits is None
    assert column.fingerprints.dtype == np.uint64
    assert column.num_rows == (int(np.prod(shape)) if shape else 1)


def test_strings_are_their_utf8_fingerprint64():
    texts = ["", "a", "é", "日本語", "a\x00b", "x" * 100]
    expected = fingerprints(t.encode("utf-8") for t in texts)
    assert feature_column(texts).fingerprints.tolist() == expected
    assert feature_column([t.encode("utf-8") for t in texts]).fingerprints.tolist() == expected
    assert feature_column(pa.array(texts, pa.large_string())).fingerprints.tolist() == expected
    assert feature_column(texts[3]).fingerprints.tolist() == expected[3:4]


@pytest.mark.parametrize("kind", ["U", "S"])
def test_numpy_strings_keep_embedded_nuls(kind):
    texts = ["a\x00b", "\x00\x00x", "plain", ""]
    array = np.array(texts if kind == "U" else [t.encode() for t in texts])
    assert feature_column(array).fingerprints.tolist() == fingerprints(t.encode() for t in texts)


def test_numpy_strings_lose_trailing_nuls_like_numpy_itself():
    # 'U'/'S' arrays cannot hold trailing NULs: the array already holds "a", so "a" is hashed.
    array = np.array(["a\x00", "b"])
    assert array[0] == "a"
    assert feature_column(array).fingerprints.tolist() == fingerprints([b"a", b"b"])


def test_np_bytes_is_numpys_value_less_trailing_nuls():
    # An np.bytes_ keeps its trailing NULs in bytes(value), but NumPy's value of it (as an 'S' item,
    # or through pickling) drops them; a bytes keeps them.
    values = [np.bytes_(b"\x02\n\x00"), np.bytes_(b"\x00"), np.bytes_(b"a\x00b\x00\x00"), b"\x02\n\x00"]
    held = [v if type(v) is bytes else np.array([v]).tolist()[0] for v in values]
    assert held[0] == pickle.loads(pickle.dumps(values[0]))
    assert feature_column(values).fingerprints.tolist() == fingerprints(held)
    assert feature_column(_objects(values * 30)).fingerprints.tolist() == fingerprints(held * 30)
    assert feature_column(values[0]).fingerprints.tolist() == fingerprints(held[:1])
    assert feature_column([values, []]).fingerprints.tolist() == fingerprints(held)
    assert kind_of(values[0]) == "string"


def test_integers_are_their_int64_bits():
    minus_one = [2**64 - 1]
    for values in ([-1], np.array([-1], np.int8), np.array([2**64 - 1], np.uint64), pa.array([-1], pa.int16()),
                   pa.array([2**64 - 1], pa.uint64()), [2**64 - 1], np.array([[-1]], np.int32)):
        assert feature_column(values).fingerprints.tolist() == minus_one
    assert feature_column([-(2**63), 2**63 - 1, 0]).fingerprints.tolist() == [2**63, 2**63 - 1, 0]
    assert feature_column(np.array([255], np.uint8)).fingerprints.tolist() == [255]


def test_mixed_int64_and_uint64_ranges_in_one_column():
    column = feature_column([-1, 2**64 - 1, 2**63, 5])
    assert column.fingerprints.tolist() == [2**64 - 1, 2**64 - 1, 2**63, 5]
    ragged = feature_column([[-1], [], [2**64 - 2, 3]])
    assert ragged.fingerprints.tolist() == [2**64 - 1, 2**64 - 2, 3]
    assert ragged.row_splits.tolist() == [0, 1, 1, 3]


def test_dictionary_array_is_its_values():
    values = ["b", "a", "b", "c"]
    assert feature_column(pa.array(values).dictionary_encode()).fingerprints.tolist() == fingerprints(
        v.encode() for v in values)
    sliced = pa.array(["x", *values]).dictionary_encode().slice(1)
    assert feature_column(sliced).fingerprints.tolist() == fingerprints(v.encode() for v in values)


@pytest.mark.parametrize(
    "values",
    [
        [["a", "b"], [], None, ["c"]],
        pa.array([["a", "b"], [], None, ["c"]]),
        pa.array([["a", "b"], [], None, ["c"]], pa.large_list(pa.string())),
        pa.array([["zz"], ["a", "b"], [], None, ["c"], ["yy"]]).slice(1, 4),
        pa.chunked_array([pa.array([["a", "b"], []]), pa.array([None, ["c"]])]),
    ],
)
def test_multivalent_row_splits_none_rows_are_empty(values):
    column = feature_column(values, "tags")
    assert column.row_splits.tolist() == [0, 2, 2, 2, 3]
    assert column.num_rows == 4
    assert column.fingerprints.tolist() == fingerprints([b"a", b"b", b"c"])


def test_multivalent_of_empty_lists_only():
    column = feature_column([[], [], []])
    assert column.row_splits.tolist() == [0, 0, 0, 0]
    assert column.fingerprints.shape == (0,)


def test_multivalent_column_must_be_one_list_per_row():
    values = np.empty((2, 1), dtype=object)
    values[0, 0], values[1, 0] = ["a"], ["b"]
    with pytest.raises(FeatureError, match=r"a multivalent column must be 1-D") as info:
        feature_column(values, "tags")
    assert info.value.reason == reasons.SHAPE


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("a", "string"), (b"a", "string"), (0, "int"), (-(2**63), "int"), (2**64 - 1, "int"),
        (np.uint64(2**64 - 1), "int"), (np.int8(-1), "int"), (2**64, reasons.OUT_OF_RANGE),
        (-(2**63) - 1, reasons.OUT_OF_RANGE), (True, reasons.BOOL), (np.bool_(False), reasons.BOOL),
        (None, reasons.NULL), (1.0, reasons.FLOAT), (np.float32(1), reasons.FLOAT), ([1], reasons.NESTED),
        ((1,), reasons.NESTED), (np.array([1]), reasons.NESTED), (object(), reasons.UNSUPPORTED),
    ],
)
def test_kind_of(value, kind):
    assert kind_of(value) == kind


def test_arrow_null_row_in_list_values_is_the_list_row():
    with pytest.raises(FeatureError, match=r"missing values.*at row 2$") as info:
        feature_column(pa.array([["a"], ["b", "c"], ["d", None]]), "tags")
    assert (info.value.feature, info.value.reason, info.value.row) == ("tags", reasons.NULL, 2)


def test_arrow_unsupported_type_names_it():
    with pytest.raises(FeatureError, match=r"Arrow type timestamp\[s\] cannot be crossed") as info:
        feature_column(pa.array([1, 2], pa.timestamp("s")), "when")
    assert info.value.reason == reasons.UNSUPPORTED


def test_feature_error_text_fields_and_pickling():
    error = FeatureError("hour", reasons.FLOAT, "floats cannot be crossed.", 1.5, 3)
    assert isinstance(error, ValueError)
    assert str(error) == "Feature `hour`: floats cannot be crossed. Received: value=1.5 at row 3"
    in_cross = error.in_cross("country_X_hour")
    assert str(in_cross) == "Feature `hour` of cross `country_X_hour`: floats cannot be crossed. Received: value=1.5 at row 3"
    assert (in_cross.feature, in_cross.reason, in_cross.value, in_cross.row, in_cross.cross) == (
        "hour", "float", 1.5, 3, "country_X_hour")
    copy = pickle.loads(pickle.dumps(in_cross))
    assert (copy.feature, copy.reason, copy.detail, copy.value, copy.row, copy.cross) == (
        "hour", "float", "floats cannot be crossed.", 1.5, 3, "country_X_hour")
    assert str(copy) == str(in_cross)


def test_feature_error_shortens_long_values():
    error = FeatureError("f", reasons.NESTED, "no.", list(range(1000)))
    assert len(str(error)) < 200 and str(error).endswith("...")


def _arrow_layouts_of(values: list) -> dict:
    """The same strings in Arrow layouts other than plain string arrays."""
    layouts = {"dictionary_int8_large": pa.array(values).dictionary_encode().cast(
        pa.dictionary(pa.int8(), pa.large_string()))}
    if hasattr(pa, "string_view"):
        layouts["string_view"] = pa.array(values, pa.string_view())
        layouts["binary_view"] = pa.array([v.encode() for v in values], pa.binary_view())
    if hasattr(pc, "run_end_encode"):
        layouts["run_end_encoded"] = pc.run_end_encode(pa.array(values))
    return layouts


def test_other_arrow_string_layouts():
    values = ["a", "a", "", "b" * 40, "é"]
    expected = fingerprints(v.encode() for v in values)
    for name, array in _arrow_layouts_of(values).items():
        assert feature_column(array).fingerprints.tolist() == expected, name
        assert feature_column(array.slice(1)).fingerprints.tolist() == expected[1:], name


@pytest.mark.skipif(not hasattr(pa, "list_view"), reason="pyarrow < 16 has no list_view arrays")
def test_arrow_list_view_is_read_as_its_lists():
    rows = [["zz"], ["a", "b"], None, [], ["c"]]
    array = pa.array(rows, pa.list_view(pa.string())).slice(1)
    column = feature_column(array, "tags")
    assert column.row_splits.tolist() == [0, 2, 2, 2, 3]
    assert column.fingerprints.tolist() == fingerprints([b"a", b"b", b"c"])
    out_of_order = pa.ListViewArray.from_arrays(pa.array([2, 0], pa.int32()), pa.array([1, 2], pa.int32()),
                                                pa.array(["x", "y", "z"]))
    column = feature_column(out_of_order)
    assert (column.row_splits.tolist(), column.fingerprints.tolist()) == ([0, 1, 3], fingerprints([b"z", b"x", b"y"]))


def test_arrow_string_view_null_is_reported():
    if not hasattr(pa, "string_view"):
        pytest.skip("pyarrow < 16 has no string_view arrays")
    with pytest.raises(FeatureError, match=r"missing values.*at row 1$"):
        feature_column(pa.array(["a", None], pa.string_view()), "f")


def test_pandas_missing_values_are_nulls():
    pd = pytest.importorskip("pandas", reason="pandas columns are an optional input")
    with pytest.raises(FeatureError, match=r"missing values.*Received: value=<NA> at row 1$") as info:
        feature_column(pd.Series(["a", None], dtype="string"), "f")
    assert info.value.reason == reasons.NULL
    series = pd.Series(["b", "a"], index=[10, 11], dtype="category")
    assert feature_column(series).fingerprints.tolist() == fingerprints([b"b", b"a"])


def _objects(values) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@pytest.mark.parametrize("repeat", [3, 100])  # below and above the size where shared objects are deduplicated
def test_numpy_values_in_object_columns_are_their_values_not_their_buffers(repeat):
    # pyfarmhash would hash a NumPy scalar or a 0-d array as its raw buffer; the value rule decides first.
    ints = _objects([np.int64(7), np.uint8(7)] * repeat)
    assert feature_column(ints).fingerprints.tolist() == feature_column([7, 7] * repeat).fingerprints.tolist()
    texts = _objects([np.array("ab"), np.str_("ab")] * repeat)
    assert feature_column(texts).fingerprints.tolist() == fingerprints([b"ab", b"ab"] * repeat)
    with pytest.raises(FeatureError) as info:
        feature_column(_objects(["a", np.float64(1.5)] * repeat), "f")
    assert (info.value.reason, info.value.row) == (reasons.FLOAT, 1)


def test_a_million_row_numpy_string_array_is_hashed_whole():
    # pyarrow converts a NumPy 'U' array this large to a ChunkedArray of `string`, which the NumPy
    # path read as one array (an AttributeError); it converts to `large_string` now.
    values = np.array([f"id-{i:014d}" for i in range(1_000_000)])
    got = feature_column(values, "id").fingerprints
    assert got[::9973].tolist() == [farmhash.fingerprint64(v) for v in values[::9973].tolist()]
    assert np.array_equal(got, feature_column(values.astype(object), "id").fingerprints)
