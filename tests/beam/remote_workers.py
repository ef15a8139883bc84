"""Support for tests whose pipelines run in other processes (multi-process DirectRunner, Dask workers)."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import uuid

import apache_beam as beam
import pytest


def ship_by_value(module_name: str) -> None:
    """Workers cannot import test modules: ship the functions (lambdas, DoFns) of ``module_name`` and
    of this module by value, with Beam's cloudpickle (DirectRunner) and the standalone one (Dask's
    task graph)."""
    from apache_beam.internal.cloudpickle import cloudpickle as beam_cloudpickle

    for pickler in (beam_cloudpickle, pytest.importorskip("cloudpickle", reason="Dask ships tasks with cloudpickle")):
        for name in (module_name, __name__):
            pickler.register_pickle_by_value(sys.modules[name])


class WriteLines(beam.DoFn):
    """Appends each element as a JSON line to a file of its own per bundle in ``directory``: what
    workers in other processes emit, for the test to read back with :func:`read_lines`."""

    def __init__(self, directory):
        self._directory = str(directory)

    def start_bundle(self):
        self._path = os.path.join(self._directory, f"{uuid.uuid4().hex}.jsonl")

    def process(self, element):
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(element) + "\n")


def read_lines(directory) -> list:
    """Every element :class:`WriteLines` wrote in ``directory``, decoded from JSON."""
    return [json.loads(line) for path in sorted(pathlib.Path(directory).glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]
