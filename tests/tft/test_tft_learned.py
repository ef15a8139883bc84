"""beam_cross.tft learns unlearned transforms with tf.Transform analyzers: a real AnalyzeAndTransformDataset
run. Vocabularies give the ids of a ``Lookup`` with the exact vocabulary (``learn_exactly``, Keras
``adapt``'s order) in each ``style``; bucket ids are a step function of the value whose steps (the
least value of each bucket) are within tf.Transform's epsilon, in rank, of the exact quantiles."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from beam_cross import Bucketize, Cross, Lookup, hashed_cross
from beam_cross.core.learning import learn_exactly, rank_error

RNG = np.random.default_rng(4)
N = 4000
AGE = np.round(RNG.lognormal(3, 1, N), 2).astype(np.float32)
WORD = [f"w{z}" for z in RNG.zipf(1.3, N)]
WORD[:5] = ["[UNK]", "two\nlines", "", "two\nlines", "[UNK]"]
HOUR = RNG.integers(0, 30, N)
CROSSES = [
    Cross([Bucketize("age", num_buckets=10), Lookup("word", max_tokens=40)], 0, name="age_word"),
    Cross([Lookup("word", style="feature_column", max_tokens=12, num_oov_indices=2, min_count=3), "hour"], 0,
          name="fc"),
    Cross([Lookup("hour", max_tokens=8, num_oov_indices=3), Lookup("word", style="feature_column", max_tokens=6)], 0,
          name="hour_word"),
]
COLUMNS = {"age": AGE, "word": np.array(WORD, object), "hour": HOUR}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    import beam_cross.tft as bc_tft

    spec = {"age": tf.io.FixedLenFeature([], tf.float32), "word": tf.io.FixedLenFeature([], tf.string),
            "hour": tf.io.FixedLenFeature([], tf.int64)}
    rows = [{"age": float(a), "word": w, "hour": int(h)} for a, w, h in zip(AGE, WORD, HOUR)]
    rows = [r for r in rows if r["word"] != ""]  # feature columns drop '' from a dense input: no id
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    work = tmp_path_factory.mktemp("learned")
    with beam.Pipeline("FnApiRunner") as p, tft_beam.Context(temp_dir=str(work / "tmp")):
        data = p | beam.Create(rows)
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(bc_tft.make_preprocessing_fn(CROSSES))
        _ = transform_fn | tft_beam.WriteTransformFn(str(work / "fn"))
    keep = np.array([w != "" for w in WORD])
    columns = {k: v[keep] for k, v in COLUMNS.items()}
    raw = {"age": tf.constant(columns["age"]), "word": tf.constant(columns["word"].astype(bytes)),
           "hour": tf.constant(columns["hour"], tf.int64)}
    out = tft.TFTransformOutput(str(work / "fn")).transform_raw_features(raw)
    return columns, {name: t.numpy() for name, t in out.items()}


def test_learned_vocabularies_give_the_exact_lookups_ids(served):
    columns, out = served
    exact = learn_exactly(CROSSES, columns)
    assert out["fc"].tolist() == exact[1].apply(columns).tolist()
    assert out["hour_word"].tolist() == exact[2].apply(columns).tolist()


def test_learned_boundaries_are_a_step_function_within_epsilon(served):
    columns, out = served
    exact = learn_exactly(CROSSES, columns)
    lookup = exact[0].inputs[1]
    # bucket of each row, recovered by crossing each candidate bucket with the row's word ids
    words = lookup(columns["word"])
    bucket = np.full(len(words), -1)
    for b in range(10):
        match = hashed_cross([np.full(len(words), b, np.int64), words], 0) == out["age_word"]
        bucket[match] = b
    assert (bucket >= 0).all()
    order = np.argsort(columns["age"], kind="stable")
    assert (np.diff(bucket[order]) >= 0).all()  # a step function of the value
    steps = [float(columns["age"][bucket == b].min()) for b in np.unique(bucket)[1:]]
    assert rank_error(columns["age"], steps, 10) <= 0.001  # tft.quantiles' epsilon
    recovered = Cross([Bucketize("age", steps), lookup], 0)
    assert recovered.apply(columns).tolist() == out["age_word"].tolist()
