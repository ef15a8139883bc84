"""``beam_cross.tf.layers.HashedCrossing`` against the real ``keras.layers.HashedCrossing`` (Keras 3, TF backend).

Keras 3 only: tf_keras / tensorflow_transform are tested elsewhere (importing tensorflow_transform
switches TF_USE_LEGACY_KERAS on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="the layer's TF path and the Keras oracle need TensorFlow")
keras = pytest.importorskip("keras", reason="the layer is a Keras 3 layer")

import layers_backend_check as backend_check  # noqa: E402  (its folder is on sys.path under pytest)

from beam_cross import hashed_cross  # noqa: E402
from beam_cross.tf.layers import HashedCrossing  # noqa: E402

if keras.backend.backend() != "tensorflow":  # the oracle runs on the TF backend only
    pytest.skip("the Keras oracle needs KERAS_BACKEND=tensorflow", allow_module_level=True)

STRINGS = backend_check.STRINGS
INTS = backend_check.INTS
ODD_BYTES = backend_check.ODD_BYTES


def _shaped(values, rank):
    array = np.asarray(values)
    return array[0].item() if rank == 0 else array if rank == 1 else array[:, None]


def _inputs(count, rank):
    columns = [STRINGS, INTS, ODD_BYTES][:count]
    return [_shaped(column, rank) for column in columns]


def assert_same_output(ours, theirs):
    assert type(ours) is type(theirs)
    assert ours.dtype == theirs.dtype
    assert tuple(ours.shape) == tuple(theirs.shape)
    if isinstance(theirs, tf.SparseTensor):
        np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        np.testing.assert_array_equal(ours.dense_shape.numpy(), theirs.dense_shape.numpy())
    else:
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# --- same outputs as Keras on everything Keras accepts -------------------------------------------

MODES = [
    {"output_mode": "int"},
    {"output_mode": "int", "dtype": "int32"},
    {"output_mode": "int", "dtype": "int64"},
    {"output_mode": "int", "dtype": "float32"},
    {"output_mode": "one_hot"},
    {"output_mode": "one_hot", "dtype": "int32"},
    {"output_mode": "one_hot", "dtype": "int64"},
    {"output_mode": "one_hot", "dtype": "bool"},
    {"output_mode": "one_hot", "dtype": "mixed_float16"},
    {"output_mode": "one_hot", "sparse": True},
    {"output_mode": "one_hot", "sparse": True, "dtype": "int32"},
]


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("rank", [0, 1, 2], ids=["scalar", "batch", "batch_1"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: "-".join(f"{k}={v}" for k, v in m.items()))
def test_same_output_as_keras(mode, rank, count):
    inputs = _inputs(count, rank)
    assert_same_output(HashedCrossing(num_bins=7, **mode)(inputs), keras.layers.HashedCrossing(num_bins=7, **mode)(inputs))


def test_keras_documentation_examples():
    layer = HashedCrossing(num_bins=5)
    ours = layer((STRINGS, INTS))
    assert_same_output(ours, keras.layers.HashedCrossing(num_bins=5)((STRINGS, INTS)))
    assert ours.numpy().tolist() == [1, 4, 1, 1, 3]  # the value printed in the Keras docstring
    one_hot = HashedCrossing(num_bins=5, output_mode="one_hot")((STRINGS, INTS))
    assert_same_output(one_hot, keras.layers.HashedCrossing(num_bins=5, output_mode="one_hot")((STRINGS, INTS)))


INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_int_dtype_as_keras(dtype):
    info = np.iinfo(dtype)
    values = np.array([info.min, info.max, 0, 1, info.max // 3], dtype=dtype)
    for inputs in ([STRINGS, values], [values, INTS], [values, values[::-1]]):
        assert_same_output(HashedCrossing(num_bins=2**40)(inputs), keras.layers.HashedCrossing(num_bins=2**40)(inputs))


@pytest.mark.parametrize(
    "inputs",
    [
        [["a", "b"], [1, 2]],  # Python lists: ints become int32 in TF, same hash as int64
        [STRINGS, STRINGS[::-1]],  # all strings
        [INTS, INTS[::-1], INTS],  # all ints
        [tf.constant(STRINGS), tf.constant(INTS, tf.int32)],  # tensors
        [np.array(["\u00e9t\u00e9", "x\0y"], dtype=object), np.array([b"\xff", b""], dtype=object)],
    ],
    ids=["lists", "strings", "ints", "tensors", "objects"],
)
def test_more_inputs_as_keras(inputs):
    assert_same_output(HashedCrossing(num_bins=97)(inputs), keras.layers.HashedCrossing(num_bins=97)(inputs))


@pytest.mark.parametrize("num_bins", [0, 1, 2**62])
def test_extreme_num_bins_as_keras(num_bins):
    assert_same_output(HashedCrossing(num_bins)((STRINGS, INTS)), keras.layers.HashedCrossing(num_bins)((STRINGS, INTS)))


@pytest.mark.parametrize("hash_key", [None, 0, 7, -1, 2**63 - 1])
def test_hash_key_as_tf_and_core(hash_key):
    ours = HashedCrossing(num_bins=1000, hash_key=hash_key)((STRINGS, INTS)).numpy()
    columns = [tf.constant(STRINGS[:, None]), tf.constant(INTS[:, None])]
    tf_bins = tf.sparse.to_dense(tf.sparse.cross_hashed(columns, num_buckets=1000, hash_key=hash_key)).numpy()
    np.testing.assert_array_equal(ours, tf_bins[:, 0])
    np.testing.assert_array_equal(ours, hashed_cross([STRINGS, INTS], 1000, hash_key=hash_key))


def _golden_column(column, shape):
    if column["kind"] in ("str", "bytes"):
        values = np.empty(len(column["values"]), dtype=object)
        values[:] = column["values"]
    else:
        values = np.array(column["values"], dtype=column["kind"])
    return values.reshape(shape)


def test_golden_vectors(dense_case):
    """Every dense golden vector (tests/golden/cross_dense.json, made by TF), through the layer."""
    columns = [_golden_column(column, dense_case["shape"]) for column in dense_case["columns"]]
    layer = HashedCrossing(dense_case["num_bins"], hash_key=dense_case["hash_key"])
    output = layer(columns)
    assert output.dtype == tf.int64
    np.testing.assert_array_equal(output.numpy(), dense_case["expected"])


# --- the same input errors as Keras ---------------------------------------------------------------

BAD_INPUTS = {
    "not a list": (STRINGS, "should be called on a list or tuple of inputs"),
    "dict": ({"a": STRINGS, "b": INTS}, "should be called on a list or tuple of inputs"),
    "one input": ([STRINGS], "should be called on at least two inputs"),
    "rank 2 width 2": ([np.stack([STRINGS, STRINGS], 1)] * 2, r"should have shape `\(\)`, `\(batch_size\)`"),
    "rank 3": ([INTS[:, None, None]] * 2, r"should have shape `\(\)`"),
    "unequal shapes": ([STRINGS, INTS[:, None]], "should have equal shape"),
    "unequal batch": ([STRINGS, INTS[:3]], "should have equal shape"),
    "float": ([STRINGS, INTS.astype(np.float32)], "should have an integer or string dtype"),
    "bool": ([STRINGS, INTS > 101], "should have an integer or string dtype"),
    "sparse": ([tf.sparse.from_dense(INTS)] * 2, "should be dense tensors"),
    "ragged": ([tf.ragged.constant([[1], [2, 3]])] * 2, r"should have shape `\(\)`"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_raise_as_keras(name):
    inputs, message = BAD_INPUTS[name]
    with pytest.raises(ValueError, match=message):
        keras.layers.HashedCrossing(num_bins=5)(inputs)
    with pytest.raises(ValueError, match=message):
        HashedCrossing(num_bins=5)(inputs)


def test_batch_sizes_that_differ_at_run_time_are_refused():
    layer = HashedCrossing(num_bins=5)
    spec = [tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64)]
    crossed = tf.function(lambda a, b: layer([a, b]), input_signature=spec)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected batch size 5 got 3"):
        crossed(tf.constant(STRINGS), tf.constant(INTS[:3]))


# --- constructor ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_bins", "error", "message"),
    [
        (-1, ValueError, r"`num_bins` must be a non-negative int64.*Received: num_bins=-1"),
        (2**63, ValueError, r"`num_bins` must be a non-negative int64.*Received: num_bins=9223372036854775808"),
        (5.0, TypeError, r"`num_bins` must be an int\. Received: num_bins=5\.0"),
        (None, TypeError, r"`num_bins` must be an int\. Received: num_bins=None"),
        (True, TypeError, r"`num_bins` must be an int\. Received: num_bins=True"),
        ("5", TypeError, r"`num_bins` must be an int\. Received: num_bins='5'"),
    ],
)
def test_num_bins_is_validated(num_bins, error, message):
    with pytest.raises(error, match=message):
        HashedCrossing(num_bins)


def test_one_hot_needs_at_least_one_bin():
    with pytest.raises(ValueError, match=r"`num_bins` must be positive when `output_mode='one_hot'`\. Received: num_bins=0"):
        HashedCrossing(0, output_mode="one_hot")


def test_output_mode_error_is_keras_message():
    with pytest.raises(ValueError) as theirs:
        keras.layers.HashedCrossing(5, output_mode="multi_hot")
    with pytest.raises(ValueError) as ours:
        HashedCrossing(5, output_mode="multi_hot")
    assert str(ours.value) == str(theirs.value)


def test_argument_type_errors():
    with pytest.raises(TypeError, match=r"`sparse` must be a bool\. Received: sparse='yes'"):
        HashedCrossing(5, sparse="yes")
    with pytest.raises(TypeError, match=r"`hash_key` must be an int or None\. Received: hash_key='k'"):
        HashedCrossing(5, hash_key="k")
    with pytest.raises(ValueError, match=r"`hash_key` must fit in int64"):
        HashedCrossing(5, hash_key=2**63)


def test_kwargs_reach_the_base_layer():
    layer = HashedCrossing(5, trainable=False, name="country_X_hour")
    assert layer.trainable is False
    assert layer.name == "country_X_hour"
    assert layer.get_config()["trainable"] is False
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to HashedCrossing: \{'foo': 1\}"):
        HashedCrossing(5, foo=1)


# --- config, saving, serving, tf.data -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"num_bins": 5}, {"num_bins": 9, "output_mode": "one_hot", "sparse": True, "dtype": "int32", "hash_key": 42}],
)
def test_config_round_trip(kwargs):
    layer = HashedCrossing(**kwargs)
    config = layer.get_config()
    assert {"num_bins", "output_mode", "sparse", "hash_key", "name", "dtype", "trainable"} <= set(config)
    restored = HashedCrossing.from_config(config)
    assert restored.get_config() == config
    assert_same_output(restored((STRINGS, INTS)), layer((STRINGS, INTS)))
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "beam_cross>HashedCrossing"
    revived = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(revived) is HashedCrossing
    assert revived.get_config() == config


def _three_input_model(num_bins=1000, **kwargs):
    inputs = {
        "country": keras.Input(shape=(), dtype="string", name="country"),
        "hour": keras.Input(shape=(), dtype="int64", name="hour"),
        "device": keras.Input(shape=(), dtype="string", name="device"),
    }
    outputs = HashedCrossing(num_bins, **kwargs)([inputs["country"], inputs["hour"], inputs["device"]])
    return keras.Model(inputs, outputs)


THREE = {"country": STRINGS, "hour": INTS, "device": ODD_BYTES}


def test_functional_model_with_three_inputs():
    model = _three_input_model()
    assert model.output.shape == (None,)
    ours = keras.ops.convert_to_numpy(model.predict_on_batch(THREE))
    theirs = keras.layers.HashedCrossing(1000)([STRINGS, INTS, ODD_BYTES])  # Keras: eager only
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_functional_sparse_one_hot_is_marked_sparse():
    inputs = [keras.Input(shape=(1,), dtype="string"), keras.Input(shape=(1,), dtype="int64")]
    output = HashedCrossing(5, output_mode="one_hot", sparse=True)(inputs)
    assert output.sparse  # Keras's own layer leaves its symbolic output marked dense
    assert output.shape == (None, 5)
    batch = [STRINGS[:, None], INTS[:, None]]
    assert_same_output(keras.Model(inputs, output).predict_on_batch(batch),
                       keras.layers.HashedCrossing(5, output_mode="one_hot", sparse=True)(batch))


@pytest.mark.parametrize(
    ("shapes", "mode", "expected"),
    [
        ([(None,), (None,), (None,)], "int", (None,)),
        ([(None, 1)] * 4, "one_hot", (None, 7)),
        ([(3,), (None,)], "int", (3,)),
        ([(), ()], "int", ()),
        ([(), ()], "one_hot", (1, 7)),
    ],
)
def test_compute_output_shape_for_any_number_of_inputs(shapes, mode, expected):
    assert HashedCrossing(7, output_mode=mode).compute_output_shape(shapes) == expected


@pytest.mark.parametrize("shapes", [[(None,), (None,)], [(4, 1), (4, 1)], [(None, 1), (None, 1)]])
@pytest.mark.parametrize("mode", ["int", "one_hot"])
def test_compute_output_shape_as_keras_for_two_inputs(shapes, mode):
    ours = HashedCrossing(7, output_mode=mode).compute_output_shape(shapes)
    assert ours == keras.layers.HashedCrossing(7, output_mode=mode).compute_output_shape(shapes)


def test_compute_output_shape_rejects_unequal_shapes():
    with pytest.raises(ValueError, match="should have equal shape"):
        HashedCrossing(7).compute_output_shape([(None,), (None, 1)])
    with pytest.raises(ValueError, match="list/tuple of two or more tensors"):
        HashedCrossing(7).compute_output_shape([(None,)])


def test_keras_file_save_and_load(tmp_path):
    model = _three_input_model(num_bins=50, output_mode="one_hot", hash_key=3)
    path = tmp_path / "cross.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[-1]
    assert type(layer) is HashedCrossing
    assert (layer.num_bins, layer.output_mode, layer.hash_key) == (50, "one_hot", 3)
    expected = np.eye(50, dtype=np.float32)[hashed_cross([STRINGS, INTS, ODD_BYTES], 50, hash_key=3)]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.predict_on_batch(THREE)), expected)


def test_exported_saved_model_serves_the_core_bins(tmp_path):
    model = _three_input_model(num_bins=1000, hash_key=11)
    model.export(str(tmp_path / "served"), format="tf_saved_model", verbose=False)
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    feed = {name: tf.constant(values) for name, values in THREE.items()}
    (served,) = serve(**feed).values()
    np.testing.assert_array_equal(served.numpy(), hashed_cross([STRINGS, INTS, ODD_BYTES], 1000, hash_key=11))
    (empty,) = serve(**{name: tensor[:0] for name, tensor in feed.items()}).values()
    assert empty.shape == (0,)
    assert empty.dtype == tf.int64


@pytest.mark.parametrize("rank", [1, 2])
def test_tf_data_map_keeps_the_static_shape(rank):
    dataset = tf.data.Dataset.from_tensor_slices((_shaped(STRINGS, rank), _shaped(INTS, rank))).batch(2, drop_remainder=True)
    ours = dataset.map(lambda a, b: HashedCrossing(5)((a, b)))
    theirs = dataset.map(lambda a, b: keras.layers.HashedCrossing(5)((a, b)))
    assert ours.element_spec == theirs.element_spec
    assert ours.element_spec.shape == ((2,) if rank == 1 else (2, 1))
    for mine, keras_batch in zip(ours, theirs):
        np.testing.assert_array_equal(mine.numpy(), keras_batch.numpy())


def test_tf_data_sparse_one_hot_with_unknown_batch_size():
    dataset = tf.data.Dataset.from_tensor_slices((STRINGS, INTS)).batch(2)  # last batch has 1 row
    ours = dataset.map(lambda a, b: HashedCrossing(5, output_mode="one_hot", sparse=True)((a, b)))
    assert ours.element_spec == tf.SparseTensorSpec([None, 5], tf.float32)
    dense = dataset.map(lambda a, b: keras.layers.HashedCrossing(5, output_mode="one_hot")((a, b)))
    batches = list(zip(ours, dense))
    assert len(batches) == 3
    for sparse, keras_dense in batches:
        np.testing.assert_array_equal(tf.sparse.to_dense(sparse).numpy(), keras_dense.numpy())


# --- empty batches (Keras >= 3.9 raises on them) ---------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize(
    ("mode", "expected_shape", "expected_dtype"),
    [({"output_mode": "int"}, None, tf.int64), ({"output_mode": "one_hot"}, (0, 5), tf.float32),
     ({"output_mode": "one_hot", "sparse": True}, (0, 5), tf.float32)],
    ids=["int", "one_hot", "sparse"],
)
def test_empty_batch(rank, mode, expected_shape, expected_dtype):
    empty = [_shaped(STRINGS[:0], rank), _shaped(INTS[:0], rank)]
    core = hashed_cross(empty, 5)
    layer = HashedCrossing(5, **mode)
    eager = layer(empty)
    shape = [None] if rank == 1 else [None, 1]
    spec = [tf.TensorSpec(shape, tf.string), tf.TensorSpec(shape, tf.int64)]
    in_graph = tf.function(lambda a, b: layer([a, b]), input_signature=spec)
    for output in (eager, in_graph(*empty)):
        assert tuple(output.shape) == (expected_shape or core.shape)
        assert output.dtype == expected_dtype
    # The same traced graph still crosses a non-empty batch as Keras does.
    full = [_shaped(STRINGS, rank), _shaped(INTS, rank)]
    assert_same_output(in_graph(*full), keras.layers.HashedCrossing(5, **mode)(full))


# --- other backends (subprocess: Keras fixes its backend at import) --------------------------------


def _run_on_backend(backend):
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = Path(__file__).with_name("layers_backend_check.py")
    repo = Path(__file__).resolve().parents[2]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), environment.get("PYTHONPATH")]))
    completed = subprocess.run([sys.executable, str(script)], env=environment, capture_output=True, text=True,
                               timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _keras_tf_outputs():
    expected = {}
    for name, (kwargs, inputs) in backend_check.cases().items():
        output = keras.ops.convert_to_numpy(keras.layers.HashedCrossing(**kwargs)(inputs))
        expected[name] = {"dtype": str(output.dtype), "shape": list(output.shape), "values": output.tolist()}
    return expected


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_other_backends_match_keras_on_tensorflow(backend):
    if backend == "jax":
        pytest.importorskip("jax", reason="the jax backend needs jax installed")
    pytest.importorskip("scipy", reason="Keras's numpy/jax backends import scipy")
    report = _run_on_backend(backend)
    assert report["backend"] == backend
    assert report["keras_imported_by_beam_cross"] is False  # `import beam_cross` stays light
    assert report["tensorflow_imported"] is False  # the layer needs no TensorFlow off the TF backend
    results = report["results"]
    for name, expected in _keras_tf_outputs().items():
        got = results[name]
        if backend == "jax" and expected["dtype"] == "int64":
            # JAX without x64 turns int64 into int32, as it does for Keras's own layer.
            assert got["dtype"] == "int32", name
            if np.abs(np.asarray(expected["values"])).max(initial=0) >= 2**31:
                continue  # bins of 2**31 and more do not fit in int32 (the full_hash and int_widths cases)
        else:
            assert got["dtype"] == expected["dtype"], name
        assert got["shape"] == expected["shape"], name
        assert got["values"] == expected["values"], name
    assert results["empty_one_hot"]["shape"] == [0, 5]
    assert set(report["errors"]) == {"floats", "bools", "mixed_list", "sparse"}
    for name in ("floats", "bools", "mixed_list"):
        assert "inputs should have an integer or string dtype" in report["errors"][name]
    assert report["errors"]["sparse"] == "`sparse=True` can only be used with the TensorFlow backend."
    doc_bins = keras.layers.HashedCrossing(5)((STRINGS, INTS)).numpy().tolist()
    assert report["tf_data"] == [doc_bins[0:2], doc_bins[2:4], doc_bins[4:]]
    three = [INTS[:, None], INTS[::-1, None], INTS[:, None]]
    expected_functional = keras.layers.HashedCrossing(7, output_mode="one_hot")(three).numpy().tolist()
    assert report["functional_three_inputs"] == expected_functional
