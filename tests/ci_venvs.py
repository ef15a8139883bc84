"""The python of a venv that a ``.ci/*-env`` script builds once per machine, named by an environment variable.

Unset: the test is skipped, with how to build the venv; under ``CI=true`` it fails instead (``.ci/run``
sets the variable). Set to something that is not such a python: the test fails.
"""

from __future__ import annotations

import os

import pytest


def venv_python(variable: str, needs: str, build_command: str, is_valid=None, what: str = "an executable python") -> str:
    """``$variable``'s python; ``needs`` says what the venv is for, ``is_valid(python)`` checks it further."""
    python = os.environ.get(variable)
    if not python:
        why = f"{needs}; build it and point {variable} at it: {build_command}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{variable} is not set under CI. {why}")
        pytest.skip(why)
    if not os.access(python, os.X_OK) or (is_valid is not None and not is_valid(python)):
        pytest.fail(f"{variable}={python!r} is not {what}. Build it with: {build_command}")
    return python
