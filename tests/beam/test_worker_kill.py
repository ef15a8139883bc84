"""A Dask worker SIGKILLed in the middle of a ``CrossFeatures`` run: every row comes out exactly once.

Dask recomputes the work a dead worker held. ``CrossFeatures`` crosses each element on its own, with
no state beyond a bundle, so a recomputed element gives the output it gave before. The pipeline
generates its rows (200,000 dicts, one in 97 rejected), crosses them on a 2-worker
``distributed.LocalCluster``, and writes each bundle's outcomes to a file named by its content
(a recomputed bundle rewrites the same file); the test kills one worker once the first files
appear, then reads every file and checks each row id once, with the bin ``hashed_cross`` gives
(equal to ``tf.sparse.cross_hashed``, see the golden tests) or the reason it was rejected.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import threading
import time
import uuid

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from remote_workers import ship_by_value

from beam_cross import Cross, hashed_cross
from beam_cross.beam.transforms import CrossFeatures

pytestmark = pytest.mark.slow

ship_by_value(__name__)

SEEDS, ROWS_PER_SEED = 200, 1000
CROSS = Cross(["country", "hour"], 1_000_003)
COUNTRIES = [f"country-{i}" for i in range(50)]


def make_rows(seed: int) -> list[dict]:
    rows = []
    for i in range(seed * ROWS_PER_SEED, (seed + 1) * ROWS_PER_SEED):
        hour = (i * 7) % 24 if i % 97 else 0.5  # one row in 97 holds a float: rejected
        rows.append({"id": i, "country": COUNTRIES[i % 50], "hour": hour})
    return rows


class _WriteBundle(beam.DoFn):
    """Writes a bundle's lines to one file named by their content, through a rename: an attempt
    killed midway leaves only a temporary file, and a recomputed bundle rewrites the same file."""

    def __init__(self, directory):
        self._directory = directory

    def start_bundle(self):
        self._lines = []

    def process(self, element):
        self._lines.append(json.dumps(element))

    def finish_bundle(self):
        if not self._lines:
            return
        text = "\n".join(sorted(self._lines)) + "\n"
        name = hashlib.sha256(text.encode()).hexdigest()
        temporary = os.path.join(self._directory, f".{name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, os.path.join(self._directory, f"{name}.jsonl"))


def _kill_a_worker_when_files_appear(client, directory, report):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        written = [n for n in os.listdir(directory) if n.endswith(".jsonl")]
        if written:
            pid = sorted(client.run(os.getpid).values())[0]
            os.kill(pid, signal.SIGKILL)
            report["files_at_kill"] = len(written)
            print("killed", pid, "files", len(written), flush=True)
            return
        time.sleep(0.05)


def test_a_killed_dask_worker_loses_and_duplicates_no_row(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    from apache_beam.runners.dask.dask_runner import DaskRunner

    report: dict = {}
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        options = PipelineOptions([f"--dask_client_address={cluster.scheduler_address}", "--dask_partition_size=10"])
        p = beam.Pipeline(runner=DaskRunner(), options=options)
        rows = p | beam.Create(list(range(SEEDS))) | "generate" >> beam.FlatMap(make_rows)
        crossed, rejected = rows | CrossFeatures([CROSS]).with_exception_handling()
        _ = (
            (crossed | "ids" >> beam.Map(lambda r: ["ok", r["id"], r[CROSS.name]]),
             rejected | "reasons" >> beam.Map(lambda r: ["rejected", r.element["id"], r.reason]))
            | beam.Flatten() | beam.ParDo(_WriteBundle(str(tmp_path)))
        )
        killer = threading.Thread(target=_kill_a_worker_when_files_appear, args=(client, str(tmp_path), report))
        killer.start()
        result = p.run()
        result.wait_until_finish()
        killer.join()
        result.client.close()
    files = list(tmp_path.glob("*.jsonl"))
    assert "files_at_kill" in report, "no worker was killed: the run finished before the first file appeared"
    assert report["files_at_kill"] < len(files), "the worker was killed after the last bundle was written"
    outcomes = collections.defaultdict(list)
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            kind, row_id, value = json.loads(line)
            outcomes[row_id].append((kind, value))
    total = SEEDS * ROWS_PER_SEED
    counts = collections.Counter(len(v) for v in outcomes.values())
    # Counted first, so that a lost or duplicated row is reported as such.
    assert (len(outcomes), counts) == (total, {1: total})
    rows = [row for seed in range(SEEDS) for row in make_rows(seed)]
    good = [row for row in rows if not isinstance(row["hour"], float)]
    bins = hashed_cross([np.array([r["country"] for r in good], object), np.array([r["hour"] for r in good])], CROSS.num_bins)
    expected = {row["id"]: [("ok", int(b))] for row, b in zip(good, bins)}
    expected.update({row["id"]: [("rejected", "float")] for row in rows if isinstance(row["hour"], float)})
    assert dict(outcomes) == expected
