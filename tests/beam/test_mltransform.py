"""beam_cross.beam.mltransform: MLTransform write-then-read gives the ids TensorFlow gives, on dicts and
Rows, with readable artifacts and bad rows routed to the errors output."""

from __future__ import annotations

import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.ml.transforms.base import MLTransform
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline  # not collected by pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import FeatureError
from beam_cross.beam.mltransform import CROSS_FILE, HashedCrossing

ROWS = [
    {"country": "fr", "hour": 13, "tags": ["a", "b"]},
    {"country": "us", "hour": 7, "tags": []},
    {"country": "fr", "hour": 13, "tags": ["c"]},
    {"country": "de", "hour": -1, "tags": ["a"]},
]


def tf_dense_ids(first, second, num_bins, hash_key=None):
    """The oracle: TensorFlow's own cross (as Keras HashedCrossing calls it)."""
    columns = [tf.reshape(tf.constant(c), [-1, 1]) for c in (first, second)]
    return tf.sparse.to_dense(tf.sparse.cross_hashed(columns, num_bins, hash_key=hash_key)).numpy()[:, 0].tolist()


def tf_ragged_ids(lists, column, num_bins):
    ragged = tf.ragged.constant(lists, dtype=tf.string)
    return tf.ragged.cross_hashed([ragged, tf.reshape(tf.constant(column), [-1, 1])], num_bins).to_list()


def _with(rows, name, ids):
    return [{**row, name: value} for row, value in zip(rows, ids)]


def _ml_transform(rows, label, **kwargs):
    pipeline = BeamPipeline(runner="FnApiRunner")
    transform = MLTransform(**{k: v for k, v in kwargs.items() if k != "transforms"})
    for each in kwargs.get("transforms", []):
        transform = transform.with_transform(each)
    return pipeline, pipeline | f"Create{label}" >> beam.Create(rows) | f"MLTransform{label}" >> transform


def test_write_then_read_gives_the_same_ids_as_tensorflow(tmp_path):
    location = str(tmp_path / "artifacts")
    country_hour = tf_dense_ids([r["country"] for r in ROWS], [r["hour"] for r in ROWS], 1000)
    tags_country = tf_ragged_ids([r["tags"] for r in ROWS], [r["country"] for r in ROWS], 50)
    expected = [
        {**row, "country_X_hour": a, "tags_X_country": b} for row, a, b in zip(ROWS, country_hour, tags_country)
    ]
    crosses = [HashedCrossing(columns=["country", "hour"], num_bins=1000),
               HashedCrossing(columns=["tags", "country"], num_bins=50)]
    pipeline, written = _ml_transform(ROWS, "Write", write_artifact_location=location, transforms=crosses)
    assert_that(written, equal_to(expected), label="WrittenIds")
    pipeline.run().wait_until_finish()

    new_rows = list(reversed(ROWS))  # a later pipeline, other batches: same ids per row
    pipeline, read = _ml_transform(new_rows, "Read", read_artifact_location=location)
    assert_that(read, equal_to(list(reversed(expected))), label="ReadIds")
    pipeline.run().wait_until_finish()


def test_rows_in_rows_out(tmp_path):
    rows = [beam.Row(a="x", b=1), beam.Row(a="y", b=2)]
    ids = tf_dense_ids(["x", "y"], [1, 2], 10, hash_key=42)
    expected = [beam.Row(a="x", b=1, ab=ids[0]), beam.Row(a="y", b=2, ab=ids[1])]
    location = str(tmp_path / "rows")
    pipeline, out = _ml_transform(
        rows, "Rows", write_artifact_location=location,
        transforms=[HashedCrossing(columns=["a", "b"], num_bins=10, name="ab", hash_key=42)],
    )
    assert_that(out, equal_to(expected), label="RowIds")
    pipeline.run().wait_until_finish()
    pipeline, read = _ml_transform(rows, "RowsRead", read_artifact_location=location)
    assert_that(read, equal_to(expected), label="ReadRowIds")
    pipeline.run().wait_until_finish()


def test_after_a_tft_operation(tmp_path):
    """Vocabulary indices (arrays, as MLTransform's TFT operations output them) crossed with an int."""
    from apache_beam.ml.transforms.tft import ComputeAndApplyVocabulary

    rows = [{"a": "x", "b": 1}, {"a": "y", "b": 2}, {"a": "x", "b": 3}]

    def check(outputs):
        assert len(outputs) == 3
        for row in outputs:
            indices = tf.RaggedTensor.from_row_lengths(tf.constant(row.a, tf.int64), [len(row.a)])
            expected = tf.ragged.cross_hashed([indices, tf.constant([[row.b]], tf.int64)], 10).to_list()[0]
            assert row.a_X_b == expected, row

    pipeline, out = _ml_transform(
        rows, "Vocab", write_artifact_location=str(tmp_path / "vocab"),
        transforms=[ComputeAndApplyVocabulary(columns=["a"]), HashedCrossing(columns=["a", "b"], num_bins=10)],
    )
    assert_that(out, check, label="CrossedIndices")
    pipeline.run().wait_until_finish()


def _write_country_hour_artifact(tmp_path, name) -> str:
    """Runs MLTransform once with a country x hour cross into 7 bins; returns the artifact location."""
    location = str(tmp_path / name)
    pipeline, _ = _ml_transform(ROWS, name, write_artifact_location=location,
                                transforms=[HashedCrossing(columns=["country", "hour"], num_bins=7)])
    pipeline.run().wait_until_finish()
    return location


def test_artifacts_are_readable_json(tmp_path):
    _write_country_hour_artifact(tmp_path, "json")
    (attributes,) = json.loads((tmp_path / "json" / "attributes.json").read_text())
    assert attributes["py/object"] == "beam_cross.beam.mltransform.CrossColumns"
    state = attributes["py/state"]
    assert state["cross"] == {"features": ["country", "hour"], "num_bins": 7, "name": "country_X_hour",
                              "output_mode": "int", "hash_key": None}
    with open(os.path.join(state["artifact_location"], CROSS_FILE)) as file:
        assert json.load(file) == state["cross"]
    assert "py/b64" not in json.dumps(attributes) and "py/reduce" not in json.dumps(attributes)


def test_artifact_naming_the_old_module_path_still_reads(tmp_path):
    # Artifacts written before the package layout name beam_cross.mltransform.CrossColumns.
    location = _write_country_hour_artifact(tmp_path, "old")
    ids = tf_dense_ids([r["country"] for r in ROWS], [r["hour"] for r in ROWS], 7)
    expected = [{**row, "country_X_hour": i} for row, i in zip(ROWS, ids)]
    attributes_file = tmp_path / "old" / "attributes.json"
    text = attributes_file.read_text()
    assert "beam_cross.beam.mltransform.CrossColumns" in text
    attributes_file.write_text(text.replace("beam_cross.beam.mltransform.CrossColumns", "beam_cross.mltransform.CrossColumns"))
    pipeline, read = _ml_transform(ROWS, "OldRead", read_artifact_location=location)
    assert_that(read, equal_to(expected), label="OldIds")
    pipeline.run().wait_until_finish()


def test_tampered_artifact_is_refused(tmp_path):
    location = _write_country_hour_artifact(tmp_path, "tampered")
    (attributes,) = json.loads((tmp_path / "tampered" / "attributes.json").read_text())
    path = os.path.join(attributes["py/state"]["artifact_location"], CROSS_FILE)
    with open(path, "w") as file:
        json.dump({"features": ["country", "hour"], "num_bins": 8}, file)
    with pytest.raises(ValueError, match="describes cross"):
        _ml_transform(ROWS, "TamperRead", read_artifact_location=location)


def test_bad_rows_go_to_the_errors_output(tmp_path):
    rows = [{"a": "x", "b": 1}, {"a": "y", "b": 2.5}, {"a": "z"}]
    pipeline = BeamPipeline(runner="FnApiRunner")
    good, bad = (
        pipeline
        | beam.Create(rows)
        | MLTransform(write_artifact_location=str(tmp_path / "errors"))
        .with_transform(HashedCrossing(columns=["a", "b"], num_bins=10))
        .with_exception_handling()
    )
    assert_that(good, equal_to([{"a": "x", "b": 1, "a_X_b": tf_dense_ids(["x"], [1], 10)[0]}]), label="Good")
    messages = bad | beam.Map(lambda row: (row.element["a"], "float" in row.msg or "missing from the row" in row.msg))
    assert_that(messages, equal_to([("y", True), ("z", True)]), label="Bad")
    pipeline.run().wait_until_finish()


def test_bad_value_without_exception_handling_raises_a_feature_error():
    from beam_cross.beam.mltransform import cross_elements

    cross = HashedCrossing(columns=["a", "b"], num_bins=10).cross
    with pytest.raises(FeatureError, match=r"Feature `b` of cross `a_X_b`: floats cannot be crossed.*value=2.5"):
        cross_elements(cross, [{"a": "x", "b": 1}, {"a": "y", "b": 2.5}])
    with pytest.raises(FeatureError, match="Feature `b` of cross `a_X_b`: the feature is missing from the row"):
        cross_elements(cross, [{"a": "x"}])
    np.testing.assert_array_equal(  # ints of any width are their int64 bits, as in TF
        [r["a_X_b"] for r in cross_elements(cross, [{"a": "x", "b": np.uint8(1)}, {"a": "y", "b": np.int32(2)}])],
        tf_dense_ids(["x", "y"], [1, 2], 10),
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least two"):
        HashedCrossing(columns=["a"], num_bins=10)
    with pytest.raises(ValueError, match="num_bins=-1"):
        HashedCrossing(columns=["a", "b"], num_bins=-1)
