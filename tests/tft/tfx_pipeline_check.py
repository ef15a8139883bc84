"""Runs ``pipelines/tfx_pipeline.py`` for real and serves the sample's raw rows through the pushed
model; run by ``tests/tft/test_tfx_pipeline.py`` with the TFX venv's python (see ``.ci/tfx-env``)::

    python tests/tft/tfx_pipeline_check.py OUTPUT_DIR RESULT_JSON

Every row of the sample, as a serialized raw tf.Example (its values as they are: a missing value or
an empty list is left out, a float is a float_list, a list is a list), goes through the pushed model's ``transform_features``
signature alone; the rows it accepts then go through it, and through ``serving_default``, as one
batch. The crossed ids (or the error) of every row go to RESULT_JSON, which is written last, with
``"ok": true``: a process that ran a tf.Transform pipeline can crash in TensorFlow's teardown at
interpreter exit, after its work is done, so the caller judges by this file, not by the exit code
alone. Comparing the ids with ``beam_cross.hashed_cross`` is the caller's job, in the test's own
environment.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _feature(value):
    import tensorflow as tf

    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, str) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
    if all(isinstance(v, int) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def serialized_example(row: dict) -> bytes:
    """The raw row as a tf.Example: None and [] are left out (a missing feature)."""
    import tensorflow as tf

    features = {name: _feature(value) for name, value in row.items() if value is not None and value != []}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def ids_by_row(outputs: dict) -> dict:
    """``transform_features`` outputs as ``{cross: [ids of row 0, ...]}``: an int per row, or for a
    multivalent cross (``__values`` and ``__row_lengths``) a list per row."""
    from tfx_trainer import ROW_LENGTHS, VALUES

    ids = {}
    for name, value in outputs.items():
        if name.endswith(VALUES):
            cross = name[: -len(VALUES)]
            values, start, ids[cross] = value.numpy().tolist(), 0, []
            for length in outputs[cross + ROW_LENGTHS].numpy().tolist():
                ids[cross].append(values[start : start + length])
                start += length
        elif not name.endswith(ROW_LENGTHS):
            ids[name] = value.numpy().tolist()
    return ids


def serve(model_dir: str, rows: list[dict]) -> dict:
    import tensorflow as tf

    model = tf.saved_model.load(model_dir)
    transform_features = model.signatures["transform_features"]
    serving_default = model.signatures["serving_default"]
    one_by_one = {}
    for row in rows:
        try:
            ids = ids_by_row(transform_features(examples=tf.constant([serialized_example(row)])))
            one_by_one[row["click_id"]] = {"ids": {name: by_row[0] for name, by_row in ids.items()}}
        except tf.errors.InvalidArgumentError as error:
            # TF's parse error, e.g. "Feature: country (data type: string) is required but could not be found."
            lines = [line for line in error.message.splitlines() if line.startswith("Name: ")] or [error.message]
            one_by_one[row["click_id"]] = {"error": lines[0]}
    accepted = [row for row in rows if "ids" in one_by_one[row["click_id"]]]
    batch = tf.constant([serialized_example(row) for row in accepted])
    ids = ids_by_row(transform_features(examples=batch))
    probability = serving_default(examples=batch)["probability"]
    return {
        "signatures": sorted(model.signatures),
        "variable_shapes": {v.name: v.shape.as_list() for v in model.variables},
        "one_by_one": one_by_one,
        "batch": {
            "click_ids": [row["click_id"] for row in accepted],
            "ids": ids,
            "probability_shape": list(probability.shape),
            "probability": probability.numpy().ravel().tolist(),
        },
    }


def main(output_dir: str, result_path: str) -> None:
    sys.path.insert(0, str(REPO / "pipelines"))
    import tfx_pipeline

    import beam_cross

    start = time.perf_counter()
    summary = tfx_pipeline.run(output_dir, train_steps=20, eval_steps=5)
    pipeline_seconds = time.perf_counter() - start
    with open(tfx_pipeline.SAMPLE) as lines:
        rows = [json.loads(line) for line in lines]
    served = serve(summary["pushed_model"], rows)
    result = {
        "ok": True,
        "summary": summary,
        **served,
        "beam_cross": beam_cross.__file__,
        "seconds": {"pipeline": pipeline_seconds, "serving": time.perf_counter() - start - pipeline_seconds},
    }
    tmp = Path(result_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(result_path)  # whole or absent


if __name__ == "__main__":
    main(*sys.argv[1:])
