"""``from_feature_space``: the crosses of a Keras 3 ``keras.utils.FeatureSpace``, as :class:`~beam_cross.Cross`.

A ``FeatureSpace`` cross hashes, with ``HashedCrossing(crossing_dim)``, the **integer output of each
feature's preprocessor**, in the order of the cross's ``feature_names`` (``crossing-semantics.md``
§10.1); its ``output_mode`` only encodes the bin. Each preprocessor becomes the core transform with
the same ids, from the parameters the FeatureSpace holds (adapted or loaded from a ``.keras`` file:
they are read, never recomputed):

- ``StringLookup`` / ``IntegerLookup`` (``string_categorical``, ``integer_categorical``): a
  :class:`~beam_cross.Lookup` of the layer's vocabulary and ``num_oov_indices``;
- ``Discretization`` (``float_discretized``): :class:`~beam_cross.Bucketize` of its ``bin_boundaries``;
- ``Hashing`` (``string_hashed``, ``integer_hashed``): :class:`~beam_cross.Hash` of its ``num_bins``.

A cross over another feature (``float``, ``float_normalized``, a custom preprocessor), or a
preprocessor beam_cross does not reproduce (a mask token, a salt, ``oov_method="farmhash"``, an
inverted lookup) is a ValueError naming the cross, the feature and the setting.

>>> import keras
>>> space = keras.utils.FeatureSpace(
...     features={"sex": keras.utils.FeatureSpace.string_categorical(num_oov_indices=1),
...               "age": keras.utils.FeatureSpace.float_discretized(num_bins=3)},
...     crosses=[keras.utils.FeatureSpace.cross(("sex", "age"), crossing_dim=64)], output_mode="dict")
>>> space.adapt(__import__("tensorflow").data.Dataset.from_tensor_slices(
...     {"sex": ["f", "m", "m"], "age": [20.0, 40.0, 60.0]}).batch(3))
>>> (cross,) = from_feature_space(space)
>>> cross.name, cross.inputs[0]
('sex_X_age', Lookup('sex', ['m', 'f'], num_oov_indices=1, style='keras'))
"""

from __future__ import annotations

import os

from beam_cross.core.spec import Cross
from beam_cross.core.transforms import Bucketize, Hash, Lookup
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import keras

__all__ = ["from_feature_space"]


def _refuse(cross: str, feature: str, problem: str, received: str):
    raise ValueError(f"FeatureSpace cross `{cross}`: feature `{feature}` {problem}. Received: {received}")


def _lookup(layer, cross: str, feature: str) -> Lookup:
    if layer.invert or layer.output_mode != "int":
        _refuse(cross, feature, "has a lookup that does not give integer ids (inverted, or not output_mode='int')",
                f"invert={layer.invert}, output_mode={layer.output_mode!r}")
    if layer.mask_token is not None:
        _refuse(cross, feature, "has a lookup with a mask token, which beam_cross does not reproduce",
                f"mask_token={layer.mask_token!r}")
    integer = isinstance(layer, keras.layers.IntegerLookup)
    if layer.num_oov_indices > 1 and (layer.salt is not None or (integer and layer.oov_method != "floormod")):
        _refuse(cross, feature, "hashes its OOV values with a salt or oov_method='farmhash'; beam_cross reproduces "
                "the default OOV hashing only", f"salt={layer.salt!r}, oov_method={layer.oov_method!r}")
    vocabulary = layer.get_vocabulary(include_special_tokens=False)
    if not vocabulary:
        _refuse(cross, feature, "has an empty vocabulary (is the FeatureSpace adapted?)", "vocabulary=[]")
    tokens = [int(t) for t in vocabulary] if integer else [str(t) for t in vocabulary]
    return Lookup(feature, tokens, num_oov_indices=int(layer.num_oov_indices))


def _transform(space, cross: str, feature: str):
    """The core transform that gives the ids a FeatureSpace feature's preprocessor gives its cross."""
    preprocessor = space.preprocessors[feature]
    if isinstance(preprocessor, (keras.layers.StringLookup, keras.layers.IntegerLookup)):
        return _lookup(preprocessor, cross, feature)
    if isinstance(preprocessor, keras.layers.Discretization):
        if preprocessor.output_mode != "int":
            _refuse(cross, feature, "has a Discretization that does not give integer ids",
                    f"output_mode={preprocessor.output_mode!r}")
        if not preprocessor.bin_boundaries:
            _refuse(cross, feature, "has a Discretization without bin boundaries (is the FeatureSpace adapted?)",
                    f"bin_boundaries={preprocessor.bin_boundaries!r}")
        return Bucketize(feature, [float(b) for b in preprocessor.bin_boundaries])
    if isinstance(preprocessor, keras.layers.Hashing):
        if preprocessor.salt is not None or preprocessor.mask_value is not None or preprocessor.output_mode != "int":
            _refuse(cross, feature, "has a Hashing with a salt, a mask value or a non-int output; beam_cross reproduces "
                    "Hashing(num_bins) only", f"salt={preprocessor.salt!r}, mask_value={preprocessor.mask_value!r}, "
                    f"output_mode={preprocessor.output_mode!r}")
        return Hash(feature, int(preprocessor.num_bins))
    _refuse(cross, feature, "is not categorical, hashed or discretized: a cross takes the integer ids of a "
            "StringLookup, IntegerLookup, Discretization or Hashing preprocessor (string_categorical, "
            "integer_categorical, float_discretized, string_hashed, integer_hashed)",
            f"preprocessor={type(preprocessor).__name__} ({preprocessor.name})")


def from_feature_space(feature_space) -> list[Cross]:
    """The :class:`~beam_cross.Cross` of every cross of a Keras 3 ``FeatureSpace``, in its order.

    Each cross gives the ids of the FeatureSpace's cross (its ``HashedCrossing`` over the preprocessed
    features), under its name (``"_X_".join(feature_names)``), with its ``crossing_dim`` as
    ``num_bins`` and its ``output_mode``.

    Args:
        feature_space: an adapted ``keras.utils.FeatureSpace``, or the path of one saved to a
            ``.keras`` file (loaded with ``keras.saving.load_model``).

    Returns:
        A list of ``Cross``: ``to_dict()`` gives a spec file for the command's ``--config``.
    """
    if isinstance(feature_space, (str, os.PathLike)):
        feature_space = keras.saving.load_model(os.fspath(feature_space))
    if not isinstance(feature_space, keras.utils.FeatureSpace):
        raise TypeError("`feature_space` must be a keras.utils.FeatureSpace or the path of a .keras file of one. "
                        f"Received: {type(feature_space).__name__}")
    if not feature_space.crosses:
        raise ValueError(f"The FeatureSpace has no crosses; beam_cross imports its crosses. "
                         f"Received: features={sorted(feature_space.features)}")
    crosses = []
    for cross in feature_space.crosses:
        features = [_transform(feature_space, cross.name, name) for name in cross.feature_names]
        crosses.append(Cross(features, int(cross.crossing_dim), name=cross.name, output_mode=cross.output_mode))
    return crosses
