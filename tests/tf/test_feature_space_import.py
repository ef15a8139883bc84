"""``beam_cross.from_feature_space`` against the real Keras 3 ``FeatureSpace``: the structured-data
example's shape (``tests/importer_oracle.py``), adapted, saved to ``.keras`` and read back from the
file, gives crosses whose ids, through the core (``Cross.apply``) and the serving layer
(``CrossingLayer``, eagerly and after ``model.export``; one-hot vectors equal too), are the ids the
FeatureSpace computes (``output_mode="dict"``) on rows with every edge. The transforms carry the
saved vocabularies and boundaries, read, not recomputed. A cross over a feature that is not
categorical, hashed or discretized, or over a preprocessor beam_cross does not reproduce, is refused.

Keras 3 only: tensorflow_transform is never imported here.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="FeatureSpace runs on TensorFlow")
keras = pytest.importorskip("keras", reason="FeatureSpace is Keras 3's")

from beam_cross import Bucketize, Cross, CrossingLayer, Hash, Lookup, from_feature_space  # noqa: E402
from tests import importer_oracle as oracle  # noqa: E402

if keras.backend.backend() != "tensorflow":
    pytest.skip("the FeatureSpace oracle needs KERAS_BACKEND=tensorflow", allow_module_level=True)

fs = keras.utils.FeatureSpace


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The adapted FeatureSpace, the one loaded from its .keras file, that file, edge rows and Keras' ids."""
    adapted = oracle.adapted_feature_space()
    path = tmp_path_factory.mktemp("space") / "space.keras"
    adapted.save(str(path))
    loaded = keras.saving.load_model(str(path))
    rows = oracle.space_rows([float(b) for b in loaded.preprocessors["age"].bin_boundaries])
    return adapted, loaded, path, rows, oracle.feature_space_ids(loaded, rows)


def _np(rows):
    return {name: np.array(v, dtype=object if isinstance(v[0], str) else (np.float64 if isinstance(v[0], float) else np.int64))
            for name, v in rows.items()}


def test_the_crosses_are_read_from_the_file_as_from_the_object(space):
    adapted, loaded, path, _, _ = space
    from_file = from_feature_space(path)
    assert from_file == from_feature_space(str(path)) == from_feature_space(adapted) == from_feature_space(loaded)
    assert [c.name for c in from_file] == ["sex_X_age", "thal_X_ca", "cp_X_fbs", "slope_X_cp"]
    assert [(c.num_bins, c.output_mode) for c in from_file] == [(64, "one_hot"), (16, "int"), (32, "one_hot"), (8, "int")]


def test_the_transforms_carry_the_saved_parameters(space):
    _, loaded, path, _, _ = space
    sex_x_age, thal_x_ca, cp_x_fbs, slope_x_cp = from_feature_space(path)
    p = loaded.preprocessors
    assert sex_x_age.inputs[0] == Lookup("sex", p["sex"].get_vocabulary(include_special_tokens=False))
    assert sex_x_age.inputs[1] == Bucketize("age", p["age"].bin_boundaries) and len(p["age"].bin_boundaries) == 29
    assert thal_x_ca.inputs == (Lookup("thal", p["thal"].get_vocabulary(include_special_tokens=False), num_oov_indices=2),
                                Hash("ca", 7))
    assert cp_x_fbs.inputs[1] == Lookup("fbs", [int(v) for v in p["fbs"].get_vocabulary(include_special_tokens=False)],
                                        num_oov_indices=3)
    assert slope_x_cp.inputs[0] == Hash("slope", 11)


def test_the_core_gives_the_ids_of_the_feature_space(space):
    _, _, path, rows, expected = space
    for cross in from_feature_space(path):
        assert cross.apply(_np(rows)).tolist() == expected[cross.name], cross.name
    assert any(np.isnan(a) for a in rows["age"]) and "" in rows["sex"] and -1 in rows["fbs"]


def test_the_spec_round_trips(space):
    _, _, path, rows, expected = space
    for cross in from_feature_space(path):
        again = Cross.from_json(cross.to_json())
        assert again == cross and again.apply(_np(rows)).tolist() == expected[cross.name]


@pytest.fixture(scope="module")
def served(space, tmp_path_factory):
    _, _, path, rows, _ = space
    crosses = from_feature_space(path)
    dtypes = {n: "string" if isinstance(v[0], str) else ("float64" if isinstance(v[0], float) else "int64") for n, v in rows.items()}
    inputs = {name: keras.Input(shape=(), dtype=dtype, name=name) for name, dtype in dtypes.items()}
    model = keras.Model(inputs, CrossingLayer(crosses)(inputs))
    exported = str(tmp_path_factory.mktemp("fs_layer") / "exported")
    model.export(exported)
    return crosses, {"eager": CrossingLayer(crosses), "export_serve": tf.saved_model.load(exported).serve}


@pytest.mark.parametrize("run", ["eager", "export_serve"])
def test_the_serving_layer_gives_the_outputs_of_the_feature_space(space, served, run):
    _, loaded, _, rows, expected = space
    crosses, runs = served
    outputs = runs[run]({name: tf.constant(values) for name, values in _np(rows).items()})
    keras_outputs = loaded(oracle.space_tensors(rows))
    for cross in crosses:
        ours = np.asarray(outputs[cross.name])
        if cross.output_mode == "one_hot":  # the same one-hot vectors, not only their bins
            assert np.array_equal(ours, np.asarray(keras_outputs[cross.name])), cross.name
            assert ours.argmax(axis=-1).tolist() == expected[cross.name]
        else:
            assert ours.reshape(-1).tolist() == expected[cross.name], cross.name


def _space(features, crosses):
    space = fs(features=features, crosses=crosses, output_mode="dict")
    data = {"s": ["a", "b", "a"], "x": [1.0, 2.0, 3.0], "i": [1, 2, 3]}
    space.adapt(tf.data.Dataset.from_tensor_slices({k: v for k, v in data.items() if k in features}).batch(3))
    return space


@pytest.mark.parametrize("make, match", [
    (lambda: _space({"s": fs.string_categorical(), "x": fs.float_normalized()}, [fs.cross(("s", "x"), 8)]),
     r"FeatureSpace cross `s_X_x`: feature `x` is not categorical, hashed or discretized.*"
     r"Received: preprocessor=Normalization"),
    (lambda: _space({"s": fs.string_categorical(), "x": fs.float()}, [fs.cross(("x", "s"), 8)]),
     r"cross `x_X_s`: feature `x` is not categorical, hashed or discretized"),
    (lambda: _space({"s": fs.feature("string", keras.layers.StringLookup(mask_token=""), "int"),
                     "i": fs.integer_categorical()}, [fs.cross(("s", "i"), 8)]),
     r"cross `s_X_i`: feature `s` has a lookup with a mask token.*Received: mask_token=''"),
    (lambda: _space({"s": fs.feature("string", keras.layers.Hashing(5, salt=7), "int"), "i": fs.integer_hashed(3)},
                    [fs.cross(("s", "i"), 8)]), r"cross `s_X_i`: feature `s` has a Hashing with a salt.*salt=\[7, 7\]"),
    (lambda: _space({"i": fs.feature("int64", keras.layers.IntegerLookup(num_oov_indices=2, oov_method="farmhash"), "int"),
                     "s": fs.string_categorical()}, [fs.cross(("i", "s"), 8)]),
     r"cross `i_X_s`: feature `i` hashes its OOV values with a salt or oov_method='farmhash'"),
    (lambda: _space({"s": fs.string_categorical(), "i": fs.integer_categorical()}, []),
     r"The FeatureSpace has no crosses.*Received: features=\['i', 's'\]"),
])
def test_what_cannot_be_reproduced_is_refused_naming_the_cross_and_feature(make, match):
    with pytest.raises(ValueError, match=match):
        from_feature_space(make())


def test_an_unadapted_feature_space_is_refused():
    space = fs(features={"s": fs.string_categorical(), "i": fs.integer_categorical()}, crosses=[fs.cross(("s", "i"), 8)])
    with pytest.raises(ValueError, match=r"cross `s_X_i`: feature `s` has an empty vocabulary \(is the FeatureSpace adapted\?\)"):
        from_feature_space(space)


def test_not_a_feature_space_is_a_type_error():
    with pytest.raises(TypeError, match=r"must be a keras.utils.FeatureSpace or the path of a .keras file of one. "
                                         r"Received: StringLookup"):
        from_feature_space(keras.layers.StringLookup())
