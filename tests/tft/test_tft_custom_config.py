"""Crosses with transformed features (``Bucketize``, ``Lookup``, ``Identity``, ``Hash``) carried as a TFX
Transform ``custom_config`` carries them: ``[c.to_dict() for c in crosses]`` through ``json.dumps`` /
``json.loads``, then into ``beam_cross.tft.make_preprocessing_fn`` and into the ``preprocessing_fn`` of
``pipelines/tfx_module.py``, each run by tf.Transform (``AnalyzeAndTransformDataset``). The training
output and the served ``transform_fn`` give, row for row, the ids of ``Cross.apply`` on the same rows
(``Cross.apply`` is checked against Keras and TF elsewhere: ``tests/golden/transforms.json``).

tensorflow_transform is imported inside the fixture and the tests (it sets TF_USE_LEGACY_KERAS=1 on
import), so collecting this module does not change the Keras world of other test modules.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf  # tensorflow alone leaves the Keras world as it is
from test_tft import _transformed_rows, load_module_file

from beam_cross import Bucketize, Cross, Hash, Identity, Lookup

CITIES = ["paris", "lyon", "nice", "lille"]
KINDS = [3, 5, 7]
CROSSES = [
    Cross([Bucketize("x", [-1.0, 0.0, 0.1, 2.5]), "country"], 97, name="x_bucket_X_country"),
    Cross([Lookup("city", CITIES, num_oov_indices=3), Identity("hour", 24, default_value=0)], 1000, name="city_X_hour"),
    Cross([Lookup("city", CITIES, style="feature_column", num_oov_indices=2), Hash("country", 16),
           Lookup("kind", KINDS, num_oov_indices=2)], 5000, hash_key=11, name="three"),
    Cross([Lookup("kind", KINDS, style="feature_column", default_value=9), Hash("hour", 10)], 300, name="kind_X_hour"),
    Cross(["country", "hour"], 50),  # a raw cross beside the transformed ones
]
FEATURE_SPEC = {
    "x": tf.io.FixedLenFeature([], tf.float32),
    "country": tf.io.FixedLenFeature([], tf.string),
    "city": tf.io.FixedLenFeature([], tf.string),
    "hour": tf.io.FixedLenFeature([], tf.int64),
    "kind": tf.io.FixedLenFeature([], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
}
# NaN and +inf go to the last bucket, -inf to the first; -0.0 is 0.0; 0.1 is on the boundary; 1e40 is inf
# as a float32; 1e-45 is a float32 subnormal (compared as 0).
X_VALUES = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, -1.0, 0.1, 0.09999999, 2.5, 1e40, 1e-45, -7.25, 3.0]


def _rows():
    countries, cities = ["fr", "us", "日本", ""], CITIES + ["rome", "PARIS"]  # the last two: OOV
    kinds, hours = KINDS + [4, 8], [0, 5, 23, 24, 99]  # 4 and 8: OOV; 24 and 99: Identity's default_value
    return [{"x": X_VALUES[i % len(X_VALUES)], "country": countries[i % 4], "city": cities[i % len(cities)],
             "hour": hours[i % 5], "kind": kinds[(i // 2) % 5], "label": i} for i in range(39)]


def _columns(rows):
    return {name: [r[name] for r in rows] for name in FEATURE_SPEC}


def _expected(rows):
    """The ids of ``Cross.apply`` on the rows, per cross, in row order."""
    return {cross.name: cross.apply(_columns(rows)).tolist() for cross in CROSSES}


def _custom_config():
    """What a TFX pipeline definition carries to its Transform component: JSON-serializable values only."""
    config = {"crosses": [c.to_dict() for c in CROSSES], "passthrough": ["label"], "defaults": {},
              "collision_stats": False}
    return json.loads(json.dumps(config))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both entry points, each run once by tf.Transform: ``{entry: (training output rows, transform_fn dir)}``."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    import beam_cross.tft as bc_tft

    rows, config = _rows(), _custom_config()
    schema = schema_utils.schema_from_feature_spec(FEATURE_SPEC)
    out = {}

    # beam_cross.tft.make_preprocessing_fn over the crosses of the config, on in-memory rows.
    work = tmp_path_factory.mktemp("make_preprocessing_fn")
    fn = bc_tft.make_preprocessing_fn([Cross.from_dict(c) for c in config["crosses"]], config["passthrough"])
    with beam.Pipeline("FnApiRunner") as p, tft_beam.Context(temp_dir=str(work / "tmp")):
        (transformed, _), transform_fn = (
            (p | beam.Create(rows), dataset_metadata.DatasetMetadata(schema))
            | tft_beam.AnalyzeAndTransformDataset(fn)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(work / "fn"))
        _ = (transformed
             | beam.Map(lambda r: json.dumps({k: np.asarray(v).tolist() for k, v in r.items()}))
             | beam.io.WriteToText(str(work / "rows"), shard_name_template=""))
    trained = [json.loads(line) for line in (work / "rows").read_text().splitlines()]
    out["make_preprocessing_fn"] = (trained, str(work / "fn"))

    # The TFX module file's preprocessing_fn(inputs, custom_config), on tf.Examples read by TFXIO.
    module = load_module_file()
    work = tmp_path_factory.mktemp("tfx_module")
    module.write_examples(rows, str(work / "examples.tfrecord"), FEATURE_SPEC)  # floats as a float_list
    with beam.Pipeline("FnApiRunner") as p:
        module.transform_examples(p, str(work / "*.tfrecord"), str(work / "out"), custom_config=config, schema=schema,
                                  temp_dir=str(work / "tmp"))
    out["tfx_module"] = (_transformed_rows(str(work / "out")), str(work / "out"))
    return out


def test_the_config_is_json_and_gives_back_the_crosses():
    config = _custom_config()
    assert [Cross.from_dict(c) for c in config["crosses"]] == CROSSES
    kinds = {f["transform"] for c in config["crosses"] for f in c["features"] if isinstance(f, dict)}
    assert kinds == {"bucketize", "lookup", "identity", "hash"}


def test_the_rows_take_every_bucket_and_oov_path():
    rows = _rows()
    buckets = CROSSES[0].transforms[0]([r["x"] for r in rows]).tolist()
    assert sorted(set(buckets)) == [0, 1, 2, 3, 4]
    assert {r["city"] for r in rows} - set(CITIES) and {r["kind"] for r in rows} - set(KINDS)
    assert {r["hour"] for r in rows} - set(range(24))


@pytest.mark.parametrize("entry", ["make_preprocessing_fn", "tfx_module"])
def test_training_output_has_the_ids_of_cross_apply(runs, entry):
    rows = _rows()
    trained, _ = runs[entry]
    assert len(trained) == len(rows)
    trained = sorted(trained, key=lambda r: r["label"])
    assert [r["label"] for r in trained] == [r["label"] for r in rows]
    expected = _expected(rows)
    assert {name: [r[name] for r in trained] for name in expected} == expected


@pytest.mark.parametrize("entry", ["make_preprocessing_fn", "tfx_module"])
def test_served_transform_fn_has_the_ids_of_cross_apply(runs, entry):
    import tensorflow_transform as tft

    rows = _rows()
    _, fn_dir = runs[entry]
    with np.errstate(over="ignore"):  # 1e40 as a float32 is inf, as in a tf.Example's float_list
        raw = {name: tf.constant(np.array(values, dtype=object if FEATURE_SPEC[name].dtype == tf.string
                                          else FEATURE_SPEC[name].dtype.as_numpy_dtype))
               for name, values in _columns(rows).items()}
    served = tft.TFTransformOutput(fn_dir).transform_raw_features(raw)
    expected = _expected(rows)
    assert {name: served[name].numpy().tolist() for name in expected} == expected
    assert served["label"].numpy().tolist() == [r["label"] for r in rows]
