"""Runs ``beam_cross.CrossingLayer`` on one Keras backend and prints what it returned, as JSON; also
holds the edge data and crosses that ``tests/tf/test_crossing_layer.py`` checks against TF / Keras.

The test runs this file in a subprocess with ``KERAS_BACKEND`` set (Keras fixes its backend when first
imported) and compares the output with the TF / Keras oracle. Importing this module runs nothing and
imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from beam_cross import Bucketize, Cross, FeatureError, Lookup

# The §10 edges, as raw columns: float64 values that round to float32 across a boundary, NaN, ±inf,
# -0.0, subnormals, values beyond float32; integers above 2**24; empty strings and OOV tokens.
AGE_EDGES = [float("-inf"), float("inf"), float("nan"), -0.0, 0.0, 0.1, float(np.nextafter(0.1, 1)), 0.09999999,
             17.999999999, 18.0, 24.99999999, 25.0, 35.0, 49.9999999, 50.0, 1e300, -1e300, 5e-324, -1e-40, 30.0,
             42.5, 71.0]
N = len(AGE_EDGES)
BIG_EDGES = [16777216, 16777217, 16777218, 16777219, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 0, 3, -1, 2**24 - 1,
             9007199254740993, 1, 2, 4]
BIG = (BIG_EDGES * N)[:N]
COUNTRY = (["fr", "", "us", "é", "日本", "fr", "xx", "a\0b", " ", "US"] * N)[:N]
SEX = (["male", "female", "", "other", "[UNK]", "MALE", "female", "male", "femal"] * N)[:N]

AGE_BOUNDARIES = [0.1, 18.0, 25.0]
FS_BOUNDARIES = [0.1, 18.0, 35.0, 50.0]
BIG_BOUNDARIES = [3.0, 16777217.0, 9007199254740993.0]
SEXES = ["male", "female"]

WIDE = Cross([Bucketize("age", AGE_BOUNDARIES), "country"], 1000, name="age_bucketized_X_country")
WIDE_INT = Cross([Bucketize("big", BIG_BOUNDARIES), "country"], 97, name="big_bucketized_X_country")
FEATURE_SPACE = Cross([Bucketize("age", FS_BOUNDARIES), Lookup("sex", SEXES)], 32, name="age_X_sex")
FEATURE_SPACE_ONE_HOT = Cross([Bucketize("age", FS_BOUNDARIES), Lookup("sex", SEXES)], 32, name="age_X_sex_one_hot",
                              output_mode="one_hot")
CROSSES = [WIDE, WIDE_INT, FEATURE_SPACE, FEATURE_SPACE_ONE_HOT]
RAW = {"age": np.array(AGE_EDGES, np.float64), "big": np.array(BIG, np.int64),
       "country": np.array([c.encode() for c in COUNTRY], object), "sex": np.array([s.encode() for s in SEX], object)}
DTYPES = {"age": "float64", "big": "int64", "country": "string", "sex": "string"}
STRICT = Cross([Lookup("sex", SEXES, num_oov_indices=0), "country"], 10)  # an OOV sex has no id


def main() -> None:
    import beam_cross

    keras_imported_by_beam_cross = "keras" in sys.modules
    layer_class = beam_cross.CrossingLayer  # resolved lazily: imports keras now
    import keras

    eager = {k: keras.ops.convert_to_numpy(v).tolist() for k, v in layer_class(CROSSES)(RAW).items()}
    batch_by_one = layer_class([WIDE])({k: v[:, None] for k, v in RAW.items()})[WIDE.name]
    try:
        layer_class([STRICT])(RAW)
        refused = None
    except FeatureError as error:
        refused = {"reason": error.reason, "feature": error.feature, "message": str(error)}
    # Keras's own serialization imports TensorFlow when it is installed (serialize_keras_object): look before.
    tensorflow_imported = "tensorflow" in sys.modules
    restored = layer_class.from_config(layer_class(CROSSES).get_config())
    from_config = {k: keras.ops.convert_to_numpy(v).tolist() for k, v in restored(RAW).items()}
    print(json.dumps({
        "backend": keras.backend.backend(),
        "keras_imported_by_beam_cross": keras_imported_by_beam_cross,
        "tensorflow_imported": tensorflow_imported,
        "eager": eager,
        "batch_by_one": keras.ops.convert_to_numpy(batch_by_one).tolist(),
        "from_config": from_config,
        "refused": refused,
    }))


if __name__ == "__main__":
    main()
