"""Runs ``beam_cross.HashedCrossing`` on one Keras backend and prints what it returned, as JSON.

``tests/tf/test_layers.py`` runs this file in a subprocess with ``KERAS_BACKEND`` set (Keras fixes
its backend when first imported) and compares the output with ``keras.layers.HashedCrossing`` on
TensorFlow. Importing this module runs nothing: it only defines the cases.
"""

from __future__ import annotations

import json
import sys

import numpy as np

STRINGS = np.array(["A", "B", "A", "B", "A"])
INTS = np.array([101, 101, 101, 102, 102])
ODD_BYTES = np.array([b"x", b"", b"\0", "\u00e9".encode(), b"y" * 70])


def cases() -> dict:
    """name -> (constructor kwargs, inputs); every case is one TF-backend Keras accepts."""
    return {
        "doc_int": ({"num_bins": 5}, [STRINGS, INTS]),
        "doc_one_hot": ({"num_bins": 5, "output_mode": "one_hot"}, [STRINGS, INTS]),
        "three_columns": ({"num_bins": 1000}, [STRINGS[:, None], INTS[:, None].astype(np.int32), ODD_BYTES[:, None]]),
        "scalars": ({"num_bins": 10}, ["A", 101]),
        "scalars_one_hot": ({"num_bins": 10, "output_mode": "one_hot"}, ["A", 101]),
        "python_lists": ({"num_bins": 7}, [["a", "b"], [1, 2]]),
        "int_widths": ({"num_bins": 2**40}, [np.array([2**64 - 1, 0, 7], np.uint64), np.array([-1, 5, -128], np.int8)]),
        "full_hash": ({"num_bins": 0}, [STRINGS, INTS]),
        "float_int_mode": ({"num_bins": 5, "dtype": "float32"}, [STRINGS, INTS]),
        "one_hot_int32": ({"num_bins": 5, "output_mode": "one_hot", "dtype": "int32"}, [STRINGS[:, None], INTS[:, None]]),
    }


def bad_inputs() -> dict:
    """name -> inputs that must be refused with Keras's dtype message."""
    return {
        "floats": [STRINGS, INTS.astype(np.float32)],
        "bools": [STRINGS, INTS > 101],
        "mixed_list": [["a", 1], [1, 2]],
    }


def main() -> None:
    import beam_cross

    keras_imported_by_beam_cross = "keras" in sys.modules
    layer_class = beam_cross.HashedCrossing  # resolved lazily: imports keras now
    import keras

    results = {}
    for name, (kwargs, inputs) in cases().items():
        output = keras.ops.convert_to_numpy(layer_class(**kwargs)(inputs))
        results[name] = {"dtype": str(output.dtype), "shape": list(output.shape), "values": output.tolist()}
    empty = layer_class(num_bins=5, output_mode="one_hot")([STRINGS[:0, None], INTS[:0, None]])
    results["empty_one_hot"] = {"dtype": str(empty.dtype), "shape": list(empty.shape), "values": []}

    errors = {}
    for name, inputs in bad_inputs().items():
        try:
            layer_class(num_bins=5)(inputs)
        except ValueError as error:
            errors[name] = str(error)
    try:
        layer_class(num_bins=5, output_mode="one_hot", sparse=True)
    except ValueError as error:
        errors["sparse"] = str(error)

    inputs = [keras.Input(shape=(1,), dtype="int64") for _ in range(3)]
    model = keras.Model(inputs, layer_class(num_bins=7, output_mode="one_hot")(inputs))
    functional = keras.ops.convert_to_numpy(model.predict_on_batch([INTS[:, None], INTS[::-1, None], INTS[:, None]]))

    tensorflow_imported = "tensorflow" in sys.modules
    # Inside tf.data the layer emits TF ops whatever the backend (imports TensorFlow, so last).
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((STRINGS, INTS)).batch(2)
    tf_data = [batch.tolist() for batch in dataset.map(lambda a, b: layer_class(num_bins=5)((a, b))).as_numpy_iterator()]

    print(json.dumps({
        "backend": keras.backend.backend(),
        "keras_imported_by_beam_cross": keras_imported_by_beam_cross,
        "tensorflow_imported": tensorflow_imported,
        "tf_data": tf_data,
        "results": results,
        "errors": errors,
        "functional_three_inputs": functional.tolist(),
    }))


if __name__ == "__main__":
    main()
