"""``CrossStatsFn``: the Beam ``CombineFn`` gives what the core's accumulators give on the same rows."""

from __future__ import annotations

import random

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline  # module import: pytest would try to collect TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import Cross
from beam_cross.beam.stats import CrossStatsFn
from beam_cross.core.stats import CrossStatsAccumulator


def test_crosses_must_have_unique_names():
    with pytest.raises(ValueError, match="Cross names must be unique"):
        CrossStatsFn([Cross(["a", "b"], 3), Cross(["a", "b"], 5)])


def test_combine_fn_in_a_pipeline():
    rng = random.Random(11)
    rows = [{"country": rng.choice(["fr", "us", "de", "jp", "br", "in", "cn"]), "hour": rng.randrange(24),
             "tags": rng.sample(["a", "b", "c", "d", "e"], rng.randrange(4))} for _ in range(700)]
    crosses = [Cross(["country", "hour"], 30), Cross(["tags", "hour"], 64)]
    expected = []
    for cross in crosses:
        accumulator = CrossStatsAccumulator(cross)
        accumulator.add_rows(rows)
        expected.append(accumulator.result())
    with test_pipeline.TestPipeline(runner="FnApiRunner") as pipeline:
        stats = (
            pipeline
            | beam.Create(rows, reshuffle=True)
            | beam.CombineGlobally(CrossStatsFn(crosses, batch_size=64))
        )
        assert_that(stats, equal_to([tuple(expected)]), label="stats")
