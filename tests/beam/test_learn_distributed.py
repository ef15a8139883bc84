"""``LearnCrosses`` and ``CrossFeatures`` with the learned spec as a side input, on Beam's DaskRunner on a
``distributed.LocalCluster`` of 2 worker processes. That runner computes only the last step of a
pipeline and runs no ``assert_that``: the pipeline ends in one writer DoFn (the learned spec and the
crossed rows, tagged, on one PCollection) and the test compares what the workers wrote with the exact
spec (``learn_exactly``) and ``Cross.apply``."""

from __future__ import annotations

import base64
import pickle

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from remote_workers import WriteLines, read_lines, ship_by_value

from beam_cross import Bucketize, Cross, CrossFeatures, LearnCrosses, Lookup
from beam_cross.core.learning import learn_exactly, rank_error

pytestmark = pytest.mark.slow

ship_by_value(__name__)

RNG = np.random.default_rng(5)
N = 40_000
COLUMNS = {"age": np.round(RNG.lognormal(3, 1, N), 2), "word": np.array([f"w{z}" for z in RNG.zipf(1.4, N)], object),
           "hour": RNG.integers(0, 24, N)}
CROSSES = [Cross([Bucketize("age", num_buckets=20), Lookup("word", max_tokens=30)], 1000),
           Cross([Lookup("word", style="feature_column", max_tokens=10, min_count=3), Lookup("hour", max_tokens=5)], 0)]
EPSILON = 0.005  # small buffers: the sketches collapse and merge across workers
BATCHES = pa.table({"age": COLUMNS["age"], "word": pa.array(COLUMNS["word"].tolist()), "hour": COLUMNS["hour"]}
                   ).to_batches(max_chunksize=2000)


def _spec_line(spec):
    return ("spec", base64.b64encode(pickle.dumps(spec)).decode())


def _id_lines(batch, names):
    rows = zip(batch.column("age").to_pylist(), batch.column("word").to_pylist(), batch.column("hour").to_pylist(),
               *(batch.column(n).to_pylist() for n in names))
    return [("ids", list(row)) for row in rows]


def test_learn_and_cross_on_dask(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    names = [c.name for c in CROSSES]
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=4"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        batches = p | beam.Create(BATCHES)
        learned = batches | LearnCrosses(CROSSES, epsilon=EPSILON)
        crossed = batches | CrossFeatures(beam.pvalue.AsSingleton(learned))
        _ = ((learned | "spec line" >> beam.Map(_spec_line),
              crossed | "id lines" >> beam.FlatMap(_id_lines, names))
             | beam.Flatten() | "write" >> beam.ParDo(WriteLines(tmp_path)))
        result = p.run()
        result.wait_until_finish()
        result.client.close()
    lines = read_lines(tmp_path)
    specs = [pickle.loads(base64.b64decode(value)) for kind, value in lines if kind == "spec"]
    rows = [value for kind, value in lines if kind == "ids"]
    assert len(specs) == 1 and len(rows) == N
    (spec,) = specs
    exact = learn_exactly(CROSSES, COLUMNS)
    assert [c.inputs[1:] for c in spec] == [c.inputs[1:] for c in exact]  # vocabularies: exact
    assert spec[1] == exact[1]
    age = spec[0].inputs[0]
    assert rank_error(COLUMNS["age"], age.boundaries, 20) <= EPSILON
    expected = sorted(zip(COLUMNS["age"].tolist(), COLUMNS["word"].tolist(), COLUMNS["hour"].tolist(),
                          *(c.apply(COLUMNS).tolist() for c in spec)))
    assert sorted(tuple(r) for r in rows) == expected
