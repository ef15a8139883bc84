"""``beam_cross.tft.make_preprocessing_fn`` over the crosses ``from_feature_columns`` and
``from_feature_space`` import: one tf.Transform pipeline per shape (AnalyzeAndTransformDataset on the
FnApiRunner) and its served ``transform_fn`` give the ids TF's feature columns and Keras' FeatureSpace
give the edge rows of ``tests/importer_oracle.py`` (made in a clean child process: Keras 3 never
meets tf_keras here). A row a feature column leaves without an id fails the served graph with reason
``no_id``. FeatureSpace crosses are taken in int mode (the tft helper outputs ids).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from beam_cross import Cross
from tests import importer_oracle as oracle

DTYPES = {str: tf.string, float: tf.float32, int: tf.int64}


def _columns(shape, index):
    return {name: [values[i] for i in index] for name, values in shape["rows"].items()}


def _tensor(values):
    if isinstance(values[0], str):
        return tf.constant(np.array(values, dtype=object))
    with np.errstate(over="ignore"):  # 1e39 becomes inf as float32, as the FixedLenFeature float32 input does
        return tf.constant(np.array(values, dtype=np.float32 if isinstance(values[0], float) else np.int64))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    import beam_cross.tft as bc_tft

    shapes = oracle.run_oracle(tmp_path_factory.mktemp("oracle"))
    out = {}
    for name in ("wide", "space"):
        shape = shapes[name]
        crosses = [Cross.from_dict({**c, "output_mode": "int"}) for c in shape["crosses"]]
        _, expected = oracle.single_valued(shape)
        kept = [i for i, ids in enumerate(expected) if ids is not None]
        columns = _columns(shape, kept)
        spec = {c: tf.io.FixedLenFeature([], DTYPES[type(v[0])]) for c, v in columns.items()}
        spec["row_id"] = tf.io.FixedLenFeature([], tf.int64)
        rows = [dict(zip(columns, values), row_id=i) for i, values in zip(kept, zip(*columns.values()))]
        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
        work = tmp_path_factory.mktemp(name)
        names = [c.name for c in crosses]
        with beam.Pipeline("FnApiRunner") as p, tft_beam.Context(temp_dir=str(work / "tmp")):
            (transformed, _), transform_fn = (p | beam.Create(rows), metadata) | tft_beam.AnalyzeAndTransformDataset(
                bc_tft.make_preprocessing_fn(crosses, passthrough=["row_id"]))
            _ = transform_fn | tft_beam.WriteTransformFn(str(work / "fn"))
            _ = (transformed | beam.Map(lambda r, names=names: json.dumps([int(r["row_id"]), {n: int(r[n]) for n in names}]))
                 | beam.io.WriteToText(str(work / "ids"), shard_name_template=""))
        trained = dict(json.loads(line) for line in (work / "ids").read_text().splitlines())
        out[name] = (shape, crosses, expected, kept, {int(k): v for k, v in trained.items()}, str(work / "fn"))
    return out


@pytest.mark.parametrize("name", ["wide", "space"])
def test_training_output_has_the_ids_of_tf_and_keras(runs, name):
    _, _, expected, kept, trained, _ = runs[name]
    assert trained == {i: expected[i] for i in kept}


@pytest.mark.parametrize("name", ["wide", "space"])
def test_served_transform_fn_has_the_ids_of_tf_and_keras(runs, name):
    import tensorflow_transform as tft

    shape, crosses, expected, kept, _, fn_dir = runs[name]
    features = {c: _tensor(v) for c, v in _columns(shape, kept).items()}
    features["row_id"] = tf.constant(kept, tf.int64)
    served = tft.TFTransformOutput(fn_dir).transform_raw_features(features)
    for cross in crosses:
        assert served[cross.name].numpy().tolist() == [expected[i][cross.name] for i in kept], cross.name


def test_a_row_feature_columns_drop_fails_the_served_graph(runs):
    import tensorflow_transform as tft

    shape, _, expected, _, _, fn_dir = runs["wide"]
    dropped = expected.index(None)
    features = {c: _tensor(v) for c, v in _columns(shape, [dropped]).items()}
    features["row_id"] = tf.constant([dropped], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no_id"):
        tft.TFTransformOutput(fn_dir).transform_raw_features(features)
