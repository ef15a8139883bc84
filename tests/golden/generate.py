"""Regenerate the golden vectors in this directory by running the real TensorFlow and Keras 3.

    python tests/golden/generate.py

Not collected by pytest (``tests/conftest.py`` ignores it): it imports TensorFlow and Keras 3.

Writes ``fingerprint64.json`` (``tf.fingerprint``), ``cross_dense.json`` (``tf.sparse.cross_hashed``,
cross-checked against ``keras.layers.HashedCrossing`` when the default key is used) and
``cross_ragged.json`` (``tf.ragged.cross_hashed``, cross-checked against ``tf.sparse.cross_hashed``
on SparseTensors). Random inputs come from fixed seeds, so a rerun reproduces the same vectors
(only ``provenance.date`` changes).

JSON encoding (``tests/conftest.py`` reads it back): every integer is a decimal string, so
values above 2**53 survive any JSON reader. A column is ``{"kind": K, "values": [...]}`` where
``K`` is ``"str"`` (text, hashed as UTF-8), ``"bytes"`` (hex strings) or a NumPy integer dtype
name. Dense values are stored flat with the column ``shape``; multivalent values are lists per row,
and a multivalent cross may mix in dense columns (one value per row, ``"dense": true``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (Keras 3; after the log-level setting)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_HASH_KEY = 0xDECAFCAFFE
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUM_BINS = (1, 2, 5, 10, 1000, 2**31 - 1, 2**62, 2**63 - 1, 0)
HASH_KEYS = (None, 0, 1, -1, 12345, -987654321, 2**63 - 1, -(2**63), DEFAULT_HASH_KEY)
TEXTS = ("", "A", "B", "é", "日本語", "naïve café", "🙂🙃", "Ελληνικά", "a\x00b", "\x00", " ", "5", "-1",
         "ß" * 40, "中" * 30)


# ---------------------------------------------------------------- encoding


def encode_column(kind: str, values) -> list:
    """JSON-safe list for one column's flat (or per-row) values."""
    if kind == "str":
        return list(values)
    if kind == "bytes":
        return [bytes(v).hex() for v in values]
    return [str(int(v)) for v in values]


def to_tensor_values(kind: str, values) -> tf.Tensor:
    """A 1-D tensor of the column's values, in the dtype TF would see."""
    if kind == "str":
        return tf.constant(np.array([v.encode("utf-8") for v in values], dtype=object), tf.string)
    if kind == "bytes":
        return tf.constant(np.array(list(values), dtype=object), tf.string)
    return tf.constant(np.array([int(v) for v in values], dtype=kind))


# ---------------------------------------------------------------- random inputs


def random_bytes(rng, length: int) -> bytes:
    # About 15% of the bytes are NUL so that embedded NULs are common.
    raw = rng.integers(0, 256, length, dtype=np.uint8)
    raw[rng.random(length) < 0.15] = 0
    return raw.tobytes()


def random_text(rng, max_chars: int) -> str:
    alphabet = "abcXYZ09 _-éüß日本語🙂\x00Ωж"
    return "".join(rng.choice(list(alphabet), int(rng.integers(0, max_chars + 1))))


def random_ints(rng, dtype: str, n: int) -> list[int]:
    info = np.iinfo(dtype)
    extremes = [int(info.min), int(info.max), 0, 1]
    if info.min < 0:
        extremes.append(-1)
    values = [int(v) for v in rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)]
    for i, e in enumerate(extremes):
        if i < n and rng.random() < 0.5:
            values[int(rng.integers(0, n))] = e
    return values


def random_column(rng, n: int, kinds=("str", "bytes", *INT_DTYPES)) -> tuple[str, list]:
    kind = str(rng.choice(kinds))
    if kind == "str":
        return kind, [random_text(rng, 12) if rng.random() < 0.8 else str(rng.choice(TEXTS)) for _ in range(n)]
    if kind == "bytes":
        return kind, [random_bytes(rng, int(rng.choice([0, 1, 3, 7, 8, 16, 17, 33, 65, 130]))) for _ in range(n)]
    return kind, random_ints(rng, kind, n)


# ---------------------------------------------------------------- fingerprints


def fingerprint_vectors() -> list[dict]:
    rng = np.random.default_rng(64)
    inputs: list[tuple[str, bytes]] = []
    for length in range(0, 301):  # every FarmHash length class and every tail size up to 300
        inputs.append(("random", random_bytes(rng, length)))
    for length in (320, 511, 512, 513, 1000, 1023, 1024, 1025, 2048, 4097, 10000):  # multi-block
        inputs.append(("random", random_bytes(rng, length)))
    for text in TEXTS:
        inputs.append(("utf8", text.encode("utf-8")))
    for length in range(0, 130, 7):
        inputs.append(("utf8", random_text(rng, length).encode("utf-8")))
    for length in (1, 4, 8, 16, 17, 32, 33, 64, 65, 128, 129):
        inputs.append(("all_nul", b"\x00" * length))
        inputs.append(("all_ff", b"\xff" * length))
    data = tf.constant(np.array([b for _, b in inputs], dtype=object), tf.string)
    digests = tf.fingerprint(data, method="farmhash64").numpy()  # (N, 8) uint8, little-endian
    values = digests.copy().view("<u8").reshape(-1)
    return [
        {"what": what, "hex": b.hex(), "length": len(b), "fingerprint64": str(int(v))}
        for (what, b), v in zip(inputs, values)
    ]


# ---------------------------------------------------------------- dense crosses


def tf_dense_cross(columns, shape, num_bins, hash_key) -> list[int]:
    tensors = [tf.reshape(to_tensor_values(kind, values), [-1, 1]) for kind, values in columns]
    out = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=hash_key)
    values = out.values.numpy()
    rows = out.indices.numpy()[:, 0]
    n = len(columns[0][1])
    assert len(values) == n and (rows == np.arange(n)).all(), "one cross per dense row"
    return [int(v) for v in values]


def keras_dense_cross(columns, shape, num_bins) -> list[int]:
    layer = keras.layers.HashedCrossing(num_bins)
    tensors = [tf.reshape(to_tensor_values(kind, values), shape) for kind, values in columns]
    out = layer(tensors)
    assert tuple(out.shape) == tuple(shape) and out.dtype == tf.int64, (out.shape, shape)
    return [int(v) for v in np.asarray(out).reshape(-1)]


def dense_case(case_id, columns, shape, num_bins, hash_key, keras_too=True) -> dict:
    expected = tf_dense_cross(columns, shape, num_bins, hash_key)
    oracles = ["tf.sparse.cross_hashed"]
    # Keras never passes a hash key (so only the default), and rejects empty batches (Keras >= 3.9).
    if keras_too and hash_key in (None, 0, DEFAULT_HASH_KEY) and len(columns[0][1]) > 0:
        assert keras_dense_cross(columns, shape, num_bins) == expected, case_id
        oracles.append("keras.layers.HashedCrossing")
    return {
        "id": case_id,
        "columns": [{"kind": kind, "values": encode_column(kind, values)} for kind, values in columns],
        "shape": list(shape),
        "num_bins": str(num_bins),
        "hash_key": None if hash_key is None else str(hash_key),
        "expected": [str(v) for v in expected],
        "oracles": oracles,
    }


def dense_cases() -> list[dict]:
    rng = np.random.default_rng(2024)
    cases = []
    example = [("str", ["A", "B", "A", "B", "A"]), ("int64", [101, 101, 101, 102, 102])]
    for num_bins in (5, 10, 0):
        cases.append(dense_case(f"worked_example_bins{num_bins}", example, (5,), num_bins, None))
    f1, f2 = example
    cases.append(dense_case("worked_example_f1_f2_f1", [f1, f2, f1], (5,), 5, None))
    cases.append(dense_case("worked_example_f1_f1", [f1, f1], (5,), 5, None))
    cases.append(dense_case("worked_example_f2_f2", [f2, f2], (5,), 5, None))
    cases.append(dense_case("worked_example_scalar", [("str", ["A"]), ("int64", [101])], (), 10, None))
    cases.append(dense_case("worked_example_n1", example, (5, 1), 5, None))
    cases.append(dense_case("string_5_vs_int_5", [("str", ["5", "x"]), ("int64", [5, 5])], (2,), 0, None))

    # Every integer dtype at its extremes, crossed with a string and with int64 extremes.
    for dtype in INT_DTYPES:
        info = np.iinfo(dtype)
        values = sorted({int(info.min), int(info.max), 0, 1, int(info.max) // 2, int(info.min) // 2}
                        | ({-1} if info.min < 0 else set()))
        n = len(values)
        other = ("str", [str(rng.choice(TEXTS)) for _ in range(n)])
        for num_bins in (0, 1000):
            cases.append(dense_case(f"dtype_{dtype}_bins{num_bins}", [("" + dtype, values), other], (n,), num_bins, None))
            cases.append(dense_case(f"dtype_{dtype}_first_int64_bins{num_bins}",
                                    [("int64", [-(2**63), 2**63 - 1, -1, 0, 1, 7, 42, 99][:n]), (dtype, values)],
                                    (n,), num_bins, 77))

    # Strings of every length class in each position.
    lengths = list(range(0, 301, 3)) + [1000, 4097]
    texts = [random_bytes(rng, length) for length in lengths]
    n = len(texts)
    cases.append(dense_case("bytes_all_lengths_first", [("bytes", texts), ("int64", random_ints(rng, "int64", n))],
                            (n,), 0, None))
    cases.append(dense_case("bytes_all_lengths_second", [("str", [random_text(rng, 5) for _ in range(n)]),
                                                         ("bytes", texts)], (n,), 2**62, None))
    cases.append(dense_case("unicode_texts", [("str", list(TEXTS)), ("str", list(reversed(TEXTS)))],
                            (len(TEXTS),), 0, None))

    # 2 to 6 columns, every num_bins, every shape, every hash key.
    counter = 0
    for num_columns in range(2, 7):
        for num_bins in NUM_BINS:
            for shape_kind in ("n", "n1", "scalar"):
                n = 1 if shape_kind == "scalar" else int(rng.integers(1, 12))
                shape = {"n": (n,), "n1": (n, 1), "scalar": ()}[shape_kind]
                columns = [random_column(rng, n) for _ in range(num_columns)]
                hash_key = HASH_KEYS[counter % len(HASH_KEYS)]
                counter += 1
                cases.append(dense_case(f"random_{num_columns}cols_bins{num_bins}_{shape_kind}_key{hash_key}",
                                        columns, shape, num_bins, hash_key))

    # Every hash key on one fixed input.
    fixed = [("str", ["a", "b", "", "é"]), ("int32", [1, -2, 3, 2**31 - 1])]
    for hash_key in HASH_KEYS + (2, -2, 2**40, -(2**40)):
        cases.append(dense_case(f"hash_key_{hash_key}", fixed, (4,), 0, hash_key))

    # Empty batch (TF gives no crosses; Keras >= 3.9 rejects it).
    cases.append(dense_case("empty_batch", [("str", []), ("int64", [])], (0,), 10, None))
    return cases


# ---------------------------------------------------------------- multivalent crosses


def ragged_tensor(kind, rows) -> tf.RaggedTensor:
    flat = [v for row in rows for v in row]
    splits = np.cumsum([0] + [len(row) for row in rows]).astype(np.int64)
    return tf.RaggedTensor.from_row_splits(to_tensor_values(kind, flat), splits)


def rows_of(out: tf.SparseTensor, n: int) -> list[list[int]]:
    rows: list[list[int]] = [[] for _ in range(n)]
    for (row, _), value in zip(out.indices.numpy(), out.values.numpy()):
        rows[row].append(int(value))
    return rows


def ragged_case(case_id, columns, num_bins, hash_key) -> dict:
    """``columns``: (kind, rows, is_dense); dense columns hold one value per row."""
    n = len(columns[0][1])
    tensors, sparse = [], []
    for kind, rows, is_dense in columns:
        if is_dense:
            dense = tf.reshape(to_tensor_values(kind, rows), [-1, 1])
            tensors.append(dense)
            sparse.append(_sparse_of_dense(dense))
        else:
            ragged = ragged_tensor(kind, rows)
            tensors.append(ragged)
            sparse.append(ragged.to_sparse())
    # tf.ragged.cross_hashed uses hash_key=0 literally, while tf.sparse.cross_hashed (and Keras)
    # read 0 as the default key; beam_cross follows the latter, checked here on SparseTensors.
    ragged_key = DEFAULT_HASH_KEY if hash_key in (None, 0) else hash_key
    expected = tf.ragged.cross_hashed(tensors, num_buckets=num_bins, hash_key=ragged_key).to_list()
    via_sparse = rows_of(tf.sparse.cross_hashed(sparse, num_buckets=num_bins, hash_key=hash_key), n)
    assert expected == via_sparse, case_id
    return {
        "id": case_id,
        "columns": [
            {"kind": kind, "dense": is_dense,
             "values": encode_column(kind, rows) if is_dense else [encode_column(kind, row) for row in rows]}
            for kind, rows, is_dense in columns
        ],
        "num_bins": str(num_bins),
        "hash_key": None if hash_key is None else str(hash_key),
        "expected": [[str(v) for v in row] for row in expected],
        "oracles": ["tf.ragged.cross_hashed", "tf.sparse.cross_hashed"],
    }


def _sparse_of_dense(dense: tf.Tensor) -> tf.SparseTensor:
    # tf.sparse.from_dense drops zeros and empty strings; every cell of a dense column is a value.
    n = int(dense.shape[0])
    indices = np.stack([np.arange(n), np.zeros(n, np.int64)], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, tf.reshape(dense, [-1]), [n, 1])


def random_rows(rng, kind, n, max_len=3) -> list[list]:
    lengths = rng.integers(0, max_len + 1, n)
    _, flat = random_column(rng, int(lengths.sum()), kinds=(kind,))
    out, at = [], 0
    for length in lengths:
        out.append(flat[at : at + int(length)])
        at += int(length)
    return out


def ragged_cases() -> list[dict]:
    rng = np.random.default_rng(7)
    cases = [
        ragged_case("doc_example", [("str", [["a", "b"], []], False), ("int64", [1, 2], True)], 10, None),
        ragged_case("odometer_last_fastest", [("str", [["a", "b"]], False), ("int64", [[1, 2, 3]], False)], 0, None),
        ragged_case("dense_first", [("int64", [1, 2, 3], True), ("str", [["a", "b"], [], ["c"]], False)], 10, None),
        ragged_case("all_empty", [("str", [[], []], False), ("int64", [[], []], False)], 10, None),
        ragged_case("one_empty_column", [("str", [["a"], ["b"]], False), ("int64", [[], []], False)], 10, None),
        ragged_case("worked_example_as_lists",
                    [("str", [["A"], ["B"], ["A"], ["B"], ["A"]], False), ("int64", [[101], [101], [101], [102], [102]], False)],
                    5, None),
    ]
    counter = 0
    for num_columns in (2, 3, 4):
        for num_bins in NUM_BINS:
            n = int(rng.integers(1, 10))
            columns = []
            for j in range(num_columns):
                kind = str(rng.choice(("str", "bytes", *INT_DTYPES)))
                is_dense = j > 0 and rng.random() < 0.3
                rows = random_column(rng, n, kinds=(kind,))[1] if is_dense else random_rows(rng, kind, n, 4 - num_columns // 2)
                columns.append((kind, rows, is_dense))
            hash_key = HASH_KEYS[counter % len(HASH_KEYS)]
            counter += 1
            cases.append(ragged_case(f"random_{num_columns}cols_bins{num_bins}_key{hash_key}", columns, num_bins, hash_key))
    for hash_key in HASH_KEYS:
        cases.append(ragged_case(f"hash_key_{hash_key}",
                                 [("str", [["x", "y"], [], ["z"]], False), ("int8", [[-1], [2, 3], [127]], False)],
                                 0, hash_key))
    return cases


# ---------------------------------------------------------------- transforms before a cross (§10)
#
# Each case runs the named Keras layer or feature column on the values and records its ids; a cross
# case runs crossed_column (ids through get_sparse_tensors) or HashedCrossing over preprocessed
# features. A column is {"kind": K, "values": ..., "dense": bool}; K is "str", an integer dtype or a
# float dtype ("float32" / "float64", values as repr strings: "nan", "inf", "-0.0" survive JSON).

FLOAT_EDGES = [-np.inf, 0.1, float(np.nextafter(0.1, 1)), 0.09999999, 1.0, 1.5, 2.0, np.inf, np.nan, -0.0, 0.0,
               1e39, -1e39, 5e-324, 18.0, 25.0, 35.0, 17.999999, 24.99999999, 1e-45, -1e-44, 1e-40, 1.1754944e-38]
INT_EDGES = [0, 1, -1, 3, 17, 18, 25, 35, 16777216, 16777217, 16777218, 2**24 + 3, 2**53 + 1, 2**60 + 2**36 + 1,
             2**60 + 2**36, 2**63 - 1, -(2**63), -(2**60 + 2**36 + 1)]


def encode_transform_column(kind, values, dense=True):
    def one(v):
        return repr(float(v)) if kind.startswith("float") else (v if kind == "str" else str(int(v)))
    return {"kind": kind, "dense": dense, "values": [one(v) for v in values] if dense else [[one(v) for v in row] for row in values]}


def tensor_of(kind, values, dense=True):
    """(batch,) dense tensor, or a RaggedTensor of rows."""
    if not dense:
        flat = [v for row in values for v in row]
        splits = np.cumsum([0] + [len(row) for row in values]).astype(np.int64)
        return tf.RaggedTensor.from_row_splits(tensor_of(kind, flat), splits)
    if kind == "str":
        return tf.constant(np.array([v.encode("utf-8") for v in values], dtype=object), tf.string)
    return tf.constant(np.array(values, dtype=kind))


def ids_list(out, dense=True):
    if isinstance(out, tf.SparseTensor):
        out = tf.RaggedTensor.from_sparse(out)
    if isinstance(out, tf.RaggedTensor):
        return [[str(int(v)) for v in row] for row in out.to_list()]
    return [str(int(v)) for v in np.asarray(out).reshape(-1)]


def transform_case(case_id, transform, column, expected, oracles):
    return {"id": case_id, "transform": transform, "column": column, "expected": expected, "oracles": oracles}


def feature_column_ids(column, features):
    from tensorflow.python.feature_column import feature_column_v2 as fcv2

    cache = fcv2.FeatureTransformationCache(features)
    return column.get_sparse_tensors(cache, None).id_tensor


def fc_input(kind, values, dense=True):
    """A feature-column input: dense (batch, 1) or a SparseTensor of rows."""
    t = tensor_of(kind, values, dense)
    return tf.reshape(t, [-1, 1]) if dense else t.to_sparse()


def sparse_rows(st, n):
    rows = [[] for _ in range(n)]
    for (row, _), value in zip(st.indices.numpy(), st.values.numpy()):
        rows[row].append(str(int(value)))
    return rows


def bucketize_cases(rng):
    cases = []
    boundary_sets = {"b0": [0.1, 1.0, 2.0], "ages": [18, 25, 35], "f32_round": [16777217.0, 2**60 + 2**37],
                     "wide": [-1e30, -1.5, 0.0, 1e-30, 1e30],
                     "subnormal": [-1e-44, 1e-44, 1.2e-38], "random": sorted(set(rng.normal(0, 10, 12).round(3).tolist()))}
    random_floats = rng.normal(0, 12, 60).tolist() + rng.uniform(-1e6, 1e6, 20).tolist()
    for name, boundaries in boundary_sets.items():
        layer = keras.layers.Discretization(bin_boundaries=boundaries)
        numeric = tf.feature_column.bucketized_column(tf.feature_column.numeric_column("x"), boundaries)
        for kind, values in (("float64", FLOAT_EDGES + random_floats), ("float32", FLOAT_EDGES[:13] + FLOAT_EDGES[-4:] + random_floats),
                             ("int64", INT_EDGES + [int(v) for v in rng.integers(-50, 50, 20)]),
                             ("int32", [0, 1, -1, 17, 18, 35, 2**31 - 1, -(2**31), 16777217])):
            with np.errstate(over="ignore"):
                values = [v for v in values if kind == "float64" or np.isfinite(np.asarray(v, kind).astype(np.float64))]
            tensor = tensor_of(kind, values)
            expected = ids_list(layer(tensor))
            oracles = ["keras.layers.Discretization"]
            fc_ids = feature_column_ids(numeric, {"x": tf.reshape(tensor, [-1, 1])})
            assert [row[0] for row in sparse_rows(fc_ids, len(values))] == expected, (name, kind)
            oracles.append("tf.feature_column.bucketized_column")
            cases.append(transform_case(f"bucketize_{name}_{kind}", {"transform": "bucketize", "name": "x", "boundaries": [float(b) for b in boundaries]},
                                        encode_transform_column(kind, values), expected, oracles))
        rows = [[1.5, 0.1], [], [np.nan, -0.0, 40.0]]
        cases.append(transform_case(f"bucketize_{name}_ragged", {"transform": "bucketize", "name": "x", "boundaries": [float(b) for b in boundaries]},
                                    encode_transform_column("float32", rows, dense=False),
                                    ids_list(layer(tensor_of("float32", rows, dense=False))), ["keras.layers.Discretization (ragged)"]))
    return cases


def lookup_cases(rng):
    cases = []
    words = ["fr", "us", "de", "", "é", "日本", "a\x00b", "x" * 70] + [random_text(rng, 6) for _ in range(30)]
    vocab = list(dict.fromkeys(w for w in words[:20] if w != "[UNK]"))
    values = words + ["zz", "yy", "xx", "[UNK]", "ww"] + [random_text(rng, 4) for _ in range(40)]
    int_vocab = [5, 7, 9, 0, 2**40, -(2**40), 123456789]
    int_values = int_vocab + [4, -1, 100, -7, 2**63 - 1, -(2**63), 8, 6] + [int(v) for v in rng.integers(-20, 20, 30)]
    for k in (0, 1, 3):
        in_vocab = [v for v in values if v in vocab] if k == 0 else values
        layer = keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=k)
        cases.append(transform_case(f"string_lookup_oov{k}", {"transform": "lookup", "name": "w", "vocabulary": vocab, "num_oov_indices": k, "style": "keras"},
                                    encode_transform_column("str", in_vocab), ids_list(layer(tensor_of("str", in_vocab))), ["keras.layers.StringLookup"]))
        in_vocab = [v for v in int_values if v in int_vocab] if k == 0 else int_values
        layer = keras.layers.IntegerLookup(vocabulary=int_vocab, num_oov_indices=k)
        cases.append(transform_case(f"integer_lookup_oov{k}", {"transform": "lookup", "name": "n", "vocabulary": int_vocab, "num_oov_indices": k, "style": "keras"},
                                    encode_transform_column("int64", in_vocab), ids_list(layer(tensor_of("int64", in_vocab))), ["keras.layers.IntegerLookup"]))
    rows = [["fr", "zz"], [], ["", "us", "qq"]]
    layer = keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=3)
    cases.append(transform_case("string_lookup_oov3_ragged", {"transform": "lookup", "name": "w", "vocabulary": vocab, "num_oov_indices": 3, "style": "keras"},
                                encode_transform_column("str", rows, dense=False), ids_list(layer(tensor_of("str", rows, dense=False))),
                                ["keras.layers.StringLookup (ragged)"]))
    # Feature columns: dense inputs (ignore values '' / -1 are dropped: "expected" null) and sparse ones.
    fc = tf.feature_column
    for label, options in (("default", {}), ("default7", {"default_value": 7}), ("buckets3", {"num_oov_buckets": 3})):
        config = {"num_oov_indices": options.get("num_oov_buckets", 0), "style": "feature_column"}
        if "default_value" in options:
            config["default_value"] = options["default_value"]
        for kind, vocabulary, column_values in (("str", vocab, values), ("int64", int_vocab, int_values)):
            column = fc.categorical_column_with_vocabulary_list("v", vocabulary, **options)
            name = "string" if kind == "str" else "integer"
            transform = {"transform": "lookup", "name": "v", "vocabulary": vocabulary, **config}
            ids = feature_column_ids(column, {"v": fc_input(kind, column_values)})
            expected = [row[0] if row else None for row in sparse_rows(ids, len(column_values))]
            cases.append(transform_case(f"vocabulary_list_{name}_{label}_dense", transform, encode_transform_column(kind, column_values),
                                        expected, ["tf.feature_column.categorical_column_with_vocabulary_list"]))
            rows = [column_values[i : i + 3] for i in range(0, 30, 3)] + [[], ["" if kind == "str" else -1]]
            ids = feature_column_ids(column, {"v": fc_input(kind, rows, dense=False)})
            cases.append(transform_case(f"vocabulary_list_{name}_{label}_sparse", transform, encode_transform_column(kind, rows, dense=False),
                                        sparse_rows(ids, len(rows)), ["tf.feature_column.categorical_column_with_vocabulary_list (sparse)"]))
    for default in (0, 3):
        column = fc.categorical_column_with_identity("i", 10, default_value=default)
        values = [0, 9, 10, -1, -5, 3, 2**40, -(2**63), 2**63 - 1] + [int(v) for v in rng.integers(-3, 14, 20)]
        transform = {"transform": "identity", "name": "i", "num_buckets": 10, "default_value": default}
        ids = feature_column_ids(column, {"i": fc_input("int64", values)})
        cases.append(transform_case(f"identity_default{default}_dense", transform, encode_transform_column("int64", values),
                                    [row[0] if row else None for row in sparse_rows(ids, len(values))],
                                    ["tf.feature_column.categorical_column_with_identity"]))
        rows = [[0, -1, 12], [], [5, 9, 10]]
        ids = feature_column_ids(column, {"i": fc_input("int64", rows, dense=False)})
        cases.append(transform_case(f"identity_default{default}_sparse", transform, encode_transform_column("int64", rows, dense=False),
                                    sparse_rows(ids, len(rows)), ["tf.feature_column.categorical_column_with_identity (sparse)"]))
    return cases


def hash_cases(rng):
    cases = []
    texts = list(TEXTS) + [random_text(rng, 10) for _ in range(40)]
    ints = [0, 1, -1, 2, 10, 2**31, 2**63 - 1, -(2**63)] + [int(v) for v in rng.integers(-(2**62), 2**62, 30, dtype=np.int64)]
    for num_bins in (1, 3, 10, 1000, 2**31 - 1):
        layer = keras.layers.Hashing(num_bins)
        cases.append(transform_case(f"hash_str_bins{num_bins}", {"transform": "hash", "name": "h", "num_bins": num_bins},
                                    encode_transform_column("str", texts), ids_list(layer(tensor_of("str", texts))), ["keras.layers.Hashing"]))
        cases.append(transform_case(f"hash_int64_bins{num_bins}", {"transform": "hash", "name": "h", "num_bins": num_bins},
                                    encode_transform_column("int64", ints), ids_list(layer(tensor_of("int64", ints))), ["keras.layers.Hashing"]))
    return cases


def crossed_column_cases(rng):
    """crossed_column over transformed columns, and HashedCrossing over Keras preprocessors (FeatureSpace)."""
    fc = tf.feature_column
    cases = []
    n = 40
    ages = [17.0, 18.0, 30.0] + rng.uniform(0, 90, n - 3).round(1).tolist()
    countries = ["fr", "fr", "us"] + [str(rng.choice(["fr", "us", "de", "jp", "é"])) for _ in range(n - 3)]
    hours = [int(v) for v in rng.integers(0, 30, n)]
    vocab = ["us", "fr", "de"]
    specs = [
        ("bucketized_x_raw", [fc.bucketized_column(fc.numeric_column("age"), [18.0, 25.0]), "country"],
         [{"transform": "bucketize", "name": "age", "boundaries": [18.0, 25.0]}, "country"], 1000),
        ("vocabulary_x_identity", [fc.categorical_column_with_vocabulary_list("country", vocab, num_oov_buckets=2),
                                   fc.categorical_column_with_identity("hour", 24, default_value=0)],
         [{"transform": "lookup", "name": "country", "vocabulary": vocab, "num_oov_indices": 2, "style": "feature_column"},
          {"transform": "identity", "name": "hour", "num_buckets": 24, "default_value": 0}], 97),
        ("identity_x_bucketized_x_vocabulary", [fc.categorical_column_with_identity("hour", 24, default_value=23),
                                                fc.bucketized_column(fc.numeric_column("age"), [10.0, 20.0, 40.0, 80.0]),
                                                fc.categorical_column_with_vocabulary_list("country", vocab)],
         [{"transform": "identity", "name": "hour", "num_buckets": 24, "default_value": 23},
          {"transform": "bucketize", "name": "age", "boundaries": [10.0, 20.0, 40.0, 80.0]},
          {"transform": "lookup", "name": "country", "vocabulary": vocab, "style": "feature_column"}], 2**31 - 1),
    ]
    raw = {"age": ("float32", ages), "country": ("str", countries), "hour": ("int64", hours)}
    for case_id, keys, features, num_bins in specs:
        column = fc.crossed_column(keys, num_bins)
        inputs = {name: fc_input(kind, values) for name, (kind, values) in raw.items()}
        ids = feature_column_ids(column, inputs)
        names = [f if isinstance(f, str) else f["name"] for f in features]
        cases.append({"id": f"crossed_column_{case_id}", "features": features, "num_bins": num_bins, "tf_name": column.name,
                      "columns": {nm: encode_transform_column(*raw[nm]) for nm in names},
                      "expected": sparse_rows(ids, n), "oracles": ["tf.feature_column.crossed_column"]})
    # FeatureSpace-style: HashedCrossing over Discretization and StringLookup outputs.
    sexes = [str(rng.choice(["male", "female", "other"])) for _ in range(n)]
    age_ids = keras.layers.Discretization(bin_boundaries=[18.0, 35.0, 50.0])(tensor_of("float32", ages))
    sex_ids = keras.layers.StringLookup(vocabulary=["male", "female"])(tensor_of("str", sexes))
    expected = ids_list(keras.layers.HashedCrossing(32)([age_ids, sex_ids]))
    cases.append({"id": "feature_space_age_x_sex", "features": [{"transform": "bucketize", "name": "age", "boundaries": [18.0, 35.0, 50.0]},
                  {"transform": "lookup", "name": "sex", "vocabulary": ["male", "female"], "num_oov_indices": 1, "style": "keras"}],
                  "num_bins": 32, "columns": {"age": encode_transform_column("float32", ages), "sex": encode_transform_column("str", sexes)},
                  "expected": [[v] for v in expected], "oracles": ["keras.layers.HashedCrossing over Discretization, StringLookup"]})
    return cases


def transform_vectors() -> list[dict]:
    rng = np.random.default_rng(10)
    return bucketize_cases(rng) + lookup_cases(rng) + hash_cases(rng) + crossed_column_cases(rng)


# ---------------------------------------------------------------- main


def provenance(command: str) -> dict:
    return {
        "generator": "tests/golden/generate.py",
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "feature_columns": "tf.feature_column (TF " + tf.__version__ + "), ids through get_sparse_tensors",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "default_hash_key": str(DEFAULT_HASH_KEY),
        "hash_keys": [None if k is None else str(k) for k in HASH_KEYS],
        "num_bins": [str(b) for b in NUM_BINS],
        "encoding": "integers as decimal strings; bytes as hex; str hashed as UTF-8",
    }


def write(name: str, vectors: list[dict], oracle: str) -> None:
    document = {"provenance": {**provenance("python tests/golden/generate.py"), "oracle": oracle}, "vectors": vectors}
    path = HERE / name
    path.write_text(json.dumps(document, ensure_ascii=True, indent=None, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(HERE.parent.parent)}: {len(vectors)} vectors, {path.stat().st_size} bytes", file=sys.stderr)


def main() -> None:
    write("fingerprint64.json", fingerprint_vectors(), "tf.fingerprint(method='farmhash64')")
    write("cross_dense.json", dense_cases(), "tf.sparse.cross_hashed; keras.layers.HashedCrossing")
    write("cross_ragged.json", ragged_cases(), "tf.ragged.cross_hashed; tf.sparse.cross_hashed")
    write("transforms.json", transform_vectors(),
          "keras.layers.Discretization, StringLookup, IntegerLookup, Hashing, HashedCrossing; tf.feature_column "
          "bucketized_column, categorical_column_with_vocabulary_list, categorical_column_with_identity, crossed_column")


if __name__ == "__main__":
    main()
