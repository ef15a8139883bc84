"""The install a Dataflow worker does: the sdist ``--setup_file ./setup.py`` stages, pip-installed offline.

The sdist is built as Beam stages it (``Stager._build_setup_package``, from a copy of the checkout),
then installed with ``pip install --no-deps --no-build-isolation --no-index`` into a fresh venv, once
with the compiler (the kernel must be built: ``KERNEL == "c"``) and once with ``CC=false`` (the
optional extension must fail, the install must not: ``KERNEL == "numpy"``). Each venv's python, run
isolated (``-I``) from an empty directory, crosses the same inputs as this process; the ids must equal
this process's and a pure-Python model's (pyfarmhash's ``fingerprint64`` and ``FingerprintCat64``).

The venvs have no system site-packages: a ``.pth`` file in each lists this interpreter's
site-packages directories, so numpy, pyarrow, pyfarmhash, pip, setuptools and wheel come from here
and nothing is downloaded. A ``.pth`` line only adds its directory to ``sys.path``; the ``.pth`` files
*in* that directory are not run, so the checkout's editable-install finder (which would serve
``beam_cross``, and its in-place ``_kernel*.so``, from the checkout) is not installed in the venv. The
tests assert that every ``beam_cross`` module the venv imports lies in the venv.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import farmhash
import pytest
from apache_beam.runners.portability.stager import Stager

import beam_cross.core

# CC=false and the .so suffix are POSIX; setup.py passes no -O3 on Windows.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX compiler toolchain")]

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                "build", "dist", "beam-cross-output", "tfx-output", "*.so", "*.pyd")
# setuptools' message when an ``optional=True`` extension does not build (setuptools 65 to 84).
FAILED = 'building extension "beam_cross.core._kernel" failed'

# The inputs, built the same way here and in the venv: the kernel's three input paths (Python
# objects, fixed-width NumPy strings, Arrow buffers with int32 and int64 offsets), every farmhash
# length class (0-16, 17-32, 33-64, over 64 bytes), NUL and non-ASCII characters, int64 edges, dense
# and multivalent columns, default, positive and negative hash keys, num_bins 0 (the whole hash).
CASES = r'''
import random

import numpy as np
import pyarrow as pa

from beam_cross import hashed_cross


def _strings(rng, n):
    alphabet = list("abcXYZ09 _-") + ["\u00e9", "\u00df", "\u65e5", "\U0001F600", "\x00"]
    lengths = [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]
    lengths += [rng.randrange(200) for _ in range(n - len(lengths))]
    # No trailing NUL: NumPy's fixed-width strings drop it.
    return ["".join(rng.choice(alphabet) for _ in range(k)).rstrip("\x00") for k in lengths]


def cases():
    """name -> (features, per-row Python values of each feature, num_bins, hash_key)."""
    rng = random.Random(20)
    n = 120
    s = _strings(rng, n)
    b = [v.encode() for v in reversed(s)]
    i = [0, 1, -1, 2**63 - 1, -(2**63), 101, 102] + [rng.randrange(-(2**63), 2**63) for _ in range(n - 7)]
    tags = [[rng.choice(s) for _ in range(rng.randrange(4))] for _ in range(n)]
    return {
        "objects": ([s, i], [s, i], 1000, None),
        "numpy": ([np.array(s), np.array(b), np.array(i, np.int64)], [s, b, i], 2**31 - 1, 42),
        "arrow": ([pa.array(s), pa.array(b, pa.large_binary()), pa.array(i, pa.int64())], [s, b, i], 0, -7),
        "multivalent": ([tags, i], [tags, i], 10, None),
        "arrow_lists": ([pa.array(tags, pa.list_(pa.string())), pa.array(s, pa.large_string())], [tags, s], 97, 5),
    }


def results():
    out = {}
    for name, (features, _, num_bins, hash_key) in cases().items():
        ids = hashed_cross(features, num_bins, hash_key=hash_key)
        out[name] = ids.tolist() if isinstance(ids, np.ndarray) else ids.to_pylist()
    return out
'''

REPORT = r'''
import importlib.util, json, sys
import beam_cross, beam_cross.core
spec = importlib.util.find_spec("beam_cross.core._kernel")
print(json.dumps({
    "prefix": sys.prefix,
    "kernel": beam_cross.core.KERNEL,
    "kernel_file": spec.origin if spec else None,
    "files": sorted(m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "beam_cross"),
    "results": results(),
}))
'''

MASK = 2**64 - 1


def _cat64(a: int, b: int) -> int:
    """TensorFlow's FingerprintCat64, one Python int at a time."""
    k_mul = 0xC6A4A7935BD1E995
    r = a ^ k_mul
    r ^= ((((b * k_mul) & MASK) ^ (((b * k_mul) & MASK) >> 47)) * k_mul) & MASK
    r = (r * k_mul) & MASK
    r = (((r ^ (r >> 47)) * k_mul) & MASK)
    return r ^ (r >> 47)


def _model(columns, num_bins, hash_key):
    """``tf.sparse.cross_hashed`` written out: per row, the cartesian product of the values, folded."""
    seed = (hash_key or 0xDECAFCAFFE) & MASK
    modulus = num_bins or 2**63 - 1

    def fingerprint(v):
        if isinstance(v, (str, bytes)):
            return farmhash.fingerprint64(v.encode() if isinstance(v, str) else v)
        return v & MASK

    rows = []
    for row in zip(*columns):
        ids = []
        for combo in itertools.product(*[v if isinstance(v, list) else [v] for v in row]):
            h = seed
            for v in combo:
                h = _cat64(h, fingerprint(v))
            ids.append(h % modulus)
        rows.append(ids)
    return rows


def _here():
    """The cases, their ids in this process (the checkout) and the model's."""
    namespace = {}
    exec(CASES, namespace)
    expected = {}
    for name, (_, columns, num_bins, hash_key) in namespace["cases"]().items():
        rows = _model(columns, num_bins, hash_key)
        expected[name] = rows if any(isinstance(c[0], list) for c in columns) else [r[0] for r in rows]
    return namespace["results"](), expected


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "repo"
    shutil.copytree(ROOT, source, ignore=IGNORE)
    return Path(Stager._build_setup_package(str(source / "setup.py"), str(tmp_path_factory.mktemp("sdist"))))


@pytest.fixture(scope="module")
def expected():
    here, model = _here()
    assert here == model, f"this process's kernel ({beam_cross.core.KERNEL}) disagrees with the model"
    return here


def _install(sdist: Path, root: Path, **env_overrides) -> tuple[dict, str]:
    """A fresh venv under ``root`` with ``sdist`` pip-installed; returns the venv's report and pip's log."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    here = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    Path(purelib, "_deps_from_the_test_process.pth").write_text("\n".join(here) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "BEAM_CROSS_"))}
    # No download, no wheel cache (a wheel built with the kernel would be reused for the next install).
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull, **env_overrides)
    neutral = root / "cwd"
    neutral.mkdir()
    pip = subprocess.run(
        [str(python), "-I", "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation", "--no-index",
         "--ignore-installed", str(sdist)],
        cwd=neutral, env=env, capture_output=True, text=True)
    log = pip.stdout + pip.stderr
    assert pip.returncode == 0, log[-5000:]

    env = {k: v for k, v in env.items() if k not in env_overrides}
    run = subprocess.run([str(python), "-I", "-c", CASES + REPORT], cwd=neutral, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-5000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(report["prefix"]).resolve() == venv.resolve()
    assert report["files"] and all(Path(f).resolve().is_relative_to(Path(purelib).resolve()) for f in report["files"]), \
        report["files"]
    return report, log


def test_the_sdist_builds_the_kernel_where_a_compiler_is(sdist, expected, tmp_path):
    report, log = _install(sdist, tmp_path)
    assert FAILED not in log
    # The compiler ran on the kernel with setup.py's flags (the last word of the command is theirs).
    compiles = [line for line in log.splitlines() if " -c beam_cross/core/_kernel.c " in line]
    assert compiles and all(line.split()[-1] == "-O3" for line in compiles), compiles
    assert report["kernel"] == "c"
    assert report["kernel_file"] and Path(report["kernel_file"]).resolve().is_relative_to((tmp_path / "venv").resolve())
    assert report["results"] == expected


def test_the_sdist_installs_without_a_compiler_and_uses_numpy(sdist, expected, tmp_path):
    report, log = _install(sdist, tmp_path, CC="false", CXX="false", LDSHARED="false")
    assert FAILED in log, log[-5000:]
    assert report["kernel"] == "numpy" and report["kernel_file"] is None
    assert not list((tmp_path / "venv").rglob("_kernel*.so"))
    assert report["results"] == expected
