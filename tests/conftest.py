"""Shared test fixtures: the golden vectors of ``tests/golden/`` (made by ``tests/golden/generate.py``).

``golden("cross_dense.json")`` returns the decoded vectors: integers as Python ints, ``bytes``
columns as ``bytes``, ``str`` columns as ``str``, ``expected`` as an int64 array of the case's
shape (dense) or a list of lists of ints (multivalent).

The ``kernel`` fixture runs a test once per kernel of :mod:`beam_cross.core._fingerprint`: ``"c"``
(the compiled extension) and ``"numpy"`` (its fallback). A module applies it to all its tests with
``pytestmark = pytest.mark.usefixtures("kernel")``; ``@pytest.mark.kernels("numpy")`` keeps one test
to the kernels named. Without the compiled extension, its runs skip, except under ``CI=true``, where
they fail: the CI must build it.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

# The generator imports TensorFlow and Keras 3; it is a script, not a test module.
collect_ignore = ["golden/generate.py"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def decode_values(kind: str, values: list) -> list:
    if kind == "str":
        return list(values)
    if kind == "bytes":
        return [bytes.fromhex(v) for v in values]
    return [int(v) for v in values]


def _decode_case(case: dict) -> dict:
    case = dict(case)
    columns = []
    for column in case["columns"]:
        kind = column["kind"]
        if column.get("dense", True):
            values = decode_values(kind, column["values"])
        else:
            values = [decode_values(kind, row) for row in column["values"]]
        columns.append({"kind": kind, "dense": column.get("dense", True), "values": values})
    case["columns"] = columns
    case["num_bins"] = int(case["num_bins"])
    case["hash_key"] = None if case["hash_key"] is None else int(case["hash_key"])
    if "shape" in case:
        case["shape"] = tuple(case["shape"])
        case["expected"] = np.array([int(v) for v in case["expected"]], np.int64).reshape(case["shape"])
    else:
        case["expected"] = [[int(v) for v in row] for row in case["expected"]]
    return case


def _decode_fingerprint(vector: dict) -> dict:
    return {**vector, "data": bytes.fromhex(vector["hex"]), "fingerprint64": int(vector["fingerprint64"])}


@functools.cache
def load_golden(name: str) -> tuple[dict, list[dict]]:
    """``(provenance, decoded vectors)`` of one golden file."""
    document = json.loads((GOLDEN_DIR / name).read_text())
    decode = _decode_fingerprint if name.startswith("fingerprint") else _decode_case
    return document["provenance"], [decode(v) for v in document["vectors"]]


@pytest.fixture(scope="session")
def golden():
    """``golden(name)`` -> the decoded vectors of ``tests/golden/<name>``."""
    return lambda name: load_golden(name)[1]


_PARAMETRIZED = {"dense_case": "cross_dense.json", "ragged_case": "cross_ragged.json"}

KERNELS = ("c", "numpy")
NOT_BUILT = "the compiled kernel is not built (no C compiler at install)"


def pytest_configure(config):
    config.addinivalue_line("markers", "kernels(*names): run the test on these kernels only (of the `kernel` fixture)")


def pytest_generate_tests(metafunc):
    """A test taking ``dense_case`` / ``ragged_case`` runs once per golden vector, named by its id;
    one using ``kernel`` runs once per kernel (those of its ``kernels`` marker, if any)."""
    for argument, name in _PARAMETRIZED.items():
        if argument in metafunc.fixturenames:
            cases = load_golden(name)[1]
            metafunc.parametrize(argument, cases, ids=[case["id"] for case in cases])
    if "kernel" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("kernels")
        names = marker.args if marker is not None else KERNELS
        unknown = set(names) - set(KERNELS)
        if unknown or not names:
            raise ValueError(f"@pytest.mark.kernels takes some of {KERNELS}. Received: {names}")
        metafunc.parametrize("kernel", names, indirect=True)


def compiled_kernel():
    """The compiled kernel module (whatever ``BEAM_CROSS_KERNEL`` chose at import), or None if not built."""
    try:
        return importlib.import_module("beam_cross.core._kernel")
    except ImportError:
        return None


def require_compiled_kernel():
    """The compiled kernel module; if it is not built, fails under ``CI=true``, else skips."""
    module = compiled_kernel()
    if module is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{NOT_BUILT}; the CI must build it (CI=true)")
        pytest.skip(NOT_BUILT)
    return module


@pytest.fixture
def kernel(request):
    """Runs the test on the kernel ``request.param`` (``"c"`` or ``"numpy"``), then restores the one in use."""
    from beam_cross.core import _fingerprint

    name = request.param
    module = require_compiled_kernel() if name == "c" else None
    saved = _fingerprint._C, _fingerprint.KERNEL
    _fingerprint._C, _fingerprint.KERNEL = module, name
    try:
        yield name
    finally:
        _fingerprint._C, _fingerprint.KERNEL = saved
