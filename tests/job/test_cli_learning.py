"""The command learns first: a ``--config`` with unlearned transforms runs a learning stage, then crosses
with the learned spec, and commits that spec under ``learned/`` (read back by ``read_crosses``).

The expected spec is the exact one (``learn_exactly``: vocabularies as Keras ``adapt`` orders them,
tested against Keras in ``tests/core/test_learning.py``; the inputs are small enough for the
quantile sketch to keep every value), and the expected ids are ``Cross.apply`` with it. Inputs are
written and outputs read back with pyarrow and the csv module."""

from __future__ import annotations

import csv
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_cross import Bucketize, Cross, Lookup
from beam_cross.core.learning import learn_exactly
from beam_cross.core.spec_file import read_crosses, write_crosses
from beam_cross.job.cli import main
from beam_cross.job.run import run

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(9)
N = 3000
AGE = np.round(RNG.lognormal(3, 1, N), 2)
WORD = [f"w{z}" for z in RNG.zipf(1.3, N)]
HOUR = RNG.integers(0, 24, N)
CROSSES = [Cross([Bucketize("age", num_buckets=8), Lookup("word", max_tokens=150)], 1000),
           Cross([Lookup("word", style="feature_column", max_tokens=5, num_oov_indices=1), "hour"], 50, name="wh")]


def _input(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"row_id": np.arange(N), "age": AGE, "word": WORD, "hour": HOUR}), path, row_group_size=500)
    return str(path)


def _crossed(output) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(f"{output}/crossed/*"))]).sort_by("row_id")


def test_the_command_learns_then_crosses_and_commits_the_learned_spec(tmp_path):
    config = tmp_path / "todo.json"
    write_crosses(CROSSES, config)
    output = tmp_path / "out"
    summary = run(["--input", _input(tmp_path), "--config", str(config), "--output", str(output), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (N, N, 0)
    exact = learn_exactly(CROSSES, {"age": AGE, "word": WORD, "hour": HOUR})
    spec = read_crosses(output / "learned" / "crosses.json")
    assert spec == exact
    assert (output / "learned" / "vocabulary_word.jsonl").exists()  # 149 tokens: a file of its own
    crossed = _crossed(output)
    columns = {"age": AGE, "word": np.array(WORD, object), "hour": HOUR}
    for cross in exact:
        assert crossed.column(cross.name).to_pylist() == cross.apply(columns).tolist()
    manifest = json.loads((output / "_MANIFEST.json").read_text())
    assert sorted(f["path"] for f in manifest["files"]["learned"]) == ["learned/crosses.json",
                                                                      "learned/vocabulary_word.jsonl"]
    assert [Cross.from_dict(c) for c in manifest["crosses"]] == list(exact)
    # the learned spec crosses as it is: a second run with it gives the same ids
    again = tmp_path / "again"
    run(["--input", _input(tmp_path), "--config", str(output / "learned" / "crosses.json"), "--output", str(again),
         "--no_chart"])
    assert _crossed(again).column("wh").to_pylist() == crossed.column("wh").to_pylist()
    assert not (again / "learned").exists()


def test_rows_the_crossing_rejects_are_not_learned_from(tmp_path):
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["age", "word"])
        writer.writerows([[1.5, "a"], ["old", "b"], [2.5, "a"], [3.5, ""], [4.5, "c"], ["", "a"]])
    crosses = [Cross([Bucketize("age", num_buckets=2), Lookup("word", style="feature_column")], 100)]
    write_crosses(crosses, tmp_path / "todo.yaml")
    output = tmp_path / "out"
    summary = run(["--input", str(path), "--config", str(tmp_path / "todo.yaml"), "--output", str(output),
                   "--no_chart", "--schema", "age:float,word:string", "--max_rejected_share", "1"])
    # "old" and "" are rejected by the reader, "" by the lookup (feature columns drop it): the rest is learned
    spec = read_crosses(output / "learned" / "crosses.json")
    assert spec == learn_exactly(crosses, {"age": [1.5, 2.5, 3.5, 4.5], "word": ["a", "a", "", "c"]})
    assert spec[0].inputs[1].vocabulary == ("a", "c") and spec[0].inputs[0].boundaries == (2.5,)
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (6, 3, 3)


def test_a_learned_spec_next_to_foreign_files_is_refused(tmp_path, capsys):
    config = tmp_path / "todo.json"
    write_crosses(CROSSES, config)
    output = tmp_path / "out"
    (output / "learned").mkdir(parents=True)
    (output / "learned" / "crosses.json").write_text("[]")  # not written by the command
    code = main(["--input", _input(tmp_path), "--config", str(config), "--output", str(output), "--no_chart"])
    assert code != 0
    assert "never overwrites or deletes them" in capsys.readouterr().err
    assert (output / "learned" / "crosses.json").read_text() == "[]"


def test_an_unlearnable_spec_fails_before_any_output(tmp_path, capsys):
    config = tmp_path / "todo.json"
    write_crosses([Cross([Lookup("age", max_tokens=4), "hour"], 10)], config)
    code = main(["--input", _input(tmp_path), "--config", str(config), "--output", str(tmp_path / "out"), "--no_chart"])
    assert code != 0
    assert "`Lookup` of column `age` takes strings or ints, but the column holds floats" in capsys.readouterr().err
    assert not (tmp_path / "out" / "_MANIFEST.json").exists()


def test_a_cut_short_input_stops_the_learning_stage_naming_the_file(tmp_path, capsys):
    # Learned from part of the input, the spec would not be the input's: the stage stops on the read error.
    import gzip

    text = "age,word\n" + "".join(f"{a},{w}\n" for a, w in zip(AGE, WORD))
    data = gzip.compress(text.encode())
    path = tmp_path / "rows [cut].csv.gz"
    path.write_bytes(data[: len(data) * 9 // 10])
    config = tmp_path / "todo.json"
    write_crosses([Cross([Bucketize("age", num_buckets=4), Lookup("word", max_tokens=20)], 100)], config)
    code = main(["--input", str(path), "--config", str(config), "--output", str(tmp_path / "out"), "--no_chart",
                 "--schema", "age:float,word:string"])
    err = capsys.readouterr().err
    assert code != 0
    assert f"The input was not read exactly once: {path}: the gzip stream ends" in err, err
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "_MANIFEST.json").exists()


LEARN_ON_DASK = """
import sys
from distributed import Client, LocalCluster
from beam_cross.job.cli import main

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \\
            Client(cluster):
        code = main(["--input", sys.argv[1], "--config", sys.argv[2], "--output", sys.argv[3], "--no_chart",
                     "--range_bytes", "20000", "--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address])
    sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["DaskRunner", "multi_processing"])
def test_the_learning_stage_on_distributed_runners(tmp_path, runner):
    """The learning stage and the crossing stage on the DaskRunner (a local cluster, in a child process)
    and on the multi-process DirectRunner, over several byte ranges: the exact learned spec, and each
    row's ids those of ``Cross.apply`` with it."""
    if runner == "DaskRunner":
        pytest.importorskip("distributed", reason="the DaskRunner needs dask.distributed (extra `dask`)")
    config = tmp_path / "todo.json"
    write_crosses(CROSSES, config)
    output = tmp_path / "out"
    source = _input(tmp_path)
    if runner == "DaskRunner":
        script = tmp_path / "learn_on_dask.py"
        script.write_text(LEARN_ON_DASK)
        done = subprocess.run([sys.executable, str(script), source, str(config), str(output)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        assert f"all {N:,} rows accounted for" in done.stdout
    else:
        assert main(["--input", source, "--config", str(config), "--output", str(output), "--no_chart",
                     "--range_bytes", "20000", "--runner", "DirectRunner", "--direct_num_workers", "2",
                     "--direct_running_mode", "multi_processing"]) == 0
    exact = learn_exactly(CROSSES, {"age": AGE, "word": WORD, "hour": HOUR})
    assert read_crosses(output / "learned" / "crosses.json") == exact
    crossed = _crossed(output)
    assert crossed.column("row_id").to_pylist() == list(range(N))
    columns = {"age": AGE, "word": np.array(WORD, object), "hour": HOUR}
    for cross in exact:
        assert crossed.column(cross.name).to_pylist() == cross.apply(columns).tolist()
