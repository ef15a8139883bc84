"""The two shapes the importers are tested on, and their ids as TensorFlow and Keras compute them.

- ``wide``: a wide & deep model's ``tf.feature_column`` set: ``crossed_column`` over a bucketized
  float age and a raw education, over two vocabulary lists (occupation x native_country, one with
  OOV buckets), a nested cross of the age with a vocabulary *file* crossed with an identity column,
  and a bucketized int64 capital gain (boundaries above 2**24) x an int vocabulary x a raw string;
  plus columns that are not crossed (skipped by the importer). TF's ids: each crossed column's
  ``get_sparse_tensors(FeatureTransformationCache(features), None).id_tensor``.
- ``space``: the Keras structured-data example's ``FeatureSpace`` (``sex`` string_categorical x
  ``float_discretized`` age, thal x a hashed int, an integer lookup x one with 3 OOV indices, a
  hashed string x an integer lookup; Keras' HashedCrossing takes two features), adapted on
  training rows and saved to a ``.keras`` file. Keras' ids: the
  FeatureSpace called with ``output_mode="dict"`` (argmax of a one-hot cross, the int of an int one).

Rows carry every edge: OOV tokens, empty strings, -1, NaN, +-inf, -0.0, boundary values and their
float32 neighbours, integers above 2**24. A feature column drops ``''`` / ``-1`` before a lookup,
so TF gives such a row no id (an empty list here).

Run as a script (``python tests/importer_oracle.py OUT_DIR``), it writes ``oracle.json`` (the
crosses of both shapes as the importers give them, the rows, TF's and Keras' ids; ``wide_multivalent``:
the occupation x native_country cross on lists, SparseTensors for TF) and
``space.keras`` into OUT_DIR: the tests of the Beam, command and tf.Transform front doors read
that file, made in a clean process (Keras 3 and tf_keras never meet).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

AGE_BOUNDARIES = [18.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0]
GAIN_BOUNDARIES = [1000.0, 16777217.0, 30000000.0]  # 16777217 is 16777216 as float32
EDUCATION = ["Bachelors", "HS-grad", "11th", "Masters", "9th", "Some-college", "Assoc-acdm", "Doctorate"]
OCCUPATION = ["Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial", "Prof-specialty"]
COUNTRY = ["United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany", "India", "Japan", "Côte-d'Ivoire"]
WORKCLASS = ["Private", "Self-emp-not-inc", "Federal-gov", "Local-gov", "State-gov", "Never-worked"]
RELATIONSHIP = [0, 1, 2, 5, 2**40, -7]


def _pick(rng, values, n):
    return [values[i] for i in rng.integers(0, len(values), n)]


def wide_rows(n: int = 400, seed: int = 7) -> dict:
    """Raw columns (Python values) of the wide shape, with every edge."""
    rng = np.random.default_rng(seed)
    ages = [float(b) for b in AGE_BOUNDARIES] + [float(np.nextafter(np.float32(b), np.float32(0))) for b in AGE_BOUNDARIES]
    ages += [float("nan"), float("inf"), float("-inf"), -0.0, 17.999999999, 25.000000001, 0.1, 1e39, 16777217.0]
    ages += [float(a) for a in rng.uniform(0, 90, 30)]
    gains = [0, 999, 1000, 1001, 16777215, 16777216, 16777217, 16777218, 29999999, 30000000, 30000001, 2**40, -5,
             2**63 - 1, -(2**63)]
    return {
        "age": _pick(rng, ages, n),
        "education": _pick(rng, EDUCATION + ["", "Preschool", "bachelors"], n),
        "occupation": _pick(rng, OCCUPATION + ["", "Armed-Forces"], n),
        "native_country": _pick(rng, COUNTRY + ["", "Holand-Netherlands", "?"], n),
        "workclass": _pick(rng, WORKCLASS + ["", "Without-pay"], n),
        "education_num": [int(v) for v in rng.integers(-1, 21, n)],
        "capital_gain": _pick(rng, gains + [int(v) for v in rng.integers(0, 40_000_000, 10)], n),
        "relationship": _pick(rng, RELATIONSHIP + [-1, 3, 2**41, -(2**63)], n),
        "race": _pick(rng, ["White", "Black", "", "Asian-Pac-Islander"], n),
    }


def wide_multivalent_rows(n: int = 120, seed: int = 11) -> dict:
    """occupation and native_country as lists (SparseTensors in TF): empty lists and '' included."""
    rng = np.random.default_rng(seed)
    occupation = OCCUPATION + ["", "Armed-Forces"]
    country = COUNTRY + ["", "?"]
    return {
        "occupation": [_pick(rng, occupation, int(k)) for k in rng.integers(0, 4, n)],
        "native_country": [_pick(rng, country, int(k)) for k in rng.integers(0, 3, n)],
    }


def wide_columns(vocabulary_file: str) -> list:
    """The wide & deep feature columns: four crossed columns among columns that are not crossed."""
    import tensorflow as tf

    fc = tf.feature_column
    Path(vocabulary_file).write_text("\n".join(WORKCLASS) + "\n", encoding="utf-8")
    age = fc.bucketized_column(fc.numeric_column("age"), AGE_BOUNDARIES)
    education = fc.categorical_column_with_vocabulary_list("education", EDUCATION)
    occupation = fc.categorical_column_with_vocabulary_list("occupation", OCCUPATION)
    country = fc.categorical_column_with_vocabulary_list("native_country", COUNTRY, num_oov_buckets=4)
    workclass = fc.categorical_column_with_vocabulary_file("workclass", vocabulary_file, num_oov_buckets=2)
    education_num = fc.categorical_column_with_identity("education_num", 16, default_value=0)
    gain = fc.bucketized_column(fc.numeric_column("capital_gain", dtype=tf.int64), GAIN_BOUNDARIES)
    relationship = fc.categorical_column_with_vocabulary_list("relationship", RELATIONSHIP, dtype=tf.int64,
                                                              num_oov_buckets=3)
    return [
        age,
        fc.crossed_column([age, "education"], 1000),
        fc.indicator_column(education),
        fc.crossed_column([occupation, country], 5000),
        fc.embedding_column(occupation, 8),
        fc.crossed_column([fc.crossed_column([age, workclass], 10), education_num], 2000, hash_key=12345),
        fc.crossed_column([gain, relationship, "race"], 300),
    ]


def _tensor(values, tf):
    if isinstance(values[0], list):
        return tf.ragged.constant(values, dtype=tf.string).to_sparse()
    if isinstance(values[0], str):
        return tf.constant(values, tf.string, shape=[len(values), 1])
    if isinstance(values[0], float):
        return tf.constant(values, tf.float64, shape=[len(values), 1])
    return tf.constant(values, tf.int64, shape=[len(values), 1])


def feature_column_ids(columns: list, rows: dict) -> dict:
    """``{crossed column name: ids per row}`` (a list per row; empty where TF gives no id)."""
    import tensorflow as tf
    from tensorflow.python.feature_column import feature_column_v2 as fcv2

    out = {}
    for column in columns:
        if not isinstance(column, fcv2.CrossedColumn):
            continue
        features = {name: _tensor(values, tf) for name, values in rows.items()}
        ids = column.get_sparse_tensors(fcv2.FeatureTransformationCache(features), None).id_tensor
        out[column.name] = [[int(v) for v in row] for row in tf.RaggedTensor.from_sparse(ids).to_list()]
    return out


SEXES = ["male", "female"]
THAL = ["normal", "fixed", "reversible"]


def space_training_rows(n: int = 300, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "sex": _pick(rng, SEXES, n),
        "age": [float(a) for a in rng.normal(54, 9, n)],
        "thal": _pick(rng, THAL + ["normal", "normal"], n),
        "ca": [int(v) for v in rng.integers(0, 4, n)],
        "cp": [int(v) for v in rng.integers(0, 5, n)],
        "slope": _pick(rng, ["up", "flat", "down"], n),
        "fbs": [int(v) for v in rng.integers(0, 2, n)],
        "chol": [float(v) for v in rng.normal(240, 40, n)],
    }


def space_rows(boundaries: list, n: int = 300, seed: int = 5) -> dict:
    """Rows to cross with the adapted FeatureSpace: its age boundaries and their float32 neighbours,
    NaN, +-inf, -0.0, values above 2**24, OOV and empty strings, unseen and negative integers."""
    rng = np.random.default_rng(seed)
    ages = [float(b) for b in boundaries] + [float(np.nextafter(np.float32(b), np.float32(-np.inf))) for b in boundaries]
    ages += [float(b) + 1e-9 for b in boundaries]
    ages += [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 16777217.0, 3e38, 1e39]
    ages += [float(a) for a in rng.normal(54, 12, 40)]
    return {
        "sex": _pick(rng, SEXES + ["", "Female", "x"], n),
        "age": _pick(rng, ages, n),
        "thal": _pick(rng, THAL + ["", "1", "Normal", "é"], n),
        "ca": _pick(rng, [0, 1, 2, 3, -1, 9, 2**31 - 1, -(2**31)], n),
        "cp": _pick(rng, [0, 1, 2, 3, 4, 5, -1, 100], n),
        "slope": _pick(rng, ["up", "flat", "down", "", "UP"], n),
        "fbs": _pick(rng, [0, 1, 2, 3, 4, -1, -2, 7, 1000], n),
        "chol": [float(v) for v in rng.normal(240, 40, n)],
    }


def feature_space():
    """The (not yet adapted) FeatureSpace of the structured-data example's shape."""
    import keras

    fs = keras.utils.FeatureSpace
    return fs(
        features={
            "sex": fs.string_categorical(num_oov_indices=1),
            "age": fs.float_discretized(num_bins=30),
            "thal": fs.string_categorical(num_oov_indices=2),
            "ca": fs.integer_hashed(num_bins=7),
            "cp": fs.integer_categorical(num_oov_indices=1, output_mode="int"),
            "slope": fs.string_hashed(num_bins=11),
            "fbs": fs.integer_categorical(num_oov_indices=3),
            "chol": fs.float_normalized(),
        },
        crosses=[
            fs.cross(("sex", "age"), crossing_dim=64),
            fs.cross(("thal", "ca"), crossing_dim=16, output_mode="int"),
            fs.cross(("cp", "fbs"), crossing_dim=32),
            fs.cross(("slope", "cp"), crossing_dim=8, output_mode="int"),
        ],
        output_mode="dict",
    )


def adapted_feature_space():
    import tensorflow as tf

    space = feature_space()
    space.adapt(tf.data.Dataset.from_tensor_slices(space_training_rows()).batch(64))
    return space


def space_tensors(rows: dict) -> dict:
    import tensorflow as tf

    dtypes = {"sex": tf.string, "thal": tf.string, "slope": tf.string, "age": tf.float64, "chol": tf.float64}
    return {name: tf.constant(values, dtypes.get(name, tf.int64)) for name, values in rows.items()}


def feature_space_ids(space, rows: dict) -> dict:
    """``{cross name: id per row}`` as the FeatureSpace computes them (argmax of a one-hot cross)."""
    out = space(space_tensors(rows))
    ids = {}
    for cross in space.crosses:
        value = np.asarray(out[cross.name])
        ids[cross.name] = (value.argmax(axis=-1) if cross.output_mode == "one_hot" else value.reshape(-1)).tolist()
    return ids


def _boundaries(space) -> list:
    return [float(b) for b in space.preprocessors["age"].bin_boundaries]


def write_oracle(out_dir: str) -> Path:
    """``oracle.json`` and ``space.keras`` in ``out_dir``: both shapes, their crosses and the TF / Keras ids."""
    import keras

    import beam_cross

    out = Path(out_dir)
    columns = wide_columns(str(out / "workclass.txt"))
    rows = wide_rows()
    multivalent = [c for c in columns if getattr(c, "name", "") == "native_country_X_occupation"]
    m_rows = wide_multivalent_rows()
    space = adapted_feature_space()
    space.save(str(out / "space.keras"))
    loaded = keras.saving.load_model(str(out / "space.keras"))
    s_rows = space_rows(_boundaries(loaded))
    document = {
        "wide": {"crosses": [c.to_dict() for c in beam_cross.from_feature_columns(columns)], "rows": rows,
                 "expected": feature_column_ids(columns, rows)},
        "wide_multivalent": {"crosses": [c.to_dict() for c in beam_cross.from_feature_columns(multivalent)],
                             "rows": m_rows, "expected": feature_column_ids(multivalent, m_rows)},
        "space": {"crosses": [c.to_dict() for c in beam_cross.from_feature_space(str(out / "space.keras"))],
                  "rows": s_rows, "expected": feature_space_ids(loaded, s_rows)},
    }
    path = out / "oracle.json"
    path.write_text(json.dumps(document))
    return path


def run_oracle(out_dir) -> dict:
    """``write_oracle`` in a clean child process (no TF_USE_LEGACY_KERAS), then the document."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, __file__, str(out_dir)], check=True, env=env, capture_output=True)
    return json.loads((Path(out_dir) / "oracle.json").read_text())


def single_valued(shape: dict) -> tuple[list, list]:
    """``(rows, expected)``: the rows as dicts, and per row ``{cross: id}`` or None where TF gives a
    cross no id (a dropped '' / -1): beam_cross rejects that row (reason ``no_id``)."""
    names = list(shape["rows"])
    rows = [dict(zip(names, values)) for values in zip(*shape["rows"].values())]
    expected = []
    for i in range(len(rows)):
        ids = {name: shape["expected"][name][i] for name in shape["expected"]}
        if all(isinstance(v, int) or len(v) == 1 for v in ids.values()):
            expected.append({name: v if isinstance(v, int) else v[0] for name, v in ids.items()})
        else:
            expected.append(None)
    return rows, expected


if __name__ == "__main__":
    write_oracle(sys.argv[1])
