"""``CrossFeatures`` over the crosses ``from_feature_columns`` and ``from_feature_space`` import: on the
FnApiRunner, on the DirectRunner in multi-process mode and on the DaskRunner, every row gets the ids TF's feature
columns / Keras' FeatureSpace give it (``tests/importer_oracle.py``, run in a clean child process),
and a row a feature column leaves without an id (a dropped ``''`` / ``-1``) is rejected with reason
``no_id`` on the feature that dropped it. The workers import no TensorFlow: the crosses are plain
``Cross`` objects rebuilt from their dicts.
"""

from __future__ import annotations

import json
import math

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from beam_cross import Cross
from beam_cross.beam.transforms import CrossFeatures
from tests import importer_oracle as oracle


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return oracle.run_oracle(tmp_path_factory.mktemp("oracle"))


def _one_hot(bin_, num_bins):
    return [int(j == bin_) for j in range(num_bins)]


def _expected(shape):
    """(crossed, rejected): ``(row_id, {cross: output})`` as JSON, and ``(row_id, "no_id", True)``."""
    crosses = [Cross.from_dict(c) for c in shape["crosses"]]
    rows, expected = oracle.single_valued(shape)
    crossed, rejected = [], []
    for i, ids in enumerate(expected):
        if ids is None:
            rejected.append((i, "no_id", True))
        else:
            out = {c.name: _one_hot(ids[c.name], c.num_bins) if c.output_mode == "one_hot" else ids[c.name] for c in crosses}
            crossed.append(json.dumps([i, out], sort_keys=True))
    return crosses, [dict(r, row_id=i) for i, r in enumerate(rows)], crossed, rejected


def _build(p, crosses, rows):
    good, bad = p | beam.Create(rows) | CrossFeatures(crosses).with_exception_handling()
    names = [c.name for c in crosses]
    crossed = good | "crossed" >> beam.Map(lambda r: json.dumps([r["row_id"], {n: r[n] for n in names}], sort_keys=True))
    rejected = bad | "rejected" >> beam.Map(lambda r: (r.element["row_id"], r.reason, r.element[r.feature] in ("", -1)))
    return crossed, rejected


@pytest.mark.parametrize("name", ["wide", "space"])
def test_cross_features_gives_the_ids_of_tf_and_keras(shapes, name):
    crosses, rows, crossed, rejected = _expected(shapes[name])
    assert any(isinstance(v, float) and math.isnan(v) for r in rows for v in r.values())
    assert (len(rejected) > 0) == (name == "wide")  # a FeatureSpace drops nothing
    with beam.Pipeline("FnApiRunner") as p:
        got, bad = _build(p, crosses, rows)
        assert_that(got, equal_to(crossed), label="crossed")
        assert_that(bad, equal_to(rejected), label="rejected")


def test_multivalent_features_give_the_ids_of_sparse_inputs(shapes):
    """Lists of values (SparseTensors for TF, which drops nothing from them): each row's ids, [] included."""
    shape = shapes["wide_multivalent"]
    crosses = [Cross.from_dict(c) for c in shape["crosses"]]
    (name,) = shape["expected"]
    rows = [dict(zip(shape["rows"], values), row_id=i) for i, values in enumerate(zip(*shape["rows"].values()))]
    expected = [json.dumps([i, ids]) for i, ids in enumerate(shape["expected"][name])]
    assert any(not ids for ids in shape["expected"][name]) and any(len(ids) > 1 for ids in shape["expected"][name])
    with beam.Pipeline("FnApiRunner") as p:
        got = p | beam.Create(rows) | CrossFeatures(crosses) | beam.Map(lambda r: json.dumps([r["row_id"], r[name]]))
        assert_that(got, equal_to(expected))


@pytest.mark.slow
def test_multi_process_direct_runner(shapes):
    crosses, rows, crossed, rejected = _expected(shapes["wide"])
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        got, bad = _build(p, crosses, rows)
        assert_that(got, equal_to(crossed), label="crossed")
        assert_that(bad, equal_to(rejected), label="rejected")


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wide", "space"])
def test_dask_runner(shapes, dask_cluster, tmp_path, name):
    from apache_beam.runners.dask.dask_runner import DaskRunner
    from remote_workers import WriteLines, read_lines, ship_by_value

    ship_by_value(__name__)
    crosses, rows, crossed, rejected = _expected(shapes[name])
    options = PipelineOptions([f"--dask_client_address={dask_cluster.scheduler_address}", "--dask_partition_size=40"])
    p = beam.Pipeline(runner=DaskRunner(), options=options)
    good, bad = _build(p, crosses, rows)
    # One straight line into one writer: the DaskRunner computes only a pipeline's last step.
    _ = ((good | "tag crossed" >> beam.Map(lambda line: ("crossed", line)),
          bad | "tag rejected" >> beam.Map(lambda r: ("rejected", json.dumps(list(r)))))
         | beam.Flatten() | "write" >> beam.ParDo(WriteLines(tmp_path)))
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        result.client.close()
    written = {"crossed": [], "rejected": []}
    for kind, value in read_lines(tmp_path):
        written[kind].append(value)
    expected = {"crossed": sorted(crossed), "rejected": sorted(json.dumps(list(r)) for r in rejected)}
    # Counted first, so that a lost or duplicated row is reported as such: rows in = crossed + rejected.
    assert {k: len(v) for k, v in written.items()} == {k: len(v) for k, v in expected.items()}
    assert len(written["crossed"]) + len(written["rejected"]) == len(rows)
    assert {k: sorted(v) for k, v in written.items()} == expected
