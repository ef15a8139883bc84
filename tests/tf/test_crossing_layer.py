"""``beam_cross.CrossingLayer`` (Keras 3, TF backend) against the real thing: a wide model's
``crossed_column([bucketized_column(age), "country"])`` (ids through ``get_sparse_tensors``) and a
FeatureSpace-style cross (``keras.layers.HashedCrossing`` over ``Discretization`` age and
``StringLookup`` sex), run live on the §10 edges (float64 values cast to float32, NaN, ±inf, -0.0,
subnormals, ints above 2**24, empty strings, OOV tokens); and the golden crossed vectors of
``tests/golden/transforms.json``. Every way of running the layer gives those ids: eagerly, in a
functional model, after ``.keras`` save/load, and after ``model.export`` (the ``serve`` endpoint and
the ``serving_default`` signature of the loaded SavedModel). The core (``Cross.apply``) agrees, and
so does the layer on the numpy and jax backends (run in a subprocess by
``crossing_layer_backend_check.py``, which holds the edge data and the crosses).

Keras 3 only: tensorflow_transform (which switches TF to tf_keras) is never imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="the layer's TF path and the TF/Keras oracles need TensorFlow")
keras = pytest.importorskip("keras", reason="the layer is a Keras 3 layer")

import crossing_layer_backend_check as check  # noqa: E402  (its folder is on sys.path under pytest)

from beam_cross import Bucketize, Cross, CrossingLayer, FeatureError, Identity, Lookup  # noqa: E402
from beam_cross.tf.crossing_layer import CrossingLayer as ModuleCrossingLayer  # noqa: E402
from tests.conftest import GOLDEN_DIR  # noqa: E402

if keras.backend.backend() != "tensorflow":  # the oracles run on the TF backend
    pytest.skip("the TF / Keras oracles need KERAS_BACKEND=tensorflow", allow_module_level=True)

fc = tf.feature_column
AGE_BOUNDARIES, BIG_BOUNDARIES, FS_BOUNDARIES = check.AGE_BOUNDARIES, check.BIG_BOUNDARIES, check.FS_BOUNDARIES
AGE_EDGES, BIG, COUNTRY, SEX, SEXES, N = check.AGE_EDGES, check.BIG, check.COUNTRY, check.SEX, check.SEXES, check.N
WIDE, WIDE_INT, FEATURE_SPACE, FEATURE_SPACE_ONE_HOT = check.WIDE, check.WIDE_INT, check.FEATURE_SPACE, check.FEATURE_SPACE_ONE_HOT
CROSSES, RAW, DTYPES = check.CROSSES, check.RAW, check.DTYPES


def _tensors(columns, shape=()):
    return {name: tf.reshape(tf.constant(values), (-1, *shape)) for name, values in columns.items()}


def _feature_column_ids(column, features) -> list[int]:
    """One id per row from ``column.get_sparse_tensors`` (the ids a wide model looks up)."""
    from tensorflow.python.feature_column import feature_column_v2 as fcv2

    ids = column.get_sparse_tensors(fcv2.FeatureTransformationCache(features), None).id_tensor
    rows = tf.RaggedTensor.from_sparse(ids).to_list()
    assert all(len(row) == 1 for row in rows), rows
    return [row[0] for row in rows]


def oracle() -> dict:
    """The ids of each cross of CROSSES from TF / Keras, live (never typed in)."""
    inputs = {name: tf.reshape(tf.constant(values), (-1, 1)) for name, values in RAW.items()}
    wide = fc.crossed_column([fc.bucketized_column(fc.numeric_column("age"), AGE_BOUNDARIES), "country"], 1000)
    wide_int = fc.crossed_column([fc.bucketized_column(fc.numeric_column("big"), BIG_BOUNDARIES), "country"], 97)
    assert (wide.name, wide_int.name) == (WIDE.name, WIDE_INT.name)  # TF's own names for them
    age_ids = keras.layers.Discretization(bin_boundaries=FS_BOUNDARIES)(tf.constant(RAW["age"]))
    sex_ids = keras.layers.StringLookup(vocabulary=SEXES)(tf.constant(RAW["sex"]))
    return {
        WIDE.name: _feature_column_ids(wide, inputs),
        WIDE_INT.name: _feature_column_ids(wide_int, inputs),
        FEATURE_SPACE.name: keras.layers.HashedCrossing(32)([age_ids, sex_ids]).numpy().tolist(),
        FEATURE_SPACE_ONE_HOT.name: keras.layers.HashedCrossing(32, output_mode="one_hot")(
            [age_ids, sex_ids]).numpy().tolist(),
    }


@pytest.fixture(scope="module")
def expected():
    return oracle()


def _as_lists(outputs) -> dict:
    return {name: np.asarray(value).tolist() for name, value in outputs.items()}


def _functional_model(shape=()):
    inputs = {name: keras.Input(shape=shape, dtype=dtype, name=name) for name, dtype in DTYPES.items()}
    return keras.Model(inputs, CrossingLayer(CROSSES)(inputs))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """name -> a function from raw tensors to the outputs, for every way of running the layer."""
    tmp = tmp_path_factory.mktemp("crossing_layer")
    model = _functional_model()
    model.save(tmp / "m.keras")
    loaded = keras.saving.load_model(tmp / "m.keras")
    model.export(str(tmp / "exported"))
    exported = tf.saved_model.load(str(tmp / "exported"))
    signature = exported.signatures["serving_default"]
    return {
        "eager": CrossingLayer(CROSSES),
        "tf_function": tf.function(CrossingLayer(CROSSES)),
        "functional": model,
        "keras_file": loaded,
        "export_serve": exported.serve,
        "export_signature": lambda features: signature(**features),
    }


RUNS = ["eager", "tf_function", "functional", "keras_file", "export_serve", "export_signature"]


@pytest.mark.parametrize("run", RUNS)
def test_ids_equal_tensorflow_and_keras_on_every_edge(served, expected, run):
    got = _as_lists(served[run](_tensors(RAW)))
    assert got == expected


SERVE_WITHOUT_BEAM_CROSS = """
import json, sys
import numpy as np
import tensorflow as tf
raw = json.loads(sys.stdin.read())
features = {"age": tf.constant(np.array(raw["age"], np.float64)), "big": tf.constant(np.array(raw["big"], np.int64)),
            "country": tf.constant(raw["country"]), "sex": tf.constant(raw["sex"])}
served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](**features)
assert not [m for m in sys.modules if m.startswith("beam_cross")]
print(json.dumps({k: v.numpy().tolist() for k, v in served.items()}))
"""


def test_the_exported_model_serves_without_beam_cross(tmp_path, expected):
    """The SavedModel is self-contained: a process that never imports beam_cross serves the same ids."""
    _functional_model().export(str(tmp_path / "exported"), verbose=False)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
    raw = {"age": [str(v) for v in AGE_EDGES], "big": BIG, "country": COUNTRY, "sex": SEX}
    done = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_BEAM_CROSS, str(tmp_path / "exported")],
                          input=json.dumps(raw), cwd=tmp_path, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_the_core_gives_the_same_ids(expected):
    columns = {"age": AGE_EDGES, "big": BIG, "country": COUNTRY, "sex": SEX}
    for cross in CROSSES:
        bins = cross.apply(columns).tolist()
        assert (np.eye(cross.num_bins)[bins].tolist() if cross.output_mode == "one_hot" else bins) == expected[cross.name]


def test_batch_by_one_shapes(expected):
    model = _functional_model(shape=(1,))
    got = model(_tensors(RAW, shape=(1,)))
    assert tuple(got[WIDE.name].shape) == (N, 1)
    assert tuple(got[FEATURE_SPACE_ONE_HOT.name].shape) == (N, 32)
    assert {k: np.asarray(v).reshape(len(v), -1).tolist() for k, v in got.items()} == {
        k: np.asarray(v).reshape(N, -1).tolist() for k, v in expected.items()}
    eager = CrossingLayer(CROSSES)({k: v[:, None] for k, v in RAW.items()})  # NumPy (batch, 1) in, eagerly
    assert np.asarray(eager[WIDE.name]).reshape(-1).tolist() == expected[WIDE.name]


def test_in_a_tf_data_map(expected):
    layer = CrossingLayer(CROSSES)
    dataset = tf.data.Dataset.from_tensor_slices(_tensors(RAW)).batch(5).map(layer)
    got = {name: [] for name in expected}
    for batch in dataset.as_numpy_iterator():
        for name, value in batch.items():
            got[name] += value.tolist()
    assert got == expected


def test_an_empty_batch():
    out = CrossingLayer(CROSSES)({k: v[:0] for k, v in RAW.items()})
    assert tuple(out[WIDE.name].shape) == (0,) and tuple(out[FEATURE_SPACE_ONE_HOT.name].shape) == (0, 32)


# --- the golden crossed vectors (crossed_column and HashedCrossing over preprocessors) -----------

GOLDEN = [c for c in json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"] if "features" in c]


@pytest.mark.parametrize("case", GOLDEN, ids=[c["id"] for c in GOLDEN])
def test_golden_crossed_vectors(case):
    cross = Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"], "name": "crossed"})
    features = {}
    for name, column in case["columns"].items():
        kind = column["kind"]
        values = [v.encode() if kind == "str" else float(v) if kind.startswith("float") else int(v) for v in column["values"]]
        features[name] = tf.constant(np.array(values, object if kind == "str" else kind))
    want = [int(row[0]) for row in case["expected"]]
    assert CrossingLayer([cross])(features)["crossed"].numpy().tolist() == want
    assert tf.function(CrossingLayer([cross.to_dict()]))(features)["crossed"].numpy().tolist() == want


# --- multivalent features: ragged and sparse ------------------------------------------------------

MULTI_AGES = [[17.0, float("nan"), 30.0], [], [-0.0, 0.1], [float("inf")]]
MULTI_TAGS = [["a"], ["b", "c"], ["", "é"], []]
MULTI_SEX = [["male", "other"], ["female"], [], ["[UNK]", "female"]]
HOURS = [1, 2, 3, 2**40]
MULTI = [
    Cross([Bucketize("ages", FS_BOUNDARIES), "tags"], 1000),
    Cross([Lookup("sexes", SEXES, num_oov_indices=3), "hour"], 0),
    Cross(["hour", Bucketize("ages", AGE_BOUNDARIES)], 50, name="hour_then_ages"),
]


def _multi_inputs():
    return {"ages": tf.ragged.constant(MULTI_AGES, tf.float64), "tags": tf.ragged.constant(MULTI_TAGS).to_sparse(),
            "sexes": tf.ragged.constant(MULTI_SEX).to_sparse(), "hour": tf.constant(HOURS, tf.int64)[:, None]}


def _multi_oracle():
    """Keras's preprocessors on the ragged values, then TF's ragged cross (in the given order)."""
    ages = tf.ragged.constant(MULTI_AGES, tf.float64)
    hour = tf.RaggedTensor.from_tensor(tf.constant(HOURS, tf.int64)[:, None])
    return {
        "ages_X_tags": tf.ragged.cross_hashed(
            [keras.layers.Discretization(bin_boundaries=FS_BOUNDARIES)(ages), tf.ragged.constant(MULTI_TAGS)], 1000),
        "sexes_X_hour": tf.ragged.cross_hashed(
            [keras.layers.StringLookup(vocabulary=SEXES, num_oov_indices=3)(tf.ragged.constant(MULTI_SEX)), hour], 0),
        "hour_then_ages": tf.ragged.cross_hashed(
            [hour, keras.layers.Discretization(bin_boundaries=AGE_BOUNDARIES)(ages)], 50),
    }


def _rows(value):
    return (tf.RaggedTensor.from_sparse(value) if isinstance(value, tf.SparseTensor) else value).to_list()


def test_multivalent_features_eager_saved_and_exported(tmp_path):
    expected = {name: ids.to_list() for name, ids in _multi_oracle().items()}
    core = {c.name: c.apply({"ages": MULTI_AGES, "tags": MULTI_TAGS, "sexes": MULTI_SEX, "hour": HOURS}).to_pylist()
            for c in MULTI}
    assert core == expected
    inputs = {"ages": keras.Input(shape=(None,), dtype="float64", ragged=True, name="ages"),
              "tags": keras.Input(shape=(None,), dtype="string", sparse=True, name="tags"),
              "sexes": keras.Input(shape=(None,), dtype="string", sparse=True, name="sexes"),
              "hour": keras.Input(shape=(1,), dtype="int64", name="hour")}
    outputs = CrossingLayer(MULTI)(inputs)
    assert outputs["ages_X_tags"].ragged and outputs["sexes_X_hour"].sparse and outputs["hour_then_ages"].ragged
    model = keras.Model(inputs, outputs)
    out = model(_multi_inputs())
    assert isinstance(out["sexes_X_hour"], tf.SparseTensor) and isinstance(out["ages_X_tags"], tf.RaggedTensor)
    assert {k: _rows(v) for k, v in out.items()} == expected
    model.save(tmp_path / "m.keras")
    assert {k: _rows(v) for k, v in keras.saving.load_model(tmp_path / "m.keras")(_multi_inputs()).items()} == expected
    # model.export infers dense specs for sparse / ragged inputs; an ExportArchive takes composite specs.
    archive = keras.export.ExportArchive()
    archive.track(model)
    specs = {"ages": tf.RaggedTensorSpec([None, None], tf.float64), "tags": tf.SparseTensorSpec([None, None], tf.string),
             "sexes": tf.SparseTensorSpec([None, None], tf.string), "hour": tf.TensorSpec([None, 1], tf.int64)}
    archive.add_endpoint("serve", tf.function(lambda features: model(features), input_signature=[specs]))
    archive.write_out(str(tmp_path / "exported"))
    served = tf.saved_model.load(str(tmp_path / "exported")).serve(_multi_inputs())
    assert {k: _rows(v) for k, v in served.items()} == expected


def test_one_hot_needs_one_value_per_row():
    with pytest.raises(ValueError, match=r"Cross `ages_X_tags` has output_mode='one_hot'.*Use output_mode='int'"):
        CrossingLayer([Cross([Bucketize("ages", [1]), "tags"], 8, output_mode="one_hot")])(_multi_inputs())


# --- configuration, spec files, serialization -----------------------------------------------------


def test_crosses_from_dicts_and_spec_files(tmp_path):
    assert CrossingLayer is ModuleCrossingLayer
    (tmp_path / "crosses.json").write_text(json.dumps([c.to_dict() for c in CROSSES]))
    yaml_text = "crosses:\n" + "".join(f"  - {json.dumps(c.to_dict())}\n" for c in CROSSES)
    (tmp_path / "crosses.yaml").write_text(yaml_text)
    for given in ([c.to_dict() for c in CROSSES], str(tmp_path / "crosses.json"), tmp_path / "crosses.yaml"):
        assert CrossingLayer(given).crosses == tuple(CROSSES)
    layer = CrossingLayer(tmp_path / "crosses.json")
    config = layer.get_config()
    assert config["crosses"] == [c.to_dict() for c in CROSSES]  # the crosses, not the path
    assert CrossingLayer.from_config(config).crosses == tuple(CROSSES)
    assert keras.saving.get_registered_name(CrossingLayer) == "beam_cross>CrossingLayer"
    assert CrossingLayer(WIDE).crosses == (WIDE,)
    assert CrossingLayer(CROSSES).features == ("age", "country", "big", "sex")


@pytest.mark.parametrize(
    ("crosses", "error", "match"),
    [
        ("/no/such/crosses.json", FileNotFoundError, "crosses.json"),
        ([], ValueError, "at least one cross"),
        ([WIDE, WIDE], ValueError, "unique"),
        ([{"features": ["a"], "num_bins": 3}], ValueError, "at least two features"),
        (42, TypeError, "`crosses` must be a list"),
    ],
)
def test_bad_crosses_are_refused_at_construction(crosses, error, match):
    with pytest.raises(error, match=match):
        CrossingLayer(crosses)


def test_a_bad_spec_file_names_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("crosses: {features: [a, b]}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml must hold a non-empty list of crosses"):
        CrossingLayer(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("- {features: [a, b], num_bins: -1}\n")
    with pytest.raises(ValueError, match=r"bad2\.yaml: `num_bins` must be a non-negative"):
        CrossingLayer(tmp_path / "bad2.yaml")


# --- bad values: the errors of transform_ids (and the core's reasons) -------------------------------


def test_missing_and_mistyped_features_are_refused():
    layer = CrossingLayer([WIDE])
    with pytest.raises(KeyError, match=r"Cross `age_bucketized_X_country` needs features \['country'\]"):
        layer({"age": RAW["age"]})
    with pytest.raises(TypeError, match="dict of raw features"):
        layer([RAW["age"], RAW["country"]])
    with pytest.raises(TypeError, match=r"feature `age` as it is.*through a `Bucketize` only.*dtype=float64"):
        CrossingLayer([Cross(["age", "country"], 10)])(RAW)
    with pytest.raises(TypeError, match=r"`Bucketize` of feature `country` takes ints or floats.*dtype=string"):
        CrossingLayer([Cross([Bucketize("country", [1]), "age"], 10)])(RAW)
    symbolic = {name: keras.Input(shape=(), dtype=dtype, name=name) for name, dtype in DTYPES.items()}
    with pytest.raises(TypeError, match=r"feature `age` as it is.*through a `Bucketize` only.*dtype=float64"):
        CrossingLayer([Cross(["age", "country"], 10)])(symbolic)  # when the functional model is built
    with pytest.raises(TypeError, match=r"`Lookup` of feature `big` takes strings\. Received: a tensor with dtype=int64"):
        CrossingLayer([Cross([Lookup("big", ["a"]), "age"], 10)])(symbolic)
    with pytest.raises(ValueError, match=r"feature `age` with shape=\(22, 2\)"):
        layer({"age": np.stack([RAW["age"]] * 2, 1), "country": RAW["country"]})


@pytest.mark.parametrize(
    ("cross", "features", "reason"),
    [
        (Cross([Lookup("sex", SEXES, num_oov_indices=0), "country"], 10), {"sex": ["male", "other"]}, "oov"),
        (Cross([Identity("hour", 24), "country"], 10), {"hour": [3, 24]}, "out_of_range"),
        (Cross([Lookup("sex", SEXES, style="feature_column"), "country"], 10), {"sex": ["male", ""]}, "no_id"),
    ],
)
def test_bad_values_fail_at_run_time_as_the_core_refuses_them(tmp_path, cross, features, reason):
    columns = {"country": ["fr", "us"], **features}
    with pytest.raises(FeatureError) as refused:
        cross.apply(columns)
    assert refused.value.reason == reason
    name = next(iter(features))
    tensors = {k: tf.constant(v, tf.string if isinstance(v[0], str) else tf.int64) for k, v in columns.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Feature `{name}` \({reason}\)"):
        CrossingLayer([cross])(tensors)
    inputs = {k: keras.Input(shape=(), dtype="string" if isinstance(v[0], str) else "int64", name=k)
              for k, v in columns.items()}
    model = keras.Model(inputs, CrossingLayer([cross])(inputs))
    model.export(str(tmp_path / "exported"))
    serve = tf.saved_model.load(str(tmp_path / "exported")).serve
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Feature `{name}` \({reason}\)"):
        serve(tensors)
    good = {k: v[:1] for k, v in tensors.items()}  # the first row is valid
    assert serve(good)[cross.name].numpy().tolist() == cross.apply({k: v[:1] for k, v in columns.items()}).tolist()


# --- other backends: the NumPy core, without TensorFlow --------------------------------------------


def _run_on_backend(backend):
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("TF_USE_LEGACY_KERAS", None)
    repo = Path(__file__).resolve().parents[2]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), environment.get("PYTHONPATH")]))
    script = Path(__file__).with_name("crossing_layer_backend_check.py")
    completed = subprocess.run([sys.executable, str(script)], env=environment, capture_output=True,
                               text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_other_backends_give_the_ids_of_tensorflow(backend, expected):
    if backend == "jax":
        pytest.importorskip("jax", reason="the jax backend needs jax installed")
    pytest.importorskip("scipy", reason="Keras's numpy/jax backends import scipy")
    report = _run_on_backend(backend)
    assert report["backend"] == backend
    assert report["keras_imported_by_beam_cross"] is False  # `import beam_cross` stays light
    assert report["tensorflow_imported"] is False  # the layer needs no TensorFlow off the TF backend
    assert report["eager"] == expected
    assert report["from_config"] == expected
    assert np.asarray(report["batch_by_one"]).reshape(-1).tolist() == expected[WIDE.name]
    with pytest.raises(FeatureError) as core:
        check.STRICT.apply({k: RAW[k] for k in check.STRICT.features})
    assert report["refused"] == {"reason": core.value.reason, "feature": core.value.feature, "message": str(core.value)}
