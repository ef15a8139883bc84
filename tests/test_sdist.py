"""The sdist that ``--setup_file ./setup.py`` ships to Dataflow workers, built as Beam builds it."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from apache_beam.runners.portability.stager import Stager

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sdist_names(tmp_path_factory):
    # Build from a copy: building writes beam_cross.egg-info next to the sources.
    source = tmp_path_factory.mktemp("source") / "repo"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "beam-cross-output"))
    out = tmp_path_factory.mktemp("sdist")
    # Beam's own staging step: `python -m build --no-isolation --sdist`, else `python setup.py sdist`.
    archive = Stager._build_setup_package(str(source / "setup.py"), str(out))
    with tarfile.open(archive) as tar:
        return [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]


def test_sdist_holds_the_package_and_its_sample_data(sdist_names):
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "beam_cross").rglob("*.py")}
    assert "beam_cross/core/cross.py" in package and "beam_cross/job/cli.py" in package
    assert package <= set(sdist_names)
    assert {"beam_cross/data/sample_clicks.jsonl", "beam_cross/data/sample_crosses.yaml",
            "beam_cross/data/beam_yaml_providers.yaml"} <= set(sdist_names)
    assert "setup.py" in sdist_names and "pyproject.toml" in sdist_names


def test_sdist_holds_nothing_from_tests(sdist_names):
    assert [n for n in sdist_names if n.startswith(("tests/", "tests")) or "/tests/" in n or "conftest" in n] == []
    assert [n for n in sdist_names if n.startswith(("benchmarks/", "pipelines/"))] == []
