"""The runnable pipelines: pipelines/cross_features.py on the FnApiRunner, the multi-process
DirectRunner and Beam's DaskRunner against a local Dask cluster (the same crossed ids on all three,
and a Dask run longer than 10 s), --num_shards, pipelines/tft_transform.py, and the sample generator."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from beam_cross import hashed_cross
from beam_cross.job.cli import main
from beam_cross.job.flags import sample_path
from beam_cross.job.plan import load_crosses

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"pipelines_{name}", ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(output):
    """Crossed rows (by click_id), rejected records (sorted) and the report of one run."""
    crossed = {}
    for path in glob.glob(f"{output}/crossed/part-*"):
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            crossed[row["click_id"]] = row
    rejected = sorted(
        (json.loads(line) for path in glob.glob(f"{output}/rejected/part-*") for line in Path(path).read_text().splitlines()),
        key=lambda r: r["source"],
    )
    report = json.loads(Path(output, "report", "collisions.json").read_text())
    return crossed, rejected, report


def _check_ids(crossed):
    crosses = load_crosses(sample_path("sample_crosses.yaml"))
    for row in list(crossed.values())[:300]:
        for cross in crosses:
            ids = hashed_cross({f: [row[f]] for f in cross.features}, cross.num_bins)
            expected = ids.to_pylist()[0] if hasattr(ids, "to_pylist") else int(ids[0])
            assert row[cross.name] == expected, (cross.name, row)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The bundled sample through pipelines/cross_features.py on FnApiRunner."""
    output = tmp_path_factory.mktemp("fnapi") / "out"
    summary = _load("cross_features").run(["--output", str(output), "--no_chart", "--runner", "FnApiRunner"])
    assert summary.rows_read == summary.rows_crossed + summary.rows_rejected == 2500
    return _outputs(output)


def test_reference_run_crosses_like_hashed_cross(reference_run):
    crossed, rejected, report = reference_run
    _check_ids(crossed)
    assert len(crossed) + len(rejected) == 2500
    assert [r["rows"] for r in report["crosses"]] == [len(crossed)] * 4


def test_fixed_number_of_shards_gives_the_same_outputs(reference_run, tmp_path):
    assert main(["--output", str(tmp_path), "--no_chart", "--num_shards", "4"]) == 0
    assert sorted(os.listdir(tmp_path / "crossed")) == [f"part-0000{i}-of-00004.jsonl" for i in range(4)]
    assert _outputs(tmp_path) == reference_run


@pytest.mark.slow
def test_multi_process_direct_runner(reference_run, tmp_path):
    assert main(["--output", str(tmp_path), "--no_chart", "--runner", "DirectRunner", "--direct_num_workers", "2",
                 "--direct_running_mode", "multi_processing"]) == 0
    assert _outputs(tmp_path) == reference_run


DASK_SCRIPT = """
import sys
import time
from distributed import Client, LocalCluster
from beam_cross.job.cli import main

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \\
            Client(cluster) as client:
        # Keep both workers busy for a while first: the run then lasts longer than the 10 s between
        # progress checks (a wait_until_finish(duration=...) on DaskRunner would raise).
        busy = [client.submit(time.sleep, float(sys.argv[2]), pure=False, key=f"busy-{i}") for i in range(2)]
        code = main(["--output", sys.argv[1], "--no_chart", "--runner", "DaskRunner",
                     "--dask_client_address", cluster.scheduler_address])
        client.gather(busy)
    sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.parametrize("busy_seconds", [0, 12])
def test_dask_runner_on_a_local_cluster(reference_run, tmp_path, busy_seconds):
    # A separate process: the Dask cluster's threads and Beam's Dask runner stay out of pytest's.
    script = tmp_path / "run_on_dask.py"
    script.write_text(DASK_SCRIPT)
    output = tmp_path / "out"
    done = subprocess.run([sys.executable, str(script), str(output), str(busy_seconds)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "all 2,500 rows accounted for" in done.stdout
    seconds = float(done.stdout.split("beam-cross: done in ")[1].split(" s")[0])
    assert seconds > busy_seconds
    assert _outputs(output) == reference_run


def test_tft_transform_serves_what_it_wrote(tmp_path):
    rows = Path(sample_path()).read_text().splitlines()[:400]
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
    output = tmp_path / "out"
    # A separate process: tensorflow_transform switches Keras to tf_keras for the whole process. Its
    # environment is a user's (no TF_CPP_MIN_LOG_LEVEL): the job itself keeps its output to its results.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "tft_transform.py"), "--input", str(tmp_path / "in.jsonl"),
         "--cross", "country,hour:1000", "--cross", "interests,country:500", "--output", str(output)],
        capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "reproduces the written ids of country_X_hour, interests_X_country" in done.stdout
    # Two result lines, and nothing on stderr: no TensorFlow start-up lines, no Beam/tf.Transform INFO
    # (BatchElements statistics, schema inference), no performance hints.
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["tft_transform"] * 2, done.stdout
    assert done.stderr == "", done.stderr[-4000:]
    import tensorflow as tf

    examples = [tf.train.Example.FromString(r) for r in
                tf.data.TFRecordDataset(glob.glob(f"{output}/transformed_examples-*")).as_numpy_iterator()]
    rejected = [json.loads(line) for p in glob.glob(f"{output}/rejected/part-*") for line in Path(p).read_text().splitlines()]
    assert len(examples) + len(rejected) == 400 and rejected
    for example in examples:
        features = example.features.feature
        country = features["country"].bytes_list.value[0].decode()
        hour = features["hour"].int64_list.value[0]
        interests = [v.decode() for v in features["interests"].bytes_list.value]
        assert features["country_X_hour"].int64_list.value[0] == int(hashed_cross([[country], [hour]], 1000)[0])
        assert list(features["interests_X_country"].int64_list.value) == \
            hashed_cross([[interests], [country]], 500).to_pylist()[0]


def test_tft_transform_crosses_a_float_column_through_bucketize(tmp_path):
    """A CSV float column crossed through Bucketize: the written ids are Cross.apply's over the CSV's own
    float64 values (tf.Example keeps float32, the cast Discretization makes), edges on the boundaries."""
    from collections import Counter

    from beam_cross import Bucketize, Cross

    ages = [17.999999, 18.0, 18.000001, 24.99, 25.0, 35.0, -0.0, 0.1, 90.5, 1e30] * 5
    countries = ["fr", "us", "de", "jp", "br"] * 10
    (tmp_path / "in.csv").write_text("age,country\n" + "".join(f"{a!r},{c}\n" for a, c in zip(ages, countries)))
    output = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "tft_transform.py"), "--input", str(tmp_path / "in.csv"),
         "--cross", "bucketize(age:18,25,35),country:1000", "--output", str(output)],
        capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "read 50 rows: 50 transformed, 0 rejected" in done.stdout
    import tensorflow as tf

    written = Counter()
    for record in tf.data.TFRecordDataset(glob.glob(f"{output}/transformed_examples-*")).as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        written[features["country"].bytes_list.value[0].decode(), features["age_X_country"].int64_list.value[0]] += 1
    cross = Cross([Bucketize("age", [18, 25, 35]), "country"], 1000)
    expected = Counter(zip(countries, cross.apply({"age": ages, "country": countries}).tolist()))
    assert written == expected


def test_bundled_sample_is_what_its_generator_writes():
    generator = _load("make_sample_data")
    lines = [json.dumps(row, separators=(",", ":")) for row in generator.make_rows()]
    assert Path(sample_path()).read_text().splitlines() == lines
    assert Path(sample_path()).stat().st_size < 500_000
