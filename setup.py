"""Shim for tools that still call setup.py (Dataflow's ``--setup_file``). Metadata is in pyproject.toml."""

from setuptools import setup

setup()
