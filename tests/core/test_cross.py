"""``hashed_cross`` against the golden vectors of TensorFlow / Keras, in every input form it accepts,
plus large inputs (the deduplication paths) against ``tf.sparse.cross_hashed`` run live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from beam_cross import DEFAULT_HASH_KEY, hashed_cross

ARROW_TYPES = {"str": pa.string(), "bytes": pa.binary()}

# Every test runs on both kernels, the compiled one and the NumPy path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kernel")


def arrow_type(kind: str) -> pa.DataType:
    return ARROW_TYPES.get(kind) or pa.from_numpy_dtype(np.dtype(kind))


def object_array(values) -> np.ndarray:
    """A 1-D object array holding exactly these items (lists stay lists, not a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def junk(kind: str, count: int = 3) -> list:
    return {"str": ["junk"] * count, "bytes": [b"junk"] * count}.get(kind, [7] * count)


def native_array(kind: str, values) -> np.ndarray | None:
    """The column as a NumPy array of its own dtype; None where NumPy would change the values."""
    if kind in ("str", "bytes"):
        nul = "\x00" if kind == "str" else b"\x00"
        if any(v.endswith(nul) for v in values):
            return None  # NumPy 'U' / 'S' arrays drop trailing NULs
        return np.array(values, dtype=str if kind == "str" else bytes)
    return np.array(values, dtype=kind)


def dense_forms(kind: str, values: list, shape: tuple) -> dict:
    """Every way a caller may hand over this single-valued column: form name -> column."""
    native = native_array(kind, values)
    forms = {}
    if shape == ():
        forms["python"] = values[0]
        if kind not in ("str", "bytes"):
            forms["numpy_scalar"] = np.dtype(kind).type(values[0])
        if native is not None:
            forms["numpy_0d"] = native.reshape(())
        return forms
    forms["numpy_object"] = object_array(values).reshape(shape)
    if native is not None:
        forms["numpy"] = native.reshape(shape)
        forms["numpy_big_endian"] = native.astype(native.dtype.newbyteorder(">")).reshape(shape)
        strided = np.repeat(native, 2)[::2]  # a non-contiguous view
        forms["numpy_strided"] = strided.reshape(shape) if len(shape) == 1 else strided[:, np.newaxis]
    if len(shape) == 2:
        return forms
    typ = arrow_type(kind)
    array = pa.array(values, typ)
    forms["list"] = list(values)
    forms["tuple"] = tuple(values)
    forms["arrow"] = array
    forms["arrow_sliced"] = pa.array(junk(kind) + values + junk(kind), typ).slice(3, len(values))
    forms["arrow_chunked"] = pa.chunked_array([array[: len(values) // 2], array[len(values) // 2 :]], typ)
    forms["arrow_dictionary"] = array.dictionary_encode()
    if kind == "str":
        forms["arrow_large"] = pa.array(values, pa.large_string())
        forms["utf8_bytes"] = [v.encode("utf-8") for v in values]
    if kind == "bytes":
        forms["arrow_large"] = pa.array(values, pa.large_binary())
    return forms


def check_forms(case, per_column_forms, call):
    """Runs ``call(columns)`` once per form name, each column in that form (or its object array)."""
    names = sorted(set().union(*per_column_forms))
    failures = []
    for name in names:
        columns = [forms.get(name, forms.get("numpy_object", forms.get("python"))) for forms in per_column_forms]
        ok, got = call(columns)
        if not ok:
            failures.append((name, got))
    assert failures == [], f"{case['id']}: {failures[:3]}"
    return names


def test_dense_golden(dense_case):
    case = dense_case
    per_column = [dense_forms(c["kind"], c["values"], case["shape"]) for c in case["columns"]]

    def call(columns):
        got = hashed_cross(columns, case["num_bins"], hash_key=case["hash_key"])
        ok = got.dtype == np.int64 and got.shape == case["shape"] and np.array_equal(got, case["expected"])
        return ok, got

    names = check_forms(case, per_column, call)
    assert "numpy_object" in names or "python" in names


def test_dense_golden_as_dict(dense_case):
    case = dense_case
    features = {f"feature_{i}": column["values"] for i, column in enumerate(case["columns"])}
    if case["shape"] == ():
        features = {name: values[0] for name, values in features.items()}
    elif len(case["shape"]) == 2:
        features = {name: object_array(values).reshape(case["shape"]) for name, values in features.items()}
    got = hashed_cross(features, case["num_bins"], hash_key=case["hash_key"])
    np.testing.assert_array_equal(got, case["expected"])


def ragged_forms(kind: str, rows: list) -> dict:
    typ = arrow_type(kind)
    list_array = pa.array(rows, pa.list_(typ))
    pad = [junk(kind, 2), []]
    forms = {
        "list": [list(r) for r in rows],
        "tuples": [tuple(r) for r in rows],
        "numpy_object": object_array([list(r) for r in rows]),
        "arrow_list": list_array,
        "arrow_large_list": pa.array(rows, pa.large_list(typ)),
        "arrow_sliced": pa.array(pad + rows + pad, pa.list_(typ)).slice(len(pad), len(rows)),
        "arrow_chunked": pa.chunked_array([list_array[:1], list_array[1:]], list_array.type),
        "arrow_list_of_dictionary": pa.array(rows, pa.list_(pa.dictionary(pa.int32(), typ))),
    }
    if kind in ("str", "bytes"):
        large = pa.large_string() if kind == "str" else pa.large_binary()
        forms["arrow_list_of_large"] = pa.array(rows, pa.list_(large))
    return forms


def test_ragged_golden(ragged_case):
    case = ragged_case
    per_column = []
    for column in case["columns"]:
        if column["dense"]:
            forms = dense_forms(column["kind"], column["values"], (len(column["values"]),))
            forms["numpy_n1"] = forms["numpy_object"].reshape(-1, 1)
        else:
            forms = ragged_forms(column["kind"], column["values"])
        per_column.append(forms)

    def call(columns):
        got = hashed_cross(columns, case["num_bins"], hash_key=case["hash_key"])
        ok = isinstance(got, (pa.ListArray, pa.LargeListArray)) and got.type.value_type == pa.int64()
        return ok and got.to_pylist() == case["expected"], got.to_pylist()

    check_forms(case, per_column, call)


def test_worked_example_from_the_semantics_reference(golden):
    """crossing-semantics.md section 6, as Keras and TF computed it (golden vectors)."""
    cases = {case["id"]: case for case in golden("cross_dense.json")}
    f1, f2 = ["A", "B", "A", "B", "A"], [101, 101, 101, 102, 102]
    assert "keras.layers.HashedCrossing" in cases["worked_example_bins5"]["oracles"]
    np.testing.assert_array_equal(hashed_cross([f1, f2], 5), cases["worked_example_bins5"]["expected"])
    np.testing.assert_array_equal(hashed_cross([f1, f2], 10), cases["worked_example_bins10"]["expected"])
    np.testing.assert_array_equal(hashed_cross([f1, f2], 0), cases["worked_example_bins0"]["expected"])
    np.testing.assert_array_equal(hashed_cross([f1, f2, f1], 5), cases["worked_example_f1_f2_f1"]["expected"])
    np.testing.assert_array_equal(hashed_cross(("A", 101), 10), cases["worked_example_scalar"]["expected"])
    assert hashed_cross(("A", 101), 10).shape == ()


def test_hash_key_zero_and_none_mean_the_default(golden):
    cases = {case["id"]: case for case in golden("cross_dense.json")}
    default = cases[f"hash_key_{DEFAULT_HASH_KEY}"]["expected"]
    np.testing.assert_array_equal(cases["hash_key_0"]["expected"], default)  # TF's own behaviour
    np.testing.assert_array_equal(cases["hash_key_None"]["expected"], default)
    assert not np.array_equal(cases["hash_key_1"]["expected"], default)


# ---------------------------------------------------------------- large inputs vs live TF


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


def tf_cross(tf, columns, num_bins, hash_key=None):
    tensors = []
    for column in columns:
        if isinstance(column, (pa.Array, pa.ChunkedArray)):
            column = column.to_pylist()
        column = list(column)
        if isinstance(column[0], str):
            column = [v.encode("utf-8") for v in column]
        tensors.append(tf.reshape(tf.constant(np.array(column, dtype=object if isinstance(column[0], bytes) else None)), [-1, 1]))
    out = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=hash_key)
    return out.values.numpy()


N_LARGE = 20_000


def vocabulary_column(seed, size=40, n=N_LARGE):
    rng = np.random.default_rng(seed)
    vocab = [f"term-{i}-é" * (1 + i % 9) for i in range(size)]  # several length classes
    return [vocab[i] for i in rng.integers(0, size, n)]


def test_large_object_array_of_shared_strings_vs_tf(tf):
    values = vocabulary_column(1)
    column = object_array(values)  # rows share the vocabulary's objects: the dedup path
    ints = np.random.default_rng(2).integers(-(2**63), 2**63 - 1, N_LARGE, dtype=np.int64, endpoint=True)
    expected = tf_cross(tf, [values, ints], 1000)
    np.testing.assert_array_equal(hashed_cross([column, ints], 1000), expected)
    np.testing.assert_array_equal(hashed_cross([ints, column], 0), tf_cross(tf, [ints, values], 0))


def test_large_object_array_of_distinct_strings_vs_tf(tf):
    values = [f"row{i}" for i in range(N_LARGE)]
    other = vocabulary_column(3)
    np.testing.assert_array_equal(hashed_cross([object_array(values), other], 0), tf_cross(tf, [values, other], 0))


def test_large_object_array_of_small_ints_vs_tf(tf):
    # Small Python ints are shared objects, so this also takes the dedup path.
    rng = np.random.default_rng(4)
    ints = [int(v) for v in rng.integers(-5, 200, N_LARGE)]
    words = vocabulary_column(5)
    np.testing.assert_array_equal(hashed_cross([object_array(ints), words], 77), tf_cross(tf, [ints, words], 77))


def test_large_arrow_strings_low_and_high_cardinality_vs_tf(tf):
    low = vocabulary_column(6)
    high = [f"{i:x}" * (i % 5) for i in range(N_LARGE)]
    expected = tf_cross(tf, [low, high], 0, hash_key=-5)
    for low_form in (pa.array(low), pa.array(low, pa.large_string()), pa.array(low).slice(0)):
        got = hashed_cross([low_form, pa.array(high)], 0, hash_key=-5)
        np.testing.assert_array_equal(got, expected)
    sliced = pa.array(["x"] * 10 + low).slice(10)
    np.testing.assert_array_equal(hashed_cross([sliced, high], 0, hash_key=-5), expected)


def test_large_numpy_unicode_low_cardinality_vs_tf(tf):
    low = vocabulary_column(7)
    ints = np.arange(N_LARGE, dtype=np.int32)
    np.testing.assert_array_equal(hashed_cross([np.array(low), ints], 10), tf_cross(tf, [low, ints], 10))


def test_large_multivalent_vs_tf_ragged(tf):
    rng = np.random.default_rng(8)
    vocab = vocabulary_column(9, n=50)
    rows = [[vocab[j] for j in rng.integers(0, 50, rng.integers(0, 3))] for _ in range(N_LARGE)]
    ints = rng.integers(0, 10, N_LARGE)
    ragged = tf.ragged.constant([[v.encode() for v in r] for r in rows], dtype=tf.string)
    expected = tf.ragged.cross_hashed([ragged, tf.constant(ints.reshape(-1, 1))], num_buckets=100).to_list()
    assert hashed_cross([rows, ints], 100).to_pylist() == expected
    assert hashed_cross([pa.array(rows), ints], 100).to_pylist() == expected


# np.bytes_ values: a bytes keeps its trailing NULs; an np.bytes_ (or a 0-d 'S' array) is the value
# NumPy gives it, its bytes less trailing NULs, as pickling (hence Beam) carries it.
NP_BYTES = [np.bytes_(b"\x02\n\x00"), np.bytes_(b"\x02\n"), b"\x02\n", b"\x02\n\x00", np.bytes_(b"\x00\x00"),
            np.bytes_(b"a\x00b\x00"), np.array(b"z\x00\x00"), np.bytes_(b"\x00" * 70 + b"q" + b"\x00" * 5)]


def numpy_held(value):
    """The value as TF takes it: bytes as given; NumPy's types as the item of an 'S' array holding them."""
    return value if type(value) is bytes else np.array([value]).tolist()[0]


def test_np_bytes_is_its_bytes_less_trailing_nuls_vs_tf(tf):
    held = [numpy_held(v) for v in NP_BYTES]
    assert held[:4] == [b"\x02\n", b"\x02\n", b"\x02\n", b"\x02\n\x00"]  # what NumPy gives (the premise)
    ones = [1] * len(held)
    expected = tf_cross(tf, [held, ones], 0).tolist()
    assert expected[0] == expected[1] == expected[2] != expected[3]
    many = NP_BYTES * 20  # shared objects over 64 rows: the deduplication path
    forms = {"list": NP_BYTES, "tuple": tuple(NP_BYTES), "object_array": object_array(NP_BYTES)}
    for name, column in forms.items():
        assert hashed_cross([column, ones], 0).tolist() == expected, name
    assert hashed_cross([object_array(many), [1] * len(many)], 0).tolist() == expected * 20
    assert hashed_cross([[[v] for v in NP_BYTES], ones], 0).to_pylist() == [[b] for b in expected]
    assert hashed_cross((np.bytes_(b"\x02\n\x00"), 1), 0).tolist() == expected[0]
    assert hashed_cross({"a": np.bytes_(b"\x02\n\x00"), "b": 1}, 0) == hashed_cross({"a": b"\x02\n", "b": 1}, 0)


def test_error_row_is_the_callers_row_in_large_columns():
    values = object_array(vocabulary_column(10))
    values[15_000] = 2.5
    with pytest.raises(ValueError, match=r"floats cannot be crossed.*value=2\.5 at row 15000") as info:
        hashed_cross({"word": values, "n": np.arange(N_LARGE)}, 10)
    assert (info.value.feature, info.value.reason, info.value.row, info.value.value) == ("word", "float", 15000, 2.5)
    strings = pa.array(vocabulary_column(11)[:12_000] + [None] + vocabulary_column(12)[:7_999])
    with pytest.raises(ValueError, match=r"missing values.*at row 12000") as info:
        hashed_cross({"word": strings, "n": np.arange(N_LARGE)}, 10)
    assert (info.value.reason, info.value.row) == ("null", 12000)


# ---------------------------------------------------------------- argument and input errors


@pytest.mark.parametrize(
    ("features", "error", "match"),
    [
        ([["a"]], ValueError, r"A cross needs at least two features\. Received: 1 feature\(s\)"),
        ([], ValueError, r"at least two features\. Received: 0"),
        ({"only": ["a"]}, ValueError, r"at least two features"),
        ("ab", TypeError, r"`features` must be a list, tuple or dict .* Received: features of type str"),
        ({"a", "b"}, TypeError, r"Received: features of type set"),
        (iter([["a"], [1]]), TypeError, r"Received: features of type list_iterator"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, r"Received: features of type ndarray"),
    ],
)
def test_feature_list_errors(features, error, match):
    with pytest.raises(error, match=match):
        hashed_cross(features, 10)


@pytest.mark.parametrize(
    ("num_bins", "error", "match"),
    [
        (-1, ValueError, r"`num_bins` must be a non-negative int64 .* Received: num_bins=-1$"),
        (2**63, ValueError, r"Received: num_bins=9223372036854775808$"),
        (5.0, TypeError, r"`num_bins` must be an int\. Received: num_bins=5\.0$"),
        (True, TypeError, r"`num_bins` must be an int\. Received: num_bins=True$"),
        (np.bool_(True), TypeError, r"`num_bins` must be an int\. Received: num_bins="),
        (None, TypeError, r"Received: num_bins=None$"),
        ("10", TypeError, r"Received: num_bins='10'$"),
    ],
)
def test_num_bins_errors(num_bins, error, match):
    with pytest.raises(error, match=match):
        hashed_cross([["a"], [1]], num_bins)


@pytest.mark.parametrize("num_bins", [np.int64(10), np.uint8(10), np.int32(10)])
def test_numpy_integer_num_bins(num_bins):
    np.testing.assert_array_equal(hashed_cross([["a", "b"], [1, 2]], num_bins), hashed_cross([["a", "b"], [1, 2]], 10))


@pytest.mark.parametrize(
    ("hash_key", "error", "match"),
    [
        (2**63, ValueError, r"`hash_key` must fit in int64\. Received: hash_key=9223372036854775808$"),
        (-(2**63) - 1, ValueError, r"Received: hash_key=-9223372036854775809$"),
        (1.0, TypeError, r"`hash_key` must be an int or None\. Received: hash_key=1\.0$"),
        (False, TypeError, r"Received: hash_key=False$"),
        ("0xDECAFCAFFE", TypeError, r"Received: hash_key='0xDECAFCAFFE'$"),
    ],
)
def test_hash_key_errors(hash_key, error, match):
    with pytest.raises(error, match=match):
        hashed_cross([["a"], [1]], 10, hash_key=hash_key)


@pytest.mark.parametrize(
    ("features", "feature", "match"),
    [
        ([["a", "b"], [1]], "features[1]", r"same shape as `features\[0\]` \(2,\)\. Received: value='shape=\(1,\)'"),
        ([["a", "b"], np.array([[1], [2]])], "features[1]", r"same shape .* Received: value='shape=\(2, 1\)'"),
        ([np.array([["a"], ["b"]]), ["x", "y"]], "features[1]", r"same shape as `features\[0\]` \(2, 1\)"),
        (["a", [1]], "features[1]", r"same shape as `features\[0\]` \(\)"),
        ({"x": [["a"], ["b"]], "y": [1, 2, 3]}, "y", r"same number of rows as `x` \(2\)\. Received: value='3 rows'"),
        ([["a", "b"], np.zeros((2, 2), np.int64)], "features[1]", r"shape \(\), \(n,\) or \(n, 1\)"),
        ([np.zeros((2, 1, 1), np.int64)] * 2, "features[0]", r"Received: value='shape=\(2, 1, 1\)'"),
    ],
)
def test_shape_errors(features, feature, match):
    with pytest.raises(ValueError, match=match) as info:
        hashed_cross(features, 10)
    assert (info.value.feature, info.value.reason) == (feature, "shape")


@pytest.mark.parametrize(
    ("column", "reason", "row", "value", "match"),
    [
        ([1, 2.5], "float", 1, 2.5, r"floats cannot be crossed.*Received: value=2\.5 at row 1$"),
        (np.array([0.5, 2.0]), "float", 0, 0.5, r"floats cannot be crossed.*\(dtype float64\) Received: value=0\.5 at row 0"),
        (pa.array([1.0, 2.0]), "float", 0, 1.0, r"floats cannot be crossed"),
        ([float("nan"), 1], "float", 0, None, r"Received: value=nan at row 0"),
        ([True, False], "bool", 0, True, r"booleans cannot be crossed.*Received: value=True at row 0$"),
        ([1, True], "bool", 1, True, r"booleans cannot be crossed.*at row 1$"),
        (np.array([False, True]), "bool", 0, False, r"booleans cannot be crossed"),
        (pa.array([True, False]), "bool", 0, True, r"booleans cannot be crossed"),
        (["a", None], "null", 1, None, r"missing values \(None\) cannot be crossed.*Received: value=None at row 1$"),
        ([None, None], "null", 0, None, r"missing values"),
        (pa.array(["a", None, "c"]), "null", 1, None, r"missing values.*at row 1$"),
        (pa.array([1, None]), "null", 1, None, r"missing values"),
        (["a", ["b"]], "nested", 1, ["b"], r"a nested list cannot be crossed.*Received: value=\['b'\] at row 1$"),
        ([[["a"]], [["b"]]], "nested", 0, ["a"], r"a nested list cannot be crossed"),
        ([["a"], "b"], "shape", 1, "b", r"needs a list \(or None\) in every row.*Received: value='b' at row 1$"),
        (["a", 1], "mixed_kinds", 1, 1, r"only strings or only integers, not both.*Received: value=1 at row 1$"),
        ([1, "a"], "mixed_kinds", 1, "a", r"not both.*value='a' at row 1$"),
        ([b"a", 1], "mixed_kinds", 1, 1, r"not both"),
        ([["a"], [1]], "mixed_kinds", 1, 1, r"not both.*at row 1$"),
        ([1, 2**64], "out_of_range", 1, 2**64, r"integers must fit in int64 \(or uint64\).*value=18446744073709551616 at row 1$"),
        ([-(2**63) - 1, 1], "out_of_range", 0, -(2**63) - 1, r"value=-9223372036854775809 at row 0$"),
        ([[1], [2**70]], "out_of_range", 1, 2**70, r"integers must fit"),
        (["ok", "\ud800"], "unsupported_type", 1, "\ud800", r"valid Unicode.*at row 1$"),
        (np.array(["ok", "\ud800"]), "unsupported_type", 1, "\ud800", r"valid Unicode"),
        (np.array(["o\x00k", "\ud800"]), "unsupported_type", 1, "\ud800", r"valid Unicode"),
        ([["ok"], ["a", "\ud800"]], "unsupported_type", 1, "\ud800", r"valid Unicode.*at row 1$"),
        (["ok"] * 9000 + ["\ud800"], "unsupported_type", 9000, "\ud800", r"valid Unicode.*at row 9000$"),
        ([object(), object()], "unsupported_type", 0, None, r"only strings, bytes and integers can be crossed"),
        ({"a": 1, "b": 2}, "unsupported_type", None, {"a": 1, "b": 2}, r"not a dict or a set"),
        ({1, 2}, "unsupported_type", None, {1, 2}, r"not a dict or a set"),
        (np.array([1 + 2j, 3j]), "float", 0, 1 + 2j, r"floats cannot be crossed"),
        (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), "unsupported_type", 0, None, r"only strings"),
    ],
)
def test_value_errors_name_feature_reason_row_and_value(column, reason, row, value, match):
    other = list(range(len(column)))
    with pytest.raises(ValueError, match=match) as info:
        hashed_cross({"bad": column, "ok": other}, 10)
    error = info.value
    assert (error.feature, error.reason, error.row) == ("bad", reason, row)
    assert str(error).startswith("Feature `bad`: ")
    if value is not None:
        assert error.value == value


def test_value_error_in_second_feature_names_it():
    with pytest.raises(ValueError, match=r"^Feature `hour`: floats") as info:
        hashed_cross({"country": ["fr", "us"], "hour": [1, 1.5]}, 10)
    assert info.value.feature == "hour"
    with pytest.raises(ValueError, match=r"^Feature `features\[1\]`: floats"):
        hashed_cross([["fr", "us"], [1, 1.5]], 10)


def test_scalar_value_errors():
    for scalar, reason in [(1.5, "float"), (None, "null"), (True, "bool"), (2**64, "out_of_range"),
                           ("\ud800", "unsupported_type")]:
        with pytest.raises(ValueError, match=r"^Feature `x`") as info:
            hashed_cross({"x": scalar, "y": 1}, 10)
        assert (info.value.reason, info.value.row) == (reason, None)


def test_inputs_are_left_unchanged():
    columns = [np.array([5, 2**64 - 1], np.uint64), np.array([-1, 7], np.int64), np.array(["a", "b"]),
               object_array(["x", "y"]), pa.array([["p"], []])]
    before = [c.copy() if isinstance(c, np.ndarray) else c.to_pylist() for c in columns]
    hashed_cross(columns, 0)
    hashed_cross(columns[:4], 0)
    for column, copy in zip(columns, before):
        assert (column == copy).all() if isinstance(column, np.ndarray) else column.to_pylist() == copy


def test_golden_files_carry_provenance_and_stay_small():
    golden_dir = Path(__file__).resolve().parents[1] / "golden"
    total = 0
    for name in ("fingerprint64.json", "cross_dense.json", "cross_ragged.json"):
        document = json.loads((golden_dir / name).read_text())
        provenance = document["provenance"]
        assert {"tensorflow", "keras", "numpy", "python", "command", "date", "oracle"} <= set(provenance)
        assert provenance["command"] == "python tests/golden/generate.py"
        assert len(document["vectors"]) > 40
        total += (golden_dir / name).stat().st_size
    assert total < 2_000_000
