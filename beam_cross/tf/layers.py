"""``HashedCrossing``: the Keras 3 layer, a drop-in for ``keras.layers.HashedCrossing``.

On the TensorFlow backend (and inside any TF graph: ``tf.data``, ``model.export``) it runs
``tf.sparse.cross_hashed`` in the graph, pinned to the CPU; on the other backends it runs eagerly
on :func:`beam_cross.hashed_cross`, the NumPy core, which gives the same bins bit for bit.
"""

from __future__ import annotations

import sys

import numpy as np

from beam_cross.core.columns import kind_of
from beam_cross.core.cross import check_hash_key, check_num_bins, hashed_cross
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import keras

OUTPUT_MODES = ("int", "one_hot")


@keras.saving.register_keras_serializable(package="beam_cross")
class HashedCrossing(keras.layers.Layer):
    """A preprocessing layer which crosses features using the "hashing trick".

    Bit for bit the bins of ``keras.layers.HashedCrossing`` and ``tf.sparse.cross_hashed``:
    for each position, starting from ``hash_key``, every feature's fingerprint (FarmHash
    ``Fingerprint64`` of a string's bytes; an integer's own int64 bits) is folded in with
    ``FingerprintCat64``, in the order the inputs are given:
    `bin = fold(hash_key, fingerprint(x_1), ..., fingerprint(x_n)) % num_bins`.

    Valid input shapes are `(batch_size, 1)`, `(batch_size,)` and `()`, the same for all inputs;
    each input holds strings or integers (of any width; mixing a string input with an integer
    input is allowed). `"5"` and `5` land in different bins.

    Where it goes beyond the Keras layer (whose outputs it otherwise reproduces exactly):
    symbolic (functional API) calls take any number of inputs >= 2; empty batches work;
    `sparse=True` one-hot output works with an unknown batch size (in `tf.data`); `num_bins`
    is validated at construction; `**kwargs` reach the base `Layer` (`trainable=False` works,
    unknown keywords raise); `hash_key` chooses the seed.

    **Note:** on the TensorFlow backend the layer runs inside the graph, so it can be part of a
    model that is saved, exported (`model.export`) and served. On the JAX, PyTorch and NumPy
    backends it runs eagerly, without TensorFlow, on the NumPy core
    (:func:`beam_cross.hashed_cross`); inside a `tf.data` pipeline it uses TensorFlow on any
    backend.

    Args:
        num_bins: Number of hash bins, a non-negative int. `0` keeps the whole hash modulo
            `2**63 - 1` (`output_mode="int"` only).
        output_mode: `"int"` returns the bin indices, of the input's shape. `"one_hot"` returns,
            per position, a vector of size `num_bins` with a 1 at the bin: shape
            `(batch_size, num_bins)` (`(1, num_bins)` for a scalar input). Defaults to `"int"`.
        sparse: Only for `"one_hot"`, on the TensorFlow backend: return a `tf.SparseTensor`.
            Defaults to `False`.
        name: The layer's name. Defaults to `None` (a unique name).
        dtype: The output dtype. Defaults to `None`: `"int64"` for `"int"`, the global dtype
            policy (normally `"float32"`) for `"one_hot"`.
        hash_key: The int64 seed of the fold. Defaults to `None`, TensorFlow's default key
            `0xDECAFCAFFE` (as does `0`, as in TensorFlow), which Keras always uses.
        **kwargs: Keyword arguments of the base `keras.layers.Layer` (e.g. `trainable`).

    Examples:

    **Crossing two scalar features.**

    >>> import keras
    >>> import numpy as np
    >>> from beam_cross.tf.layers import HashedCrossing
    >>> layer = HashedCrossing(num_bins=5)
    >>> feat1 = np.array(['A', 'B', 'A', 'B', 'A'])
    >>> feat2 = np.array([101, 101, 101, 102, 102])
    >>> keras.ops.convert_to_numpy(layer((feat1, feat2)))
    array([1, 4, 1, 1, 3])

    **Crossing and one-hotting two scalar features.**

    >>> layer = HashedCrossing(num_bins=5, output_mode='one_hot')
    >>> keras.ops.convert_to_numpy(layer((feat1, feat2)))
    array([[0., 1., 0., 0., 0.],
           [0., 0., 0., 0., 1.],
           [0., 1., 0., 0., 0.],
           [0., 1., 0., 0., 0.],
           [0., 0., 0., 1., 0.]], dtype=float32)

    **Crossing three features in a functional model.**

    >>> inputs = [keras.Input(shape=(), dtype=d) for d in ("string", "int64", "string")]
    >>> model = keras.Model(inputs, HashedCrossing(num_bins=1000)(inputs))
    >>> keras.ops.convert_to_numpy(model.predict_on_batch([feat1, feat2, np.array(list("xyzxy"))]))
    array([ 95, 814, 114, 878, 107])
    """

    def __init__(self, num_bins, output_mode="int", sparse=False, name=None, dtype=None, *, hash_key=None,
                 **kwargs):
        num_bins = check_num_bins(num_bins)
        check_hash_key(hash_key)
        if not isinstance(output_mode, str) or output_mode not in OUTPUT_MODES:
            raise ValueError(
                "Unknown value for `output_mode` argument of HashedCrossing. "
                f"Allowed values are: {OUTPUT_MODES}. Received: output_mode={output_mode}"
            )
        if output_mode == "one_hot" and num_bins == 0:
            # Keras accepts this and returns (batch_size, 0): every value would be lost.
            raise ValueError(f"`num_bins` must be positive when `output_mode='one_hot'`. Received: num_bins={num_bins}")
        if not isinstance(sparse, (bool, np.bool_)):
            raise TypeError(f"`sparse` must be a bool. Received: sparse={sparse!r}")
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse and keras.backend.backend() != "tensorflow":
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        self.num_bins = num_bins
        self.output_mode = output_mode
        self.sparse = bool(sparse)
        self.hash_key = None if hash_key is None else int(hash_key)
        # Inputs are strings as often as numbers: take them as given, never through the backend.
        self._allow_non_tensor_positional_args = True
        self._convert_input_args = False
        self.supports_jit = False

    def get_config(self):
        return {
            **super().get_config(),
            "num_bins": self.num_bins,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "hash_key": self.hash_key,
        }

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
            isinstance(shape, (list, tuple)) for shape in input_shape
        ):
            raise ValueError(
                f"Expected as input a list/tuple of two or more tensors. Received input_shape={input_shape}"
            )
        shape = _common_shape([tuple(s) for s in input_shape], input_shape)
        if self.output_mode == "int":
            return shape
        return (shape[0] if shape else 1, self.num_bins)

    def compute_output_spec(self, inputs):
        _check_input_list(inputs)
        shape = self.compute_output_shape([tuple(x.shape) for x in inputs])
        sparse = self.sparse and self.output_mode == "one_hot"
        return keras.KerasTensor(shape, dtype=self.compute_dtype, sparse=sparse)

    def __call__(self, inputs, *args, **kwargs):
        if keras.backend.backend() == "numpy" and _eager_values(inputs):
            # Validate before Keras's call wrapper: on the NumPy backend it fails to describe a
            # string array ("Invalid dtype: str32") and would hide the real error.
            inputs = _numpy_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs):
        _check_input_list(inputs)
        if keras.backend.backend() == "tensorflow" or _in_tf_graph():
            return self._call_tf(inputs)
        return self._call_numpy(inputs)

    def _call_tf(self, inputs):
        import tensorflow as tf

        tensors = [_as_tf_tensor(x, tf) for x in inputs]
        _common_shape([tuple(x.shape) for x in tensors], tensors)
        if any(isinstance(x, (tf.RaggedTensor, tf.SparseTensor)) for x in tensors):
            raise ValueError(f"All `HashedCrossing` inputs should be dense tensors. Received: inputs={tensors}")
        if not all(x.dtype.is_integer or x.dtype == tf.string for x in tensors):
            raise ValueError(
                f"All `HashedCrossing` inputs should have an integer or string dtype. Received: inputs={tensors}"
            )
        with tf.device("CPU:0"):  # the string and hash ops only have CPU kernels
            crossed = tf.sparse.cross_hashed(
                [tf.reshape(x, [-1, 1]) for x in tensors], num_buckets=self.num_bins, hash_key=self.hash_key
            )
            # One value per row, rows in order: the values are the dense result. Unlike
            # sparse.to_dense, this holds for an empty batch (the op's dense_shape is then [0, 0]).
            bins = tf.reshape(crossed.values, tf.shape(tensors[0]))
            bins.set_shape(tensors[0].shape)
            return self._encode_tf(bins, tf)

    def _encode_tf(self, bins, tf):
        dtype = self.compute_dtype
        if self.output_mode == "int":
            return tf.cast(bins, dtype)
        flat = tf.reshape(bins, [-1])
        if not self.sparse:
            on, off = (True, False) if dtype == "bool" else (None, None)
            return tf.one_hot(flat, self.num_bins, on_value=on, off_value=off, dtype=dtype)
        rows = tf.shape(flat, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(rows), flat], axis=1)
        dense_shape = tf.stack([rows, tf.constant(self.num_bins, tf.int64)])
        return tf.SparseTensor(indices, tf.ones([rows], dtype), dense_shape)

    def _call_numpy(self, inputs):
        arrays = _numpy_inputs(inputs)
        bins = hashed_cross(arrays, self.num_bins, hash_key=self.hash_key)
        dtype = self.compute_dtype
        if self.output_mode == "int":
            return keras.ops.convert_to_tensor(bins.astype(dtype), dtype=dtype)
        flat = bins.reshape(-1)
        one_hot = np.zeros((flat.size, self.num_bins), dtype=dtype)
        one_hot[np.arange(flat.size), flat] = 1
        return keras.ops.convert_to_tensor(one_hot, dtype=dtype)


def _check_input_list(inputs):
    if not isinstance(inputs, (list, tuple)):
        raise ValueError(f"`HashedCrossing` should be called on a list or tuple of inputs. Received: inputs={inputs}")
    if len(inputs) < 2:
        raise ValueError(f"`HashedCrossing` should be called on at least two inputs. Received: inputs={inputs}")


def _common_shape(shapes, inputs) -> tuple:
    """The shape all inputs share (an unknown dim matches any), or Keras's ValueError."""
    first = shapes[0]
    if len(first) > 2 or (len(first) == 2 and first[1] != 1):
        raise ValueError(
            "All `HashedCrossing` inputs should have shape `()`, `(batch_size)` or `(batch_size, 1)`. "
            f"Received: inputs={inputs}"
        )
    shape = list(first)
    for other in shapes[1:]:
        if len(other) != len(shape) or any(a is not None and b is not None and a != b for a, b in zip(shape, other)):
            raise ValueError(f"All `HashedCrossing` inputs should have equal shape. Received: inputs={inputs}")
        shape = [a if a is not None else b for a, b in zip(shape, other)]
    return tuple(shape)


def _eager_values(inputs) -> bool:
    return isinstance(inputs, (list, tuple)) and not any(isinstance(x, keras.KerasTensor) for x in inputs) and (
        not _in_tf_graph())


def _numpy_inputs(inputs) -> list[np.ndarray]:
    """The inputs as NumPy arrays, checked as Keras checks its tensors (same messages)."""
    _check_input_list(inputs)
    arrays = [_to_numpy(x) for x in inputs]
    _common_shape([x.shape for x in arrays], inputs)
    if not all(_crossable_dtype(x) for x in arrays):
        raise ValueError(
            f"All `HashedCrossing` inputs should have an integer or string dtype. Received: inputs={inputs}"
        )
    return arrays


def _as_tf_tensor(value, tf):
    if isinstance(value, (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)):
        return value  # sparse and ragged are kept, to be refused with Keras's message
    if keras.ops.is_tensor(value):  # another backend's tensor (e.g. torch) goes through NumPy
        value = keras.ops.convert_to_numpy(value)
    return tf.convert_to_tensor(value)


def _in_tf_graph() -> bool:
    """Inside a TF graph (``tf.data`` map, ``tf.function``) the layer must emit TF ops, on any backend."""
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind in "US" and not all(isinstance(v, (str, bytes)) for v in np.asarray(value, object).flat):
            # NumPy turns ["a", 1] into strings; TensorFlow refuses it, and so do we.
            return np.asarray(value, object)
        return array
    if isinstance(value, (str, bytes, int, float, np.generic)):
        return np.asarray(value)
    return np.asarray(keras.ops.convert_to_numpy(value))


def _crossable_dtype(array: np.ndarray) -> bool:
    if array.dtype.kind in "iuSU":
        return True
    if array.dtype.kind == "O":
        kinds = {kind_of(v) for v in array.flat}
        return kinds in ({"string"}, {"int"}, set())
    return False
