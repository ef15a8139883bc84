"""The command's Dataflow job, checked before launch: translated offline by the real ``DataflowRunner``,
its staged sdist installed with its declared dependencies only, its staged pipeline proto run there.

1. ``beam-cross`` (the console script of the venv ``.ci/gcp-env`` builds, with ``apache-beam[gcp]``)
   runs with ``--runner DataflowRunner --template_location``, a local staging and temp location, and
   ``--dataflow_endpoint http://localhost:9 --no_auth``: Beam translates the pipeline for Dataflow,
   builds and stages the sdist (``--setup_file``, from a copy of the checkout) and writes
   ``template.json`` and ``pipeline.pb``, with no network. The input and output have odd names.
2. The staged files: the template parses, points at the staged ``pipeline.pb`` (its SHA-256 too) and
   packages; ``pipeline.pb`` is a Beam ``Pipeline`` proto holding the job's steps in a Dataflow
   container environment; the sdist holds the package and its data and nothing from ``tests/``.
3. A fresh venv over the worker venv of ``.ci/gcp-env`` (beam_cross's declared dependencies, resolved
   by pip, apache-beam without extras): the staged sdist is pip-installed there (``--no-deps
   --no-index``: nothing but what its metadata declares is at hand), ``pip check`` passes, and every
   distribution the venv sees is the sdist or one of its requirements (transitively).
4. There, isolated from this checkout (``python -I``), the staged proto runs with its environments
   switched to embedded Python (``FnApiRunner``): the ids it writes are ``beam_cross.hashed_cross``'s,
   computed here from the input file, row for row; rows read = crossed + rejected.

The command's rules for a template (local paths only with a local template; no learning stage) are
tested here too, in the fast suite. What only a real Dataflow job shows (GCS, the workers' container,
the service's checks) is listed in docs/dataflow.md. Without ``BEAM_CROSS_GCP_PYTHON`` the test is skipped, except under CI (``CI=true``)::

    BEAM_CROSS_GCP_PYTHON="$(bash .ci/gcp-env)" python -m pytest tests/job/test_dataflow_translation.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from ci_venvs import venv_python

import beam_cross
from beam_cross.core.spec_file import read_crosses

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "beam_cross" / "data" / "sample_clicks.jsonl"
CROSSES = REPO / "beam_cross" / "data" / "sample_crosses.yaml"
slow = pytest.mark.slow  # under a minute once the venvs exist: translation, an sdist install, a run

BUILD_COMMAND = 'BEAM_CROSS_GCP_PYTHON="$(bash .ci/gcp-env)" python -m pytest tests/job/test_dataflow_translation.py'
IGNORE = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                "build", "dist", "beam-cross-output", "tfx-output", "*.so", "*.pyd")

# Run in the fresh venv by its python, isolated: the install's checks, then the staged proto.
IN_VENV = r'''
import importlib.metadata as metadata
import json
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

staging, result_path = sys.argv[1], sys.argv[2]
result = {}

# What the venv sees: the sdist and the closure of what it declares, and the sdist's build tools.
seen = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}
needed, todo = set(), ["beam-cross"]
while todo:
    name = canonicalize_name(todo.pop())
    if name in needed:
        continue
    needed.add(name)
    for text in metadata.distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(requirement.name)
result["declared"] = sorted(metadata.distribution("beam-cross").requires or [])
result["undeclared"] = sorted(seen - needed - {"pip", "setuptools", "wheel"})
result["missing"] = sorted(needed - seen)
check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
result["pip_check"] = [check.returncode, check.stdout + check.stderr]

import beam_cross
from beam_cross.core import _fingerprint
result["beam_cross"] = beam_cross.__file__
result["kernel"] = _fingerprint.KERNEL
try:
    import google.cloud.storage  # noqa: F401
    result["gcs_client"] = True
except ImportError:
    result["gcs_client"] = False

# The staged proto, with its environments switched from Dataflow's container to this process.
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

proto = beam_runner_api_pb2.Pipeline()
with open(f"{staging}/pipeline.pb", "rb") as handle:
    proto.ParseFromString(handle.read())
result["environments"] = sorted(e.urn for e in proto.components.environments.values())
for environment in proto.components.environments.values():
    environment.Clear()
    environment.urn = python_urns.EMBEDDED_PYTHON
run = FnApiRunner().run_via_runner_api(proto, PipelineOptions([]))
run.wait_until_finish()
result["state"] = str(run.state)
result["modules"] = sorted({m.__file__ for n, m in sys.modules.items()
                            if n.split(".")[0] == "beam_cross" and getattr(m, "__file__", None)})
result["prefix"] = sys.prefix
with open(result_path, "w") as handle:
    json.dump(result, handle)
'''


def _gcp_python() -> str:
    return venv_python("BEAM_CROSS_GCP_PYTHON", "the Dataflow translation needs its own venvs", BUILD_COMMAND,
                       lambda python: (Path(python).parents[1] / "worker-python").exists(),
                       "the python of .ci/gcp-env's launcher venv")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BEAM_CROSS_KERNEL", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{args[:3]}... failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def translated(tmp_path_factory):
    """Runs the command with the DataflowRunner offline; returns where everything is."""
    python = _gcp_python()
    work = tmp_path_factory.mktemp("dataflow")
    checkout = work / "checkout"  # the sdist is built in --setup_file's folder: not in this checkout
    shutil.copytree(REPO, checkout, ignore=IGNORE)
    inputs = work / "in put, día 1 [a]"
    inputs.mkdir()
    source = inputs / "clicks (copy) ü.jsonl"
    shutil.copyfile(SAMPLE, source)
    paths = {"output": work / "crossed out ü", "template": work / "template" / "template.json",
             "staging": work / "staging", "temp": work / "temp"}
    command = [
        str(Path(python).parent / "beam-cross"), "--input", str(source), "--config", str(CROSSES),
        "--output", str(paths["output"]),
        "--runner", "DataflowRunner", "--project", "offline-project", "--region", "us-central1",
        "--template_location", str(paths["template"]), "--staging_location", str(paths["staging"]),
        "--temp_location", str(paths["temp"]), "--dataflow_endpoint", "http://localhost:9", "--no_auth",
        "--setup_file", str(checkout / "setup.py"),
    ]
    # PYTHONPATH: this checkout's beam_cross launches, as the staged sdist (built from its copy) runs.
    done = _run(command, cwd=work, env=_env(PYTHONPATH=str(REPO)), timeout=600)
    return {"python": python, "work": work, "checkout": checkout, "input": source, "stdout": done.stdout,
            "stderr": done.stderr, **paths}


@pytest.fixture(scope="module")
def staged_run(translated, tmp_path_factory):
    """Installs the staged sdist into a fresh venv over the worker venv; runs the staged proto there."""
    worker = (Path(translated["python"]).parents[1] / "worker-python").read_text().strip()
    venv = tmp_path_factory.mktemp("clean") / "venv"
    _run([worker, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    python = str(venv / "bin" / "python")
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    worker_site = _run([worker, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "worker_venv.pth").write_text(worker_site + "\n")  # its packages, not its .pth files
    sdist = translated["staging"] / "workflow.tar.gz"
    _run([python, "-I", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(sdist)],
         cwd=venv, env=_env(), timeout=600)
    empty = venv.parent / "run"
    empty.mkdir()
    result_path = venv.parent / "result.json"
    _run([python, "-I", "-c", IN_VENV, str(translated["staging"]), str(result_path)], cwd=empty, env=_env(),
         timeout=600)
    return json.loads(result_path.read_text())


@slow
def test_the_command_says_it_wrote_a_template_and_commits_nothing(translated):
    out = translated["stdout"]
    assert out.startswith(f"beam-cross: wrote the Dataflow template {translated['template']} in ")
    assert "nothing ran and nothing was committed" in out
    # the note on local paths: printed once, on stderr as the command starts (not again in the summary)
    assert translated["stderr"].count("which Dataflow workers cannot see") == 1
    assert "which Dataflow workers cannot see" not in out
    assert "Traceback" not in translated["stderr"]
    output = translated["output"]
    assert not (output / "_MANIFEST.json").exists()
    assert sorted(p.name for p in output.iterdir()) == []  # no lock left, no temporary directory yet


@slow
def test_the_template_points_at_the_staged_proto_and_packages(translated):
    staging = translated["staging"]
    template = json.loads(translated["template"].read_text())
    assert template["type"] == "JOB_TYPE_BATCH"
    options = template["environment"]["sdkPipelineOptions"]["options"]
    assert options["pipelineUrl"] == str(staging / "pipeline.pb")
    assert options["pipelineProtoHash"] == hashlib.sha256((staging / "pipeline.pb").read_bytes()).hexdigest()
    assert "use_runner_v2" in template["environment"]["experiments"]
    (pool,) = template["environment"]["workerPools"]
    packages = {p["name"]: p["location"] for p in pool["packages"]}
    assert packages["workflow.tar.gz"] == str(staging / "workflow.tar.gz")
    assert all(Path(location).is_file() for location in packages.values())
    images = [i["containerImage"] for i in pool["sdkHarnessContainerImages"]]
    assert images and all(":2.78.0" in i and "beam_python3" in i for i in images), images


@slow
def test_the_staged_proto_holds_the_job_in_a_dataflow_container(translated):
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    proto = beam_runner_api_pb2.Pipeline()
    proto.ParseFromString((translated["staging"] / "pipeline.pb").read_bytes())
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert {"Read/Read", "CrossAndWrite", "Results/GroupByKey", "PlaceTasks", "Place", "WriteResults"} <= names, names
    assert {e.urn for e in proto.components.environments.values()} == {common_urns.environments.DOCKER.urn}
    assert proto.root_transform_ids


@slow
def test_the_staged_sdist_holds_the_package_and_its_data_and_nothing_from_tests(translated):
    assert (translated["checkout"] / "tests" / "job" / Path(__file__).name).exists()  # there to be left out
    with tarfile.open(translated["staging"] / "workflow.tar.gz") as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "beam_cross").rglob("*.py")}
    assert package <= set(names)
    assert {"beam_cross/data/sample_clicks.jsonl", "beam_cross/data/sample_crosses.yaml", "beam_cross/core/_kernel.c",
            "setup.py", "pyproject.toml"} <= set(names)
    assert [n for n in names if n.startswith("tests") or "/tests/" in n or "conftest" in n] == []
    assert [n for n in names if n.endswith((".so", ".pyd", ".pyc"))] == []


@slow
def test_the_sdist_installs_with_its_declared_dependencies_only(staged_run):
    assert staged_run["pip_check"][0] == 0, staged_run["pip_check"]
    assert staged_run["missing"] == [] and staged_run["undeclared"] == [], staged_run
    assert any(r.startswith("apache-beam") for r in staged_run["declared"])
    assert staged_run["gcs_client"] is False  # apache-beam without its [gcp] extra
    assert staged_run["kernel"] == "c"  # compiled by the install, as on a worker with a compiler
    # Every beam_cross module of the run came from the installed sdist, none from this checkout.
    assert staged_run["modules"] and all(m.startswith(staged_run["prefix"]) for m in staged_run["modules"])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@slow
def test_the_staged_proto_crosses_the_input_as_hashed_cross_does(staged_run, translated):
    assert staged_run["state"] == "DONE"
    assert staged_run["environments"] == ["beam:env:docker:v1"]
    (temp,) = translated["output"].glob(".beam-cross-tmp-*")  # the run's files, not committed
    results = json.loads((temp / "_results.json").read_text())
    crossed = [row for path in sorted((temp / "crossed").glob("*.jsonl")) for row in _rows(path)]
    rejected = [record for path in sorted((temp / "rejected").glob("*.jsonl")) for record in _rows(path)]
    rows = _rows(translated["input"])
    assert results["rows_read"] == len(rows) == 2500
    assert results["rows_read"] == len(crossed) + len(rejected)
    assert {f["kind"]: 0 for f in results["files"]}.keys() == {"crossed", "rejected"}
    assert sum(f["rows"] for f in results["files"] if f["kind"] == "crossed") == len(crossed)
    assert [c["error"] for c in results["coverage"]] == [None]

    # Which rows were kept: by click_id; every input row is crossed or rejected, once.
    rejected_ids = [(r["row"] if isinstance(r["row"], dict) else json.loads(r["row"]))["click_id"] for r in rejected]
    by_id = {row["click_id"]: row for row in crossed}
    assert len(by_id) == len(crossed) and not set(by_id) & set(rejected_ids)
    assert sorted([*by_id, *rejected_ids]) == sorted(r["click_id"] for r in rows)
    assert {r["reason"] for r in rejected} == {"null", "type"}
    assert all(r["source"].startswith(f"{translated['input']}:") for r in rejected)  # the odd name, whole

    # The ids, from the input file and the core, row for row in the input's order.
    kept = [row for row in rows if row["click_id"] in by_id]
    crosses = list(read_crosses(str(CROSSES)))
    for cross in crosses:
        ids = beam_cross.hashed_cross({f: [row[f] for row in kept] for f in cross.features}, cross.num_bins)
        expected = ids.to_pylist() if hasattr(ids, "to_pylist") else ids.tolist()
        assert [by_id[row["click_id"]][cross.name] for row in kept] == expected, cross.name
        for row in kept:  # the input columns went through as they came
            assert {f: by_id[row["click_id"]][f] for f in cross.features} == {f: row[f] for f in cross.features}
    assert {len(by_id[r["click_id"]]["interests_X_country"]) for r in kept} >= {1, 2, 3}


def _csv(path: Path) -> Path:
    path.write_text("country,hour,age\nus,5,31.5\nfr,13,40.0\n")
    return path


def test_local_paths_are_refused_with_a_template_on_gcs(tmp_path, capsys):
    from beam_cross.job.cli import main

    assert main(["--input", str(_csv(tmp_path / "in.csv")), "--cross", "country,hour:10", "--output", str(tmp_path / "o"),
                 "--runner", "DataflowRunner", "--project", "p", "--region", "us-central1",
                 "--template_location", "gs://bucket/templates/t.json"]) == 2
    assert "DataflowRunner workers cannot see local paths" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_template_of_a_spec_still_to_learn_is_refused(tmp_path, capsys):
    from beam_cross import Bucketize, Cross
    from beam_cross.core.spec_file import write_crosses
    from beam_cross.job.cli import main

    config = tmp_path / "todo.json"
    write_crosses([Cross([Bucketize("age", num_buckets=4), "country"], 100)], config)
    assert main(["--input", str(_csv(tmp_path / "in.csv")), "--config", str(config), "--output", str(tmp_path / "o"),
                 "--runner", "DataflowRunner", "--project", "p", "--region", "us-central1",
                 "--template_location", str(tmp_path / "t" / "template.json")]) == 2
    err = capsys.readouterr().err
    assert "--template_location cannot hold a run that learns its spec" in err and "learned/" in err
    assert not (tmp_path / "t").exists()
