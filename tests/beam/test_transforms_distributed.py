"""``CrossFeatures`` on engines that pickle it and run it in other processes.

- the DirectRunner in multi-process mode (``--direct_num_workers=2 --direct_running_mode=multi_processing``);
- Beam's DaskRunner on a ``distributed.LocalCluster`` of 2 worker processes. That runner computes only
  the last step of a pipeline, runs no ``assert_that`` and has no metrics, so the pipeline ends in one
  writer DoFn and the test reads back what the workers wrote and compares it, row for row, with TF.

Expected bins come from ``tf.sparse.cross_hashed`` (see ``test_transforms.tf_bins``).
"""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from remote_workers import WriteLines, read_lines, ship_by_value
from test_transforms import BAD_ROWS, CROSSES, ROW_SCHEMA, expected_dicts, make_rows

from beam_cross.beam.transforms import CrossFeatures

pytestmark = pytest.mark.slow

ship_by_value(__name__)

GOOD = make_rows(300)
BAD = [row for row, _, _ in BAD_ROWS]
ROWS = [beam.Row(country=r["country"], hour=r["hour"]) for r in GOOD[:40]]
BATCHES = [pa.RecordBatch.from_pylist(GOOD[i : i + 60], schema=ROW_SCHEMA) for i in range(0, 300, 60)]
ROW_CROSSES = CROSSES[:1]


def _canonical(record: dict) -> str:
    return json.dumps({k: v.hex() if isinstance(v, bytes) else v for k, v in sorted(record.items())}, ensure_ascii=False)


def _expected():
    return {
        "dict": sorted(_canonical(r) for r in expected_dicts(GOOD, CROSSES)),
        "row": sorted(_canonical(r) for r in expected_dicts([r._asdict() for r in ROWS], ROW_CROSSES)),
        "arrow": sorted(_canonical(r) for r in expected_dicts(GOOD, CROSSES)),
        "rejected": sorted(reason for _, reason, _ in BAD_ROWS),
    }


def _build(p, shuffle_inputs):
    """All three element kinds plus bad rows, as ``(kind, canonical json)`` pairs on one PCollection."""
    dicts = p | "dicts" >> beam.Create(GOOD + BAD)
    rows = p | "rows" >> beam.Create(ROWS)
    batches = p | "batches" >> beam.Create(BATCHES)
    if shuffle_inputs:  # spread the elements over the workers
        dicts, rows, batches = (
            pc | f"shuffle {name}" >> beam.Reshuffle() for name, pc in (("d", dicts), ("r", rows), ("b", batches))
        )
    crossed, rejected = dicts | "dict crosses" >> CrossFeatures(CROSSES).with_exception_handling()
    crossed_rows = rows | "row crosses" >> CrossFeatures(ROW_CROSSES)
    crossed_batches = batches | "arrow crosses" >> CrossFeatures(CROSSES)
    return (
        crossed | "tag dicts" >> beam.Map(lambda r: ("dict", _canonical(r))),
        crossed_rows | "tag rows" >> beam.Map(lambda r: ("row", _canonical(r._asdict()))),
        crossed_batches | "tag arrow" >> beam.FlatMap(lambda b: [("arrow", _canonical(r)) for r in b.to_pylist()]),
        rejected | "tag rejected" >> beam.Map(lambda r: ("rejected", r.reason)),
    ) | "all outputs" >> beam.Flatten()


def test_multi_process_direct_runner():
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    expected = _expected()
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        outputs = _build(p, shuffle_inputs=True)
        assert_that(outputs, equal_to([(kind, value) for kind, values in expected.items() for value in values]))


def test_dask_runner_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=50"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        _ = _build(p, shuffle_inputs=False) | "write" >> beam.ParDo(WriteLines(tmp_path))
        result = p.run()
        result.wait_until_finish()
        result.client.close()  # the runner's own client; closed before its cluster goes away
    written: dict[str, list] = {"dict": [], "row": [], "arrow": [], "rejected": []}
    for kind, value in read_lines(tmp_path):
        written[kind].append(value)
    expected = _expected()
    # Counted first, so that a lost or duplicated row is reported as such.
    assert {k: len(v) for k, v in written.items()} == {k: len(v) for k, v in expected.items()}
    assert {k: sorted(v) for k, v in written.items()} == expected


def test_dask_runner_fails_a_bundle_over_the_threshold(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    rows = GOOD[:20] + [{"country": "fr", "hour": 1.5}] * 20  # half the rows rejected
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=100"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        crossed, _ = p | beam.Create(rows) | CrossFeatures(CROSSES[:1]).with_exception_handling(threshold=0.25)
        _ = crossed | "write" >> beam.ParDo(WriteLines(tmp_path))
        result = p.run()
        with pytest.raises(Exception, match=r"rejected 20 of the 40 rows of a bundle"):
            result.wait_until_finish()
        result.client.close()
