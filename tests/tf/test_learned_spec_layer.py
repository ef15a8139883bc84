"""``CrossingLayer`` takes a learned spec file (vocabularies in files of their own) and gives the ids
``Cross.apply`` gives with the same spec; an unlearned spec is refused with how to learn it."""

from __future__ import annotations

import numpy as np
import pytest

from beam_cross import Bucketize, Cross, Lookup
from beam_cross.core.learning import learn_exactly
from beam_cross.core.spec import CrossSpecError
from beam_cross.core.spec_file import write_crosses

keras = pytest.importorskip("keras", reason="CrossingLayer is a Keras 3 layer")

RNG = np.random.default_rng(2)
COLUMNS = {"age": RNG.lognormal(3, 1, 2000), "word": np.array([f"w{z}\n" for z in RNG.zipf(1.2, 2000)], object)}
UNLEARNED = [Cross([Bucketize("age", num_buckets=10), Lookup("word", max_tokens=400)], 1000)]


def test_crossing_layer_reads_a_learned_spec_file(tmp_path):
    from beam_cross import CrossingLayer

    spec = learn_exactly(UNLEARNED, COLUMNS)
    assert len(spec[0].inputs[1].vocabulary) > 100  # written to its own file
    write_crosses(spec, tmp_path / "crosses.json")
    assert (tmp_path / "vocabulary_word.jsonl").exists()
    out = CrossingLayer(str(tmp_path / "crosses.json"))(COLUMNS)
    assert keras.ops.convert_to_numpy(out[spec[0].name]).tolist() == spec[0].apply(COLUMNS).tolist()


def test_crossing_layer_refuses_an_unlearned_spec(tmp_path):
    from beam_cross import CrossingLayer

    write_crosses(UNLEARNED, tmp_path / "todo.json")
    with pytest.raises(CrossSpecError, match=r"cannot cross yet: Bucketize\('age', num_buckets=10\).*learn it first"):
        CrossingLayer(str(tmp_path / "todo.json"))
