"""README's (and ``docs/*.md``'s) Python examples run as written, each in a fresh interpreter in an empty directory, and print
exactly the ``text`` block that follows them.

Doctest blocks (``>>>``) are run by pytest's ``--doctest-glob=README.md``. The printed ids are those
the README shows; ``test_printed_ids_are_hashed_cross`` checks them against ``beam_cross.hashed_cross``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from beam_cross import hashed_cross

REPO = Path(__file__).resolve().parent.parent
# A python block, and the text block right after it (blank lines between), if any.
BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n(?:\s*\n)?(?:```text\n(?P<output>.*?)```\n)?", re.S)
HEAVY = {"tensorflow": "tensorflow", "keras": "keras", "tensorflow_transform": "tensorflow_transform"}


def readme_examples(name: str = "README.md") -> list[tuple[str, str, str | None]]:
    """``(id, code, expected output or None)`` of each non-doctest python block of README.md (or ``name``)."""
    text = (REPO / name).read_text(encoding="utf-8")
    examples = []
    for match in BLOCK.finditer(text):
        code = match.group("code")
        if code.lstrip().startswith(">>>"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        examples.append((f"{name}:{line}", code, match.group("output")))
    return examples


EXAMPLES = readme_examples()
DOCS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))
DOC_EXAMPLES = [e for name in DOCS for e in readme_examples(name)]


def test_every_example_that_prints_shows_its_output():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    doctests = len(re.findall(r"```python\n>>>", text))
    assert EXAMPLES and len(EXAMPLES) + doctests == text.count("```python\n")  # no block missed
    for example_id, code, output in EXAMPLES:
        if "print(" in code:
            assert output is not None, f"{example_id} prints but the README does not show what"


def test_every_docs_example_prints_what_it_shows():
    assert DOCS and DOC_EXAMPLES
    for name in DOCS:
        assert (REPO / name).read_text(encoding="utf-8").count("```python\n") == sum(e[0].startswith(f"{name}:") for e in DOC_EXAMPLES)
    assert all(output is not None for _, _, output in DOC_EXAMPLES)  # each shows its output, which is checked


@pytest.mark.parametrize(("code", "output"), [e[1:] for e in EXAMPLES + DOC_EXAMPLES], ids=[e[0] for e in EXAMPLES + DOC_EXAMPLES])
def test_readme_example_runs_as_written(code, output, tmp_path):
    for module in HEAVY:
        if re.search(rf"^\s*(import|from) {module}\b", code, re.M) and importlib.util.find_spec(module) is None:
            pytest.skip(f"the example needs {module}, which is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    if output is not None:
        assert done.stdout == output


def test_printed_ids_are_hashed_cross():
    """The ids the README shows for its example rows are those of the core (checked against TF elsewhere)."""
    shown = "\n".join(output or "" for _, _, output in EXAMPLES)
    fr_13 = int(hashed_cross([["fr"], [13]], 1000)[0])
    assert f"'country_X_hour': {fr_13}" in shown
    assert f"'device_X_country': {int(hashed_cross([['ios'], ['fr']], 100)[0])}" in shown
    assert f"[{int(hashed_cross([['fr'], [13], ['ios']], 1000)[0])}]" in shown
    tags = hashed_cross([[["a", "b"], []], ["fr", "us"]], 500).to_pylist()
    assert f"'tags_X_country': {tags[0]}" in shown and f"'tags_X_country': {tags[1]}" in shown
