"""``LearnCrosses`` on the FnApiRunner: vocabularies equal the exact ones (themselves tested against Keras
``adapt`` in ``tests/core/test_learning.py``), boundaries within the stated rank error of the exact
quantiles, and the ids of ``CrossFeatures`` with the learned spec as a side input equal ``Cross.apply``
with the learned spec."""

from __future__ import annotations

import os
import pathlib
import pickle
import tempfile
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import Bucketize, Cross, CrossFeatures, FeatureError, LearnCrosses, Lookup
from beam_cross.core.learning import exact_counts, learn_exactly, rank_error
from beam_cross.core.spec import CrossSpecError

RNG = np.random.default_rng(7)
N = 30_000
AGE = np.round(RNG.lognormal(3.0, 1.0, N), 1)
TIES = np.where(RNG.random(N) < 0.6, 0.0, RNG.integers(1, 6, N)).astype(np.float64)  # heavy ties
WORDS = np.array([f"w{int(z)}" for z in RNG.zipf(1.3, N)], dtype=object)
HOUR = RNG.integers(0, 24, N)
COLUMNS = {"age": AGE, "ties": TIES, "word": WORDS, "hour": HOUR}
CROSSES = [
    Cross([Bucketize("age", num_buckets=10), Lookup("word", max_tokens=50)], 1000),
    Cross([Bucketize("ties", num_buckets=8), Lookup("hour", max_tokens=6)], 1000),
    Cross([Lookup("word", style="feature_column", max_tokens=20, min_count=5, num_oov_indices=2), "hour"], 0),
]


def batches(size=3000):
    table = pa.table({"age": AGE, "ties": TIES, "word": pa.array(WORDS.tolist()), "hour": HOUR})
    return table.to_batches(max_chunksize=size)


def _save(element, directory):
    with open(os.path.join(directory, uuid.uuid4().hex), "wb") as out:
        pickle.dump(element, out)


def keep(pcoll, directory, label):
    """Writes each element of ``pcoll`` to a file of its own in ``directory`` (read back by :func:`kept`)."""
    os.makedirs(directory, exist_ok=True)
    return pcoll | label >> beam.Map(_save, str(directory))


def kept(directory) -> list:
    return [pickle.loads(path.read_bytes()) for path in sorted(pathlib.Path(directory).iterdir())]


def run_learning(elements, crosses, **options):
    directory = tempfile.mkdtemp()
    with beam.Pipeline("FnApiRunner") as p:
        keep(p | beam.Create(elements) | LearnCrosses(crosses, **options), directory, "keep")
    out = kept(directory)
    assert len(out) == 1
    return out[0]


def test_vocabularies_are_exact_and_boundaries_within_the_bound():
    epsilon = 0.01  # large enough for the combiner to collapse buffers on 30,000 values
    got = run_learning(batches(), CROSSES, epsilon=epsilon)
    exact = learn_exactly(CROSSES, COLUMNS)
    for cross_got, cross_exact in zip(got, exact):
        for t_got, t_exact in zip(cross_got.transforms, cross_exact.transforms):
            if isinstance(t_got, Lookup):
                assert t_got == t_exact
            elif isinstance(t_got, Bucketize):
                error = rank_error(COLUMNS[t_got.name], t_got.boundaries, t_got.num_buckets)
                assert error <= epsilon, (t_got.name, error)
    assert got[1].inputs[0].boundaries == exact[1].inputs[0].boundaries  # ties: one value per quantile anyway
    assert len(got[0].inputs[1].vocabulary) == 49 and got[2].inputs[0].vocabulary == exact[2].inputs[0].vocabulary


def test_dicts_rows_and_batches_learn_the_same_spec():
    rows = [{"age": float(a), "ties": float(t), "word": w, "hour": int(h)}
            for a, t, w, h in zip(AGE[:2000], TIES[:2000], WORDS[:2000], HOUR[:2000])]
    exact = learn_exactly(CROSSES, {k: v[:2000] for k, v in COLUMNS.items()})  # 2,000 values: kept exactly
    assert run_learning(rows, CROSSES) == exact
    assert run_learning([beam.Row(**r) for r in rows[:2000]], CROSSES) == exact
    assert run_learning(pa.Table.from_pylist(rows).to_batches(max_chunksize=300), CROSSES) == exact


def test_crossing_batches_with_the_learned_spec_as_a_side_input(tmp_path):
    with beam.Pipeline("FnApiRunner") as p:
        pcoll = p | beam.Create(batches(5000))
        learned = pcoll | LearnCrosses(CROSSES)
        keep(learned, tmp_path / "spec", "keep spec")
        keep(pcoll | CrossFeatures(beam.pvalue.AsSingleton(learned)), tmp_path / "crossed", "keep crossed")
    (spec,) = kept(tmp_path / "spec")
    assert all(c.learned for c in spec)
    crossed = pa.Table.from_batches(kept(tmp_path / "crossed")).sort_by([("age", "ascending"), ("word", "ascending"),
                                                                          ("hour", "ascending"), ("ties", "ascending")])
    columns = {name: crossed.column(name).to_numpy() for name in COLUMNS}
    columns["word"] = np.array(crossed.column("word").to_pylist(), dtype=object)
    assert crossed.num_rows == N
    for cross in spec:
        assert crossed.column(cross.name).to_pylist() == cross.apply(columns).tolist()


def test_dict_rows_crossed_with_the_side_input_equal_cross_apply():
    rows = [{"age": float(a), "word": w} for a, w in zip(AGE[:500], WORDS[:500])]
    crosses = [Cross([Bucketize("age", num_buckets=5), Lookup("word", max_tokens=10)], 100)]
    spec = learn_exactly(crosses, {"age": AGE[:500], "word": WORDS[:500]})
    expected = spec[0].apply({"age": AGE[:500], "word": WORDS[:500]}).tolist()
    with beam.Pipeline("FnApiRunner") as p:
        pcoll = p | beam.Create(rows)
        learned = pcoll | LearnCrosses(crosses)
        assert_that(learned, equal_to([spec]), label="spec")
        crossed = pcoll | CrossFeatures(beam.pvalue.AsSingleton(learned)).with_exception_handling()
        assert_that(crossed[0] | beam.Map(lambda r: (r["age"], r["word"], r["age_X_word"])),
                    equal_to(list(zip(AGE[:500].tolist(), WORDS[:500].tolist(), expected))), label="ids")


def test_an_unlearned_spec_refuses_to_cross_and_a_learned_one_is_kept():
    with pytest.raises(CrossSpecError, match=r"Cross `age_X_word` cannot cross yet: .*learn it first with beam_cross.LearnCrosses"):
        CrossFeatures(CROSSES[:1])
    learned = [Cross([Bucketize("age", [1, 2]), "hour"], 10)]
    assert run_learning([{"age": 1.0, "hour": 1}], learned) == tuple(learned)


def test_bad_values_fail_or_are_skipped():
    crosses = [Cross([Bucketize("age", num_buckets=3), Lookup("word")], 10)]
    rows = [{"age": 1.0, "word": "a"}, {"age": "old", "word": "b"}, {"age": 2.0, "word": None},
            {"word": "a"}, {"age": 3.0, "word": "c"}]
    with pytest.raises(Exception, match=r"Feature `age`: `Bucketize` takes ints or floats, not strings"):
        run_learning(rows, crosses)
    with pytest.raises(Exception, match=r"Feature `age`.*learns from this column, missing from the input"):
        run_learning(rows[3:], crosses)
    spec = run_learning(rows, crosses, skip_invalid=True)
    assert spec == learn_exactly(crosses, {"age": [1.0, 2.0, 3.0], "word": ["a", "b", "a", "c"]})
    with pytest.raises(Exception, match=r"Feature `word`: .* learned an empty vocabulary"):
        run_learning([{"age": 1.0, "word": "[UNK]"}], crosses)
    with pytest.raises(ValueError, match=r"`epsilon` must be a number between 0 and 1"):
        LearnCrosses(crosses, epsilon=0)


def test_mixed_kinds_in_a_lookup_column_fail_with_the_feature_named():
    crosses = [Cross([Lookup("word"), "x"], 10)]
    with pytest.raises(Exception, match=r"Feature `word`:.*strings or of ints, and the column holds both") as info:
        run_learning([{"word": "a", "x": 1}, {"word": 7, "x": 1}], crosses)
    assert isinstance(info.value, FeatureError) or "mixed_kinds" in str(info.value) or "both" in str(info.value)


def test_counts_are_exact_per_token_across_bundles():
    words = WORDS.tolist()
    got = run_learning([{"word": w, "x": 1} for w in words[:5000]], [Cross([Lookup("word"), "x"], 10)])
    assert got[0].inputs[0] == Lookup("word").learn(exact_counts(Lookup("word"), words[:5000]))


@pytest.mark.parametrize("epsilon", [0.01, 0.002])
def test_the_sketch_is_beams_approximate_quantiles(epsilon):
    """QuantileSketch runs the algorithm of Beam's ApproximateQuantilesCombineFn: within the same bound, and the
    same output when the buffers collapse in the same order (Beam keeps its rounding jitter on the CombineFn,
    shared by its accumulators, a sketch on itself, so deeper merges may round differently)."""
    from apache_beam.transforms.stats import ApproximateQuantilesCombineFn

    from beam_cross.core.quantiles import QuantileSketch

    values = np.random.default_rng(11).lognormal(0, 2, 250_000)
    beam_fn = ApproximateQuantilesCombineFn.create(21, epsilon=epsilon, input_batched=True)
    parts = []
    for start in range(0, len(values), 50_000):  # five accumulators, merged
        accumulator = beam_fn.create_accumulator()
        for i in range(start, start + 50_000, 7_000):
            accumulator = beam_fn.add_input(accumulator, values[i:min(i + 7_000, start + 50_000)].tolist())
        parts.append(accumulator)
    expected = beam_fn.extract_output(beam_fn.merge_accumulators(parts))
    sketches = []
    for start in range(0, len(values), 50_000):
        sketch = QuantileSketch(epsilon)
        for i in range(start, start + 50_000, 7_000):
            sketch.add(values[i:min(i + 7_000, start + 50_000)])
        sketches.append(sketch)
    got = sketches[0].merge(sketches[1:]).quantiles(21)
    if epsilon == 0.01:
        assert got == expected
    assert 0 < rank_error(values, got[1:-1], 20) <= epsilon
    assert rank_error(values, expected[1:-1], 20) <= epsilon
