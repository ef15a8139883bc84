"""The sdist that ``--setup_file ./setup.py`` ships to Dataflow workers, built as Beam builds it.

``tests/test_kernel_build.py`` (slow) pip-installs this sdist into fresh venvs, with and without a compiler.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from apache_beam.runners.portability.stager import Stager
from setuptools.command.egg_info import FileList

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


def test_sdist_holds_the_kernel_source_and_nothing_built(sdist_names):
    # The checkout may hold an in-place _kernel*.so (editable install); the workers compile their own.
    assert "beam_cross/core/_kernel.c" in sdist_names
    assert [n for n in sdist_names if n.endswith((".so", ".pyd", ".o", ".pyc"))] == []


def test_sdist_holds_nothing_from_tests(sdist_names):
    assert [n for n in sdist_names if n.startswith(("tests/", "tests")) or "/tests/" in n or "conftest" in n] == []
    assert [n for n in sdist_names if n.startswith(("benchmarks/", "pipelines/"))] == []


def test_manifest_prunes_tests_whatever_the_setuptools_defaults_add():
    # setuptools 65 adds no test file by default, 84 adds tests/test*.py (issue 20): the fixture's sdist,
    # built with this environment's setuptools, cannot show the prune at work. Apply MANIFEST.in's
    # lines, as sdist does after its defaults, to a file list holding every file of tests/.
    files = FileList()
    tests = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*") if p.is_file()]
    package = [p.relative_to(ROOT).as_posix() for p in (ROOT / "beam_cross").rglob("*.py")]
    assert "tests/test_sdist.py" in tests
    files.files = tests + package + ["setup.py", "pyproject.toml", "beam_cross/core/_kernel.c"]
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            files.process_template_line(line)
    assert sorted(files.files) == sorted(package + ["setup.py", "pyproject.toml", "beam_cross/core/_kernel.c"])


@pytest.mark.slow
def test_an_sdist_built_with_the_newest_setuptools_holds_nothing_from_tests(tmp_path):
    # Not this environment's setuptools: a venv of its own with the newest from PyPI, as an isolated build
    # (pip, `python -m build`) gets it; newer setuptools add tests/test*.py to an sdist by default.
    import subprocess
    import venv

    source = tmp_path / "repo"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "beam-cross-output"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "setuptools", "wheel"], check=True)
    version = subprocess.run([python, "-c", "import setuptools; print(setuptools.__version__)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    subprocess.run([python, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")], cwd=source, check=True,
                   capture_output=True)
    (archive,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    assert "beam_cross/core/cross.py" in names, (version, names[:20])
    assert [n for n in names if n.startswith("tests") or "/tests/" in n or "conftest" in n] == [], version
