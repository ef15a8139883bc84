"""README's and ``docs/*.md``'s Python examples run as written, each in a fresh interpreter in an empty
directory, and print exactly what the page shows: the ``text`` block that follows them on stdout, and
on stderr the ``stderr`` block after that (folded in a ``<details>`` element), or nothing.

A line of a ``stderr`` block may hold ``...`` where what the user sees varies from run to run (a
timestamp, a process id, a temporary path); each shown line matches exactly one printed line. The
examples run in the test process's environment as a user would run them: TensorFlow's C++ logging
is not turned down for them.

Doctest blocks (``>>>``) are run by pytest's ``--doctest-glob``. The printed ids are those the pages
show; ``test_printed_ids_are_hashed_cross`` checks them against ``beam_cross.hashed_cross``.
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
# A python block, the text block right after it (blank lines between), if any, and a stderr block
# after that, if any (inside a <details> element or not).
BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n(?:\s*\n)?(?:```text\n(?P<output>.*?)```\n)?"
                   r"(?:\s*(?:<details><summary>[^\n]*</summary>\s*)?```stderr\n(?P<stderr>.*?)```\n(?:\s*</details>\n)?)?",
                   re.S)
HEAVY = {"tensorflow": "tensorflow", "keras": "keras", "tensorflow_transform": "tensorflow_transform"}


def readme_examples(name: str = "README.md") -> list[tuple[str, str, str | None, str]]:
    """``(id, code, expected stdout or None, expected stderr)`` of each non-doctest python block of README.md (or ``name``)."""
    text = (REPO / name).read_text(encoding="utf-8")
    examples = []
    for match in BLOCK.finditer(text):
        code = match.group("code")
        if code.lstrip().startswith(">>>"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        examples.append((f"{name}:{line}", code, match.group("output"), match.group("stderr") or ""))
    return examples


def stderr_matches(shown: str, printed: str) -> bool:
    """Whether ``printed`` is ``shown`` line for line, a ``...`` in a shown line standing for any text."""
    shown_lines, printed_lines = shown.splitlines(), printed.splitlines()
    return len(shown_lines) == len(printed_lines) and all(
        re.fullmatch(".*".join(map(re.escape, want.split("..."))), got) for want, got in zip(shown_lines, printed_lines))


def run_example(code: str, directory: Path) -> subprocess.CompletedProcess:
    """Runs ``code`` as ``example.py`` in ``directory`` with a fresh interpreter, as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # set by conftest for the test process, not by a user
    (directory / "example.py").write_text(code, encoding="utf-8")
    return subprocess.run([sys.executable, "example.py"], cwd=directory, capture_output=True, text=True,
                          timeout=600, env=env)


EXAMPLES = readme_examples()
DOCS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))
DOC_EXAMPLES = [e for name in DOCS for e in readme_examples(name)]


def test_stderr_matching_is_line_for_line():
    assert stderr_matches("", "")
    assert stderr_matches("W ... x.cc:1] note\n", "W 00:00:12.5 x.cc:1] note\n")
    assert not stderr_matches("", "WARNING:root:something\n")
    assert not stderr_matches("...\n", "two\nlines\n")
    assert not stderr_matches("W x\n", "W x\nW y\n")


def test_every_example_that_prints_shows_its_output():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    doctests = len(re.findall(r"```python\n>>>", text))
    assert EXAMPLES and len(EXAMPLES) + doctests == text.count("```python\n")  # no block missed
    assert text.count("```stderr\n") == sum(bool(e[3]) for e in EXAMPLES)
    for example_id, code, output, _ in EXAMPLES:
        if "print(" in code:
            assert output is not None, f"{example_id} prints but the README does not show what"


def test_every_docs_example_prints_what_it_shows():
    assert DOCS and DOC_EXAMPLES
    for name in DOCS:
        text = (REPO / name).read_text(encoding="utf-8")
        doctests = len(re.findall(r"```python\n>>>", text))
        assert text.count("```python\n") == doctests + sum(e[0].startswith(f"{name}:") for e in DOC_EXAMPLES)
        assert text.count("```stderr\n") == sum(bool(e[3]) for e in DOC_EXAMPLES if e[0].startswith(f"{name}:"))
    assert all(output is not None for _, _, output, _ in DOC_EXAMPLES)  # each shows its output, which is checked


@pytest.mark.parametrize(("code", "output", "stderr"), [e[1:] for e in EXAMPLES + DOC_EXAMPLES],
                         ids=[e[0] for e in EXAMPLES + DOC_EXAMPLES])
def test_readme_example_runs_as_written(code, output, stderr, tmp_path):
    for module in HEAVY:
        if re.search(rf"^\s*(import|from) {module}\b", code, re.M) and importlib.util.find_spec(module) is None:
            pytest.skip(f"the example needs {module}, which is not installed")
    done = run_example(code, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    if output is not None:
        assert done.stdout == output
    assert stderr_matches(stderr, done.stderr), f"the page shows on stderr:\n{stderr}\nthe example printed:\n{done.stderr}"


def test_printed_ids_are_hashed_cross():
    """The ids the README shows for its example rows are those of the core (checked against TF elsewhere)."""
    shown = "\n".join(output or "" for _, _, output, _ in EXAMPLES + DOC_EXAMPLES)
    fr_13 = int(hashed_cross([["fr"], [13]], 1000)[0])
    assert f"'country_X_hour': {fr_13}" in shown
    assert f"'device_X_country': {int(hashed_cross([['ios'], ['fr']], 100)[0])}" in shown
    assert f"[{int(hashed_cross([['fr'], [13], ['ios']], 1000)[0])}]" in shown
    tags = hashed_cross([[["a", "b"], []], ["fr", "us"]], 500).to_pylist()
    assert f"'tags_X_country': {tags[0]}" in shown and f"'tags_X_country': {tags[1]}" in shown
