"""beam_cross: Keras ``HashedCrossing`` / ``tf.sparse.cross_hashed``, bit for bit, for Apache Beam,
tf.Transform and serving graphs.

``import beam_cross`` loads NumPy and pyarrow only. Names that need Beam, TensorFlow or Keras are
resolved on first use; ``beam_cross.tft`` (tf.Transform) is a submodule imported explicitly.
"""

from __future__ import annotations

import importlib

from beam_cross.core.columns import FeatureColumn, feature_column
from beam_cross.core.cross import DEFAULT_HASH_KEY, hashed_cross
from beam_cross.core.errors import FeatureError
from beam_cross.core.generated import all_crosses
from beam_cross.core.learning import learned
from beam_cross.core.spec import Cross
from beam_cross.core.suggested import suggested_bins
from beam_cross.core.transforms import Bucketize, Hash, Identity, Lookup

__version__ = "0.1.0"

# Public names defined in modules with heavy imports: name -> module.
_LAZY = {
    "CrossFeatures": "beam_cross.beam.transforms",
    "CrossingLayer": "beam_cross.tf.crossing_layer",
    "HashedCrossing": "beam_cross.tf.layers",
    "from_feature_columns": "beam_cross.tf.feature_columns",
    "from_feature_space": "beam_cross.tf.feature_space",
    "LearnCrosses": "beam_cross.beam.learn",
}

__all__ = [
    "Bucketize",
    "Cross",
    "CrossFeatures",
    "CrossingLayer",
    "DEFAULT_HASH_KEY",
    "FeatureColumn",
    "FeatureError",
    "Hash",
    "HashedCrossing",
    "Identity",
    "LearnCrosses",
    "Lookup",
    "all_crosses",
    "feature_column",
    "from_feature_columns",
    "from_feature_space",
    "hashed_cross",
    "learned",
    "suggested_bins",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'beam_cross' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
