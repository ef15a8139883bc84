"""Train/serve parity, end to end: the same raw rows give the same crossed ids through every path.

(a) ``CrossFeatures`` on the DirectRunner (training-data preprocessing in Beam);
(b) the TFX module file through TFXIO + tf.Transform, its transform_fn written to disk, loaded with
    ``tft.TFTransformOutput`` and applied by ``transform_features_layer()`` inside a tf_keras serving
    model saved with a ``serving_default`` signature on serialized tf.Examples, reloaded and called;
(c) a Keras 3 model of ``beam_cross.HashedCrossing`` layers, ``model.export`` -ed, reloaded, called;
(d) the NumPy core, ``Cross.apply``;
(e) a Keras 3 model of one ``beam_cross.CrossingLayer`` over the same crosses (given as their dicts, as a
    spec file holds them), exported with a sparse ``tags`` input, reloaded and called.

One cross transforms its feature first (a ``Bucketize`` of ``hour``): every path but (c), whose Keras
layer crosses raw features only, computes it.

Two Keras worlds: tf.Transform's serving layer is a tf_keras (Keras 2) object and importing
tensorflow_transform sets ``TF_USE_LEGACY_KERAS=1``; ``beam_cross.HashedCrossing`` is Keras 3. Each
model path therefore runs in its own process (this file run as a script): (b) with
``TF_USE_LEGACY_KERAS=1`` and ``import tf_keras``, (c) with the variable unset and ``import keras``.

Missing values, as documented: a missing ``device`` (single-valued, optional) is ``"unknown"`` in
every path -- tf.Transform fills it (``defaults``), the other paths get the filled value; a missing
or empty ``tags`` (multivalent) gives no ``tags_X_hour`` id: ``[]``. Keras ``HashedCrossing`` takes
dense inputs only, so path (c) covers the single-valued crosses of raw features.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from beam_cross import Bucketize, Cross

REPO = Path(__file__).resolve().parents[1]
MODULE_FILE = REPO / "pipelines" / "tfx_module.py"

CROSSES = [
    Cross(["country", "hour"], 1000),  # string x int
    Cross(["device", "country"], 97),  # string x string, device optional (defaulted)
    Cross(["hour", "label"], 50),  # int x int
    Cross(["tags", "hour"], 200),  # multivalent x int, tags optional (no id when empty)
    Cross(["country", "hour", "device"], 0, hash_key=-7),  # three features, full hash, another seed
    Cross([Bucketize("hour", [0, 12, 18]), "country"], 64, name="country_X_hour_bucketized"),  # a transform
]
DEFAULTS = {"device": "unknown"}
DENSE_CROSSES = [c for c in CROSSES if "tags" not in c.features and not any(c.transforms)]

RAW_ROWS = [
    {"country": "fr", "hour": 13, "device": "ios", "tags": ["a", "b"], "label": 1},
    {"country": "us", "hour": 7, "tags": [], "label": 0},  # device missing, tags empty
    {"country": "de", "hour": 0, "device": "web", "label": 1},  # tags missing
    {"country": "日本", "hour": 23, "device": "android", "tags": ["c"], "label": 0},
    {"country": "", "hour": -1, "device": "", "tags": ["a", "a", "d"], "label": 1},  # empty strings, repeats
    {"country": "br", "hour": 2**40, "label": 0},  # a large int; device and tags missing
    {"country": "fr", "hour": 13, "device": "ios", "tags": ["b", "a"], "label": 1},  # tag order matters
]


def prepared(row):
    """The documented missing-value rule, for the paths that take plain values."""
    return {**row, "device": row.get("device", DEFAULTS["device"]), "tags": row.get("tags", [])}


def _columns(rows):
    return {name: [row[name] for row in rows] for name in rows[0]}


def core_ids(rows):
    """(d) the NumPy core: cross name -> ids per row (an int, or a list for the multivalent cross)."""
    columns = _columns(rows)
    ids = {}
    for cross in CROSSES:
        values = cross.apply(columns)
        ids[cross.name] = values.to_pylist() if hasattr(values, "to_pylist") else values.tolist()
    return ids


def _load_module_file():
    spec = importlib.util.spec_from_file_location("beam_cross_tfx_module_parity", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_in_process(mode, *args, legacy_keras):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, __file__, mode, *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{mode} failed:\n{done.stderr[-4000:]}"


def test_same_rows_same_ids_through_every_path(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    import beam_cross

    rows = [prepared(r) for r in RAW_ROWS]
    expected = core_ids(rows)  # (d)
    expected_rows = [{**row, **{name: ids[i] for name, ids in expected.items()}} for i, row in enumerate(rows)]

    # (a) CrossFeatures on the DirectRunner.
    with TestPipeline(runner="DirectRunner") as pipeline:
        crossed = pipeline | beam.Create(rows) | beam_cross.CrossFeatures(CROSSES)
        assert_that(crossed, equal_to(expected_rows), label="CrossFeaturesIds")

    # (b) tf.Examples on disk -> TFXIO -> tf.Transform -> transform_fn on disk ...
    module = _load_module_file()
    examples = tmp_path / "examples.tfrecord"
    module.write_examples(RAW_ROWS, str(examples))  # missing values are left out of the tf.Examples
    transform_dir = tmp_path / "transform"
    config = {"crosses": [c.to_dict() for c in CROSSES], "defaults": DEFAULTS, "passthrough": [],
              "collision_stats": False}
    with TestPipeline(runner="FnApiRunner") as pipeline:
        module.transform_examples(pipeline, str(examples), str(transform_dir), custom_config=config,
                                  temp_dir=str(tmp_path / "tft_tmp"))
    # ... -> tf_keras serving model (serialized tf.Examples in), saved, reloaded and called.
    served_path = tmp_path / "served.json"
    _run_in_process("serve-tft", transform_dir, examples, tmp_path / "serving_model", served_path, legacy_keras=True)
    served = json.loads(served_path.read_text())
    assert served == expected

    # (c) Keras 3 model of beam_cross.HashedCrossing, and (e) of CrossingLayer: exported, reloaded and called.
    rows_path, keras_path = tmp_path / "rows.json", tmp_path / "keras3.json"
    rows_path.write_text(json.dumps(rows))
    _run_in_process("keras3", rows_path, tmp_path / "keras3_export", keras_path, legacy_keras=False)
    keras_ids = json.loads(keras_path.read_text())
    assert keras_ids["hashed_crossing"] == {c.name: expected[c.name] for c in DENSE_CROSSES}
    assert keras_ids["crossing_layer"] == expected

    # The rows do exercise what they claim: an empty cross, a defaulted value, several ids per row.
    assert expected["tags_X_hour"][1] == [] and expected["tags_X_hour"][2] == []
    assert max(len(ids) for ids in expected["tags_X_hour"]) == 3
    assert expected["tags_X_hour"][0] != expected["tags_X_hour"][6]


# -- the model paths, each run in a process of its own Keras world ---------------------------------


def _serve_tft(transform_dir, examples, model_dir, out_path):
    """(b): tf_keras world (TF_USE_LEGACY_KERAS=1)."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras

    output = tft.TFTransformOutput(transform_dir)
    raw_spec = output.raw_feature_spec()

    class ServingModel(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.tft_layer = output.transform_features_layer()

        def call(self, features):
            return self.tft_layer(features)

    model = ServingModel()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(serialized):
        transformed = model(tf.io.parse_example(serialized, raw_spec))
        outputs = {}
        for name, value in transformed.items():
            if isinstance(value, tf.SparseTensor):  # a multivalent cross: its ids and ids per row
                ragged = tf.RaggedTensor.from_sparse(value)
                outputs[f"{name}__values"] = ragged.flat_values
                outputs[f"{name}__row_lengths"] = ragged.row_lengths()
            else:
                outputs[name] = value
        return outputs

    records = [r.numpy() for r in tf.data.TFRecordDataset([examples])]
    serve(tf.constant(records))  # trace once, which builds the model
    model.save(model_dir, save_format="tf", signatures={"serving_default": serve})

    reloaded = tf.saved_model.load(model_dir).signatures["serving_default"]
    result = {name: value.numpy().tolist() for name, value in reloaded(examples=tf.constant(records)).items()}
    ids = {}
    for name in sorted(result):
        if name.endswith("__values"):
            cross = name[: -len("__values")]
            values, lengths, start = result[name], result[f"{cross}__row_lengths"], 0
            ids[cross] = []
            for length in lengths:
                ids[cross].append(values[start : start + length])
                start += length
        elif not name.endswith("__row_lengths"):
            ids[name] = [int(v) for v in result[name]]
    Path(out_path).write_text(json.dumps(ids))


def _keras3(rows_path, export_dir, out_path):
    """(c): Keras 3 world (TF_USE_LEGACY_KERAS unset)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from beam_cross import CrossingLayer, HashedCrossing

    rows = json.loads(Path(rows_path).read_text())
    kinds = {"country": "string", "device": "string", "hour": "int64", "label": "int64"}
    inputs = {name: keras.Input(shape=(1,), dtype=dtype, name=name) for name, dtype in kinds.items()}
    outputs = {
        c.name: HashedCrossing(c.num_bins, hash_key=c.hash_key, name=c.name)([inputs[f] for f in c.features])
        for c in DENSE_CROSSES
    }
    keras.Model(inputs, outputs).export(export_dir)

    reloaded = tf.saved_model.load(export_dir)
    feed = {
        name: tf.constant(np.array([[row[name]] for row in rows], dtype=object if dtype == "string" else np.int64))
        for name, dtype in kinds.items()
    }
    result = reloaded.serve(feed)
    hashed_crossing = {name: [int(v) for v in value.numpy().reshape(-1)] for name, value in result.items()}

    # (e) One CrossingLayer over every cross, from their dicts; tags multivalent (a SparseTensor).
    inputs["tags"] = keras.Input(shape=(None,), dtype="string", sparse=True, name="tags")
    model = keras.Model(inputs, CrossingLayer([c.to_dict() for c in CROSSES])(inputs))
    specs = {name: tf.TensorSpec([None, 1], tf.string if dtype == "string" else tf.int64) for name, dtype in kinds.items()}
    specs["tags"] = tf.SparseTensorSpec([None, None], tf.string)
    archive = keras.export.ExportArchive()  # model.export would infer a dense spec for the sparse input
    archive.track(model)
    archive.add_endpoint("serve", tf.function(lambda features: model(features), input_signature=[specs]))
    archive.write_out(f"{export_dir}_crossing_layer", verbose=False)
    feed["tags"] = tf.ragged.constant([row["tags"] for row in rows], tf.string).to_sparse()
    result = tf.saved_model.load(f"{export_dir}_crossing_layer").serve(feed)
    crossing_layer = {
        name: tf.RaggedTensor.from_sparse(value).to_list() if isinstance(value, tf.SparseTensor)
        else [int(v) for v in value.numpy().reshape(-1)]
        for name, value in result.items()
    }
    Path(out_path).write_text(json.dumps({"hashed_crossing": hashed_crossing, "crossing_layer": crossing_layer}))


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    {"serve-tft": _serve_tft, "keras3": _keras3}[mode](*arguments)
