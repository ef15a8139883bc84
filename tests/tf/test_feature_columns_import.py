"""``beam_cross.from_feature_columns`` against the real feature columns: the crosses it imports from a
wide & deep ``crossed_column`` set (``tests/importer_oracle.py``) give, through the core
(``Cross.apply``) and the serving layer (``CrossingLayer``, eagerly and after ``model.export``), the
ids of each crossed column's ``get_sparse_tensors(...).id_tensor``, on rows with every edge; a row TF
leaves without an id (a dropped ``''`` / ``-1``) is a ``FeatureError`` with reason ``no_id``, never a
wrong id. Multivalent features (SparseTensors in TF, lists here) too. What cannot be reproduced is
refused with an error naming the column.

Keras 3 only: tensorflow_transform is never imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="feature columns are TensorFlow's")
keras = pytest.importorskip("keras", reason="the serving layer is a Keras 3 layer")

from beam_cross import Bucketize, Cross, CrossingLayer, FeatureError, Identity, Lookup, from_feature_columns  # noqa: E402
from beam_cross.core.errors import NO_ID  # noqa: E402
from tests import importer_oracle as oracle  # noqa: E402

fc = tf.feature_column


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    columns = oracle.wide_columns(str(tmp_path_factory.mktemp("vocab") / "workclass.txt"))
    rows = oracle.wide_rows()
    return columns, rows, oracle.feature_column_ids(columns, rows)


def _np(values):
    if isinstance(values[0], str):
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.float64 if isinstance(values[0], float) else np.int64)


def _select(rows: dict, index) -> dict:
    return {name: _np([values[i] for i in index]) for name, values in rows.items()}


def test_the_crossed_columns_are_imported_with_their_names_order_and_hash_key(wide):
    columns, _, _ = wide
    crosses = from_feature_columns(columns)
    crossed = [c for c in columns if type(c).__name__ == "CrossedColumn"]
    assert [c.name for c in crosses] == [c.name for c in crossed]  # the non-crossed columns are skipped
    assert crosses[0].name == "age_bucketized_X_education" and crosses[0].features == ("age", "education")
    assert crosses[0].inputs[0] == Bucketize("age", oracle.AGE_BOUNDARIES)
    # the nested cross is flattened in its given order; the name is TF's (sorted)
    nested = crosses[2]
    assert nested.name == "age_bucketized_X_education_num_X_workclass"
    assert nested.features == ("age", "workclass", "education_num") and nested.hash_key == 12345
    assert nested.inputs[1] == Lookup("workclass", oracle.WORKCLASS, num_oov_indices=2, style="feature_column")
    assert nested.inputs[2] == Identity("education_num", 16, default_value=0)
    assert crosses[1].inputs[0] == Lookup("occupation", oracle.OCCUPATION, style="feature_column", default_value=-1)
    assert [c.num_bins for c in crosses] == [c.hash_bucket_size for c in crossed]


def test_the_core_gives_the_ids_of_the_feature_columns(wide):
    columns, rows, expected = wide
    n = len(next(iter(rows.values())))
    for cross in from_feature_columns(columns):
        ids = expected[cross.name]
        kept = [i for i in range(n) if ids[i]]
        dropped = [i for i in range(n) if not ids[i]]
        assert all(len(ids[i]) == 1 for i in kept)
        assert cross.apply(_select(rows, kept)).tolist() == [ids[i][0] for i in kept], cross.name
        for i in dropped:  # TF gives no id: the core refuses the row, naming the dropped feature
            with pytest.raises(FeatureError) as caught:
                cross.apply(_select(rows, [i]))
            assert caught.value.reason == NO_ID
            assert rows[caught.value.feature][i] in ("", -1)
    dropping = [name for name, ids in expected.items() if any(not row for row in ids)]
    assert len(dropping) == 3  # the rows do reach both outcomes (and the raw keys never drop)


def test_the_edges_are_there(wide):
    _, rows, _ = wide
    ages = rows["age"]
    assert any(np.isnan(a) for a in ages) and float("inf") in ages and 18.0 in ages
    assert 16777217 in rows["capital_gain"] and -1 in rows["relationship"] and -1 in rows["education_num"]
    assert "" in rows["occupation"] and "Holand-Netherlands" in rows["native_country"]


def test_multivalent_features_give_the_ids_of_sparse_inputs(wide):
    columns, _, _ = wide
    rows = oracle.wide_multivalent_rows()
    (crossed,) = [c for c in columns if getattr(c, "name", "") == "native_country_X_occupation"]
    expected = oracle.feature_column_ids([crossed], rows)[crossed.name]
    (cross,) = from_feature_columns([crossed])
    assert cross.apply(rows).to_pylist() == expected
    assert any(not row for row in expected) and any(len(row) > 1 for row in expected)
    assert any("" in row for row in rows["occupation"])  # a list's '' is looked up, as a SparseTensor's


def test_the_serving_layer_gives_the_ids_of_sparse_inputs(wide):
    columns, _, _ = wide
    rows = oracle.wide_multivalent_rows()
    (crossed,) = [c for c in columns if getattr(c, "name", "") == "native_country_X_occupation"]
    expected = oracle.feature_column_ids([crossed], rows)[crossed.name]
    layer = CrossingLayer(from_feature_columns([crossed]))
    for make in (lambda v: tf.ragged.constant(v, tf.string), lambda v: tf.ragged.constant(v, tf.string).to_sparse()):
        out = layer({name: make(values) for name, values in rows.items()})[crossed.name]
        out = out if isinstance(out, tf.RaggedTensor) else tf.RaggedTensor.from_sparse(out)
        assert out.to_list() == expected


def test_the_spec_round_trips_and_gives_the_same_ids(wide):
    columns, rows, expected = wide
    crosses = from_feature_columns(columns)
    again = [Cross.from_json(json.dumps(c.to_dict())) for c in crosses]
    assert again == crosses
    kept = [i for i in range(len(rows["age"])) if all(expected[c.name][i] for c in crosses)]
    assert again[3].apply(_select(rows, kept)).tolist() == [expected[crosses[3].name][i][0] for i in kept]


def test_a_crlf_vocabulary_file_and_vocabulary_size_are_read_as_tf_reads_them(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"b\r\na\r\nc\r\nd")
    vocab = fc.categorical_column_with_vocabulary_file("w", str(path), vocabulary_size=3)
    crossed = fc.crossed_column([vocab, "k"], 97)
    rows = {"w": ["a", "b", "c", "d", "b\r", "zz"], "k": ["x", "y", "x", "y", "x", "y"]}
    expected = oracle.feature_column_ids([crossed], rows)[crossed.name]
    (cross,) = from_feature_columns(crossed)
    assert cross.inputs[0].vocabulary == ("b", "a", "c")
    assert cross.apply(rows).tolist() == [row[0] for row in expected]
    too_short = fc.categorical_column_with_vocabulary_file("w", str(path), vocabulary_size=9)
    with pytest.raises(ValueError, match=r"`k_X_w`: `w` has vocabulary_size=9, but its file has 4 lines"):
        from_feature_columns([fc.crossed_column([too_short, "k"], 97)])


def test_an_integer_numeric_column_bucketizes_as_float32():
    gain = fc.bucketized_column(fc.numeric_column("g", dtype=tf.int64), [16777217.0])
    crossed = fc.crossed_column([gain, "k"], 1000)
    rows = {"g": [16777216, 16777217, 16777218, 3], "k": ["a", "a", "a", "a"]}
    expected = [row[0] for row in oracle.feature_column_ids([crossed], rows)[crossed.name]]
    assert from_feature_columns([crossed])[0].apply(rows).tolist() == expected


def _age():
    return fc.bucketized_column(fc.numeric_column("age"), [18.0])


@pytest.mark.parametrize("columns, error, match", [
    ([_age(), fc.indicator_column(fc.categorical_column_with_identity("h", 3))], ValueError,
     r"holds no crossed_column.*Received: columns=\['age_bucketized', 'h_indicator'\]"),
    ([fc.crossed_column([fc.bucketized_column(fc.numeric_column("age", shape=(2,)), [18.0]), "k"], 10)], ValueError,
     r"Crossed column `age_bucketized_X_k`: `age_bucketized` bucketizes a numeric_column of shape \(2,\)"),
    ([fc.crossed_column([fc.bucketized_column(fc.numeric_column("age", normalizer_fn=lambda x: x / 2), [1.0]), "k"],
                        10)], ValueError, r"`age_bucketized_X_k`: `age_bucketized` bucketizes a numeric_column with a "
     r"normalizer_fn"),
    ([fc.crossed_column([_age(), "age"], 10)], ValueError,
     r"Crossed column `age_X_age_bucketized` crosses the raw feature\(s\) \['age'\] more than once"),
    ([fc.crossed_column([fc.sequence_categorical_column_with_identity("s", 3), "k"], 10)], ValueError,
     r"`k_X_s`: its key `s` is a SequenceCategoricalColumn, which beam_cross does not reproduce"),
    (["age"], TypeError, r"`columns` must hold tf.feature_column columns. Received: 'age'"),
    (42, TypeError, r"`columns` must be a feature column or a list of them. Received: columns=42"),
])
def test_what_cannot_be_reproduced_is_refused_naming_the_column(columns, error, match):
    with pytest.raises(error, match=match):
        from_feature_columns(columns)


def test_hashed_and_weighted_keys_are_refused_as_tf_refuses_them():
    """TF refuses a hashed key at crossed_column and a weighted one when it computes the ids; the
    importer refuses the weighted one, naming it."""
    hashed = fc.categorical_column_with_hash_bucket("k", 10)
    with pytest.raises(ValueError, match="categorical_column_with_hash_bucket is not supported for crossing"):
        fc.crossed_column([hashed, "j"], 10)
    weighted = fc.crossed_column([fc.weighted_categorical_column(fc.categorical_column_with_identity("k", 3), "w", tf.float64), "j"],
                                 10)
    with pytest.raises(ValueError, match="weight_tensor"):
        oracle.feature_column_ids([weighted], {"k": [1], "w": [0.5], "j": ["a"]})
    with pytest.raises(ValueError, match=r"`j_X_k_weighted_by_w`: its key `k_weighted_by_w` is a WeightedCategoricalColumn"):
        from_feature_columns([weighted])


@pytest.fixture(scope="module")
def served(wide, tmp_path_factory):
    """The imported crosses in a CrossingLayer: eagerly, and exported (``model.export``) then loaded."""
    columns, rows, expected = wide
    crosses = from_feature_columns(columns)
    dtypes = {name: "string" if isinstance(v[0], str) else ("float64" if isinstance(v[0], float) else "int64")
              for name, v in rows.items()}
    inputs = {name: keras.Input(shape=(), dtype=dtype, name=name) for name, dtype in dtypes.items()}
    model = keras.Model(inputs, CrossingLayer(crosses)(inputs))
    path = str(tmp_path_factory.mktemp("fc_layer") / "exported")
    model.export(path)
    return crosses, {"eager": CrossingLayer(crosses), "export_serve": tf.saved_model.load(path).serve}


@pytest.mark.parametrize("run", ["eager", "export_serve"])
def test_the_serving_layer_gives_the_ids_of_the_feature_columns(wide, served, run):
    _, rows, expected = wide
    crosses, runs = served
    kept = [i for i in range(len(rows["age"])) if all(expected[c.name][i] for c in crosses)]
    outputs = runs[run]({name: tf.constant(values) for name, values in _select(rows, kept).items()})
    for cross in crosses:
        assert np.asarray(outputs[cross.name]).reshape(-1).tolist() == [expected[cross.name][i][0] for i in kept]
    dropped = next(i for i in range(len(rows["age"])) if not expected[crosses[1].name][i])
    with pytest.raises(tf.errors.InvalidArgumentError, match=NO_ID):
        runs[run]({name: tf.constant(values) for name, values in _select(rows, [dropped]).items()})


def test_importing_feature_columns_loads_no_tf_keras():
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        import beam_cross
        fc = tf.feature_column
        crosses = beam_cross.from_feature_columns(
            [fc.crossed_column([fc.bucketized_column(fc.numeric_column("a"), [1.0]), "b"], 10)])
        print(json.dumps([crosses[0].name, sorted(m for m in sys.modules if m.split(".")[0] == "tf_keras")]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["a_bucketized_X_b", []]
