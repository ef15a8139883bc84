"""``CrossingLayer``: a Keras 3 serving layer that computes a list of crosses from a dict of raw features.

The crosses are the ones a Beam job (``CrossFeatures``) and a tf.Transform graph
(``beam_cross.tft.make_preprocessing_fn``) take: :class:`~beam_cross.Cross` objects, their dicts, or
a spec file of them. On the TensorFlow backend (and inside any TF graph: ``tf.data``,
``model.export``) each cross runs the TF ops of :func:`beam_cross.tf.transform_ops.transform_ids`
on its transformed features, then TF's cross-hashing op, so a saved or exported model gives the
ids of ``beam_cross.hashed_cross`` / ``Cross.apply``. On the other backends it runs eagerly on the
NumPy core (dense features only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from beam_cross.core.spec import Cross, check_crosses
from beam_cross.core.spec_file import read_crosses
from beam_cross.core.transforms import Lookup
from beam_cross.tf.layers import _in_tf_graph, _to_numpy
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import keras


@keras.saving.register_keras_serializable(package="beam_cross")
class CrossingLayer(keras.layers.Layer):
    """A preprocessing layer which computes feature crosses, by name, from a dict of raw features.

    Each :class:`~beam_cross.Cross` reads its raw columns from the input dict, transforms those it
    names a transform of (:class:`~beam_cross.Bucketize`, ``Lookup``, ``Identity``, ``Hash``: the
    ids of Keras ``Discretization`` / ``StringLookup`` / ``IntegerLookup`` / ``Hashing`` or of the
    TF feature column it names), and crosses them in the given order, bit for bit as
    ``tf.sparse.cross_hashed``: the ids of ``crossed_column`` over ``bucketized_column`` and of
    Keras ``FeatureSpace`` crosses. The output is a dict keyed by ``Cross.name``; features not
    used by any cross are ignored.

    Valid input shapes, per feature: dense `(batch_size,)` or `(batch_size, 1)` (one value per
    row), or on the TensorFlow backend a rank-2 `tf.SparseTensor` / `tf.RaggedTensor` (several
    values per row, e.g. `keras.Input(shape=(None,), sparse=True)`), each value transformed, then
    crossed as the cartesian product of the row's values.

    Outputs, per cross: `output_mode="int"`: int64 ids; all features dense: of the first feature's
    shape; else a `tf.RaggedTensor` if a feature is ragged, otherwise a `tf.SparseTensor` of shape
    `(batch_size, max ids per row)`. `output_mode="one_hot"` (dense features only): a
    `(batch_size, num_bins)` one-hot vector per row, in the layer's dtype (`float32` by default).

    Refused, as ``transform_ids`` and the core refuse them: a raw float feature (floats are crossed
    through ``Bucketize`` only) or a wrong dtype for a transform, when the graph is built
    (`TypeError`); a value a transform cannot take (an OOV token without OOV ids, an identity out
    of range), when it runs (`tf.errors.InvalidArgumentError` naming the feature and the reason).

    Args:
        crosses: a list of :class:`~beam_cross.Cross` or of their dicts (``Cross.to_dict()``), one
            ``Cross``, or the path of a JSON / YAML spec file holding such a list (read once: the
            saved model holds the crosses, not the path).
        name: The layer's name. Defaults to `None` (a unique name).
        dtype: The dtype of one-hot outputs. Defaults to `None`, the global dtype policy
            (normally `"float32"`). Ids are always int64.
        **kwargs: Keyword arguments of the base `keras.layers.Layer` (e.g. `trainable`).

    >>> import numpy as np
    >>> from beam_cross import Bucketize, Cross
    >>> layer = CrossingLayer([Cross([Bucketize("age", [18, 25]), "country"], 1000)])
    >>> out = layer({"age": np.array([17.0, 18.0, 30.0]), "country": np.array(["fr", "fr", "us"])})
    >>> keras.ops.convert_to_numpy(out["age_X_country"])  # crossed_column agrees
    array([116,  20, 471])
    """

    def __init__(self, crosses, name=None, dtype=None, **kwargs):
        if isinstance(crosses, (str, os.PathLike)):
            crosses = read_crosses(crosses)
        self.crosses = check_crosses([crosses] if isinstance(crosses, Cross) else crosses, require_learned=True)
        super().__init__(name=name, dtype=dtype, **kwargs)
        # Inputs are strings as often as numbers: take them as given, never through the backend.
        self._allow_non_tensor_positional_args = True
        self._convert_input_args = False
        self.supports_jit = False
        self.built = True  # no weights
        # The vocabulary tables, owned by the layer (as Keras's StringLookup owns its table), so that
        # a saved or exported model tracks them: one per distinct Lookup, built once.
        self._lookups = tuple(dict.fromkeys(t for c in self.crosses for t in c.transforms if isinstance(t, Lookup)))
        self._tables_built = False
        if keras.backend.backend() == "tensorflow":
            self._build_tables()

    def _build_tables(self):
        import tensorflow as tf

        from beam_cross.tf.transform_ops import lookup_table

        with tf.init_scope():  # built eagerly, also when first called inside a tf.data map or tf.function
            for index, transform in enumerate(self._lookups):
                setattr(self, f"_lookup_table_{index}", lookup_table(transform))  # an attribute: tracked for saving
        self._tables_built = True

    def _table(self, transform):
        if not isinstance(transform, Lookup):
            return None
        return getattr(self, f"_lookup_table_{self._lookups.index(transform)}")

    def get_config(self):
        return {**super().get_config(), "crosses": [c.to_dict() for c in self.crosses]}

    @property
    def features(self) -> tuple[str, ...]:
        """The raw features the crosses read, in first-use order."""
        return tuple(dict.fromkeys(f for c in self.crosses for f in c.features))

    def compute_output_spec(self, inputs):
        self._check_inputs(inputs)
        out = {}
        for cross in self.crosses:
            specs = [inputs[f] for f in cross.features]
            for feature, transform, spec in zip(cross.features, cross.transforms, specs):
                _check_shape(cross, feature, tuple(spec.shape), _multivalent(spec))
                _check_symbolic_dtype(cross, feature, transform, str(spec.dtype))
            batch = specs[0].shape[0] if specs[0].shape else None
            if not any(_multivalent(s) for s in specs):
                if cross.output_mode == "one_hot":
                    out[cross.name] = keras.KerasTensor((batch, cross.num_bins), dtype=self.compute_dtype)
                else:
                    out[cross.name] = keras.KerasTensor(tuple(specs[0].shape), dtype="int64")
                continue
            _check_multivalent_mode(cross, specs)
            ragged = any(getattr(s, "ragged", False) for s in specs)
            out[cross.name] = keras.KerasTensor((batch, None), dtype="int64", sparse=not ragged, ragged=ragged)
        return out

    def __call__(self, inputs, *args, **kwargs):
        if keras.backend.backend() != "tensorflow" and isinstance(inputs, Mapping) and not _in_tf_graph() and not any(
                isinstance(v, keras.KerasTensor) for v in inputs.values()):
            # Eager values off TensorFlow: the NumPy core, called directly. Keras's call wrapper would
            # turn the core's FeatureError (which names the feature, the reason and the value) into a
            # RuntimeError, and on the NumPy backend it cannot describe a string array at all.
            self._check_inputs(inputs)
            return self._call_numpy(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs):
        self._check_inputs(inputs)
        if keras.backend.backend() == "tensorflow" or _in_tf_graph():
            return self._call_tf(inputs)
        return self._call_numpy(inputs)

    def _check_inputs(self, inputs):
        if not isinstance(inputs, Mapping):
            raise TypeError(f"`CrossingLayer` takes a dict of raw features by name. Received: inputs of type "
                            f"{type(inputs).__name__}")
        for cross in self.crosses:
            missing = [f for f in cross.features if f not in inputs]
            if missing:
                raise KeyError(f"Cross `{cross.name}` needs features {missing}, missing from the inputs "
                               f"{sorted(inputs)}")

    def _call_tf(self, inputs):
        import tensorflow as tf

        from beam_cross.tf.cross_ops import as_int64_or_string, crossed_ids
        from beam_cross.tf.transform_ops import transform_ids

        if not self._tables_built:
            self._build_tables()
        tensors = {f: _as_tf_tensor(inputs[f], tf) for f in self.features}
        out = {}
        with tf.device("CPU:0"):  # the string, lookup and hash ops only have CPU kernels
            for cross in self.crosses:
                columns = []
                for feature, transform in zip(cross.features, cross.transforms):
                    value = tensors[feature]
                    _check_shape(cross, feature, tuple(value.shape), isinstance(value, _composite(tf)))
                    if transform is None:
                        _check_raw_dtype(cross, feature, value.dtype)
                        columns.append(as_int64_or_string(value))
                    else:
                        columns.append(transform_ids(transform, value, table=self._table(transform)))
                out[cross.name] = self._encode_tf(cross, crossed_ids(columns, cross.num_bins, cross.hash_key), tf)
        return out

    def _encode_tf(self, cross, ids, tf):
        if cross.output_mode == "int":
            return ids
        _check_multivalent_mode(cross, [ids])
        return tf.one_hot(tf.reshape(ids, [-1]), cross.num_bins, dtype=self.compute_dtype)

    def _call_numpy(self, inputs):
        out = {}
        for cross in self.crosses:
            columns = {f: _to_numpy(inputs[f]) for f in cross.features}
            bins = cross.apply(columns)
            if not isinstance(bins, np.ndarray):
                raise ValueError(f"Cross `{cross.name}`: multivalent features need the TensorFlow backend "
                                 f"(tf.RaggedTensor / tf.SparseTensor). Backend: {keras.backend.backend()}")
            if cross.output_mode == "int":
                out[cross.name] = keras.ops.convert_to_tensor(bins.astype(np.int64), dtype="int64")
                continue
            flat = bins.reshape(-1)
            one_hot = np.zeros((flat.size, cross.num_bins), dtype=self.compute_dtype)
            one_hot[np.arange(flat.size), flat] = 1
            out[cross.name] = keras.ops.convert_to_tensor(one_hot, dtype=self.compute_dtype)
        return out


def _composite(tf):
    return (tf.SparseTensor, tf.RaggedTensor)


def _multivalent(spec) -> bool:
    return bool(getattr(spec, "sparse", False) or getattr(spec, "ragged", False))


def _check_shape(cross, feature, shape, multivalent):
    if multivalent:
        if len(shape) != 2:
            raise ValueError(f"Cross `{cross.name}`: a multivalent feature (sparse or ragged) must have rank 2 "
                             f"(batch_size, values). Received: feature `{feature}` with shape={shape}")
    elif len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] not in (1, None)):
        raise ValueError(f"Cross `{cross.name}`: a dense feature must have shape (batch_size,) or (batch_size, 1); "
                         f"several values per row go in a tf.SparseTensor or tf.RaggedTensor. "
                         f"Received: feature `{feature}` with shape={shape}")


def _check_multivalent_mode(cross, specs):
    if cross.output_mode == "one_hot" and any(_multivalent(s) or _is_composite(s) for s in specs):
        raise ValueError(f"Cross `{cross.name}` has output_mode='one_hot', which needs one value per row; "
                         "a multivalent (sparse or ragged) feature gives several ids per row. Use output_mode='int'.")


def _is_composite(value) -> bool:
    return type(value).__name__ in ("SparseTensor", "RaggedTensor")


def _check_raw_dtype(cross, feature, dtype):
    if not (dtype.is_integer or dtype.name == "string"):
        raise TypeError(f"Cross `{cross.name}` crosses feature `{feature}` as it is, so it must hold strings or "
                        f"integers; floats are crossed through a `Bucketize` only "
                        f'(Cross([Bucketize("{feature}", [...]), ...])). Received: dtype={dtype.name}')


def _check_symbolic_dtype(cross, feature, transform, dtype: str):
    """When a functional model is built: the dtype checks that ``transform_ids`` / the TF path make."""
    kind = "string" if dtype == "string" else "int" if dtype.startswith(("int", "uint")) else (
        "float" if "float" in dtype else None)
    if transform is None:
        if kind not in ("string", "int"):
            raise TypeError(f"Cross `{cross.name}` crosses feature `{feature}` as it is, so it must hold strings or "
                            f"integers; floats are crossed through a `Bucketize` only "
                            f'(Cross([Bucketize("{feature}", [...]), ...])). Received: dtype={dtype}')
    elif kind not in transform.takes:
        takes = " or ".join(f"{k}s" for k in transform.takes)
        raise TypeError(f"`{type(transform).__name__}` of feature `{feature}` takes {takes}. "
                        f"Received: a tensor with dtype={dtype}")


def _as_tf_tensor(value, tf):
    if isinstance(value, (tf.Tensor, tf.SparseTensor, tf.RaggedTensor)):
        return value
    if keras.ops.is_tensor(value):  # another backend's tensor (e.g. torch) goes through NumPy
        value = keras.ops.convert_to_numpy(value)
    return tf.convert_to_tensor(value)
