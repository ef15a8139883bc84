"""Shared test fixtures: the golden vectors of ``tests/golden/`` (made by ``tests/golden/generate.py``).

``golden("cross_dense.json")`` returns the decoded vectors: integers as Python ints, ``bytes``
columns as ``bytes``, ``str`` columns as ``str``, ``expected`` as an int64 array of the case's
shape (dense) or a list of lists of ints (multivalent).
"""

from __future__ import annotations

import functools
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


def pytest_generate_tests(metafunc):
    """A test taking ``dense_case`` / ``ragged_case`` runs once per golden vector, named by its id."""
    for argument, name in _PARAMETRIZED.items():
        if argument in metafunc.fixturenames:
            cases = load_golden(name)[1]
            metafunc.parametrize(argument, cases, ids=[case["id"] for case in cases])
