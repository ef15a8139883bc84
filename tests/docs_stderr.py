"""Rewrites the ``stderr`` blocks of README.md and ``docs/*.md`` from what each example prints now.

    python tests/docs_stderr.py                 # every page
    python tests/docs_stderr.py docs/tft.md     # one page

``tests/test_readme.py`` fails when an example prints on stderr what its page does not show; after a
change in what the libraries print, this writes the new lines under each example (folded in a
``<details>`` element), with ``...`` for what varies between runs (timestamps and process ids of
TensorFlow's C++ log lines, temporary directories) and for the end of a line over 100 characters.
Review the diff: each shown line should be one a user cannot act on, or the page should say what to do.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_readme import BLOCK, DOCS, REPO, run_example  # noqa: E402

WIDTH = 100


def shown(line: str, directory: str) -> str:
    """``line`` as a page shows it: the varying parts as ``...``, cut at WIDTH characters."""
    line = line.replace(directory, "...")
    line = re.sub(r"^([IWEF]\d{4} \d\d:\d\d:)\d+\.\d+\s+\d+ ", r"\1... ", line)
    if len(line) > WIDTH:
        cut = line.rfind(" ", 0, WIDTH - 4)
        line = line[: cut if cut > 0 else WIDTH - 4] + " ..."
    return line


def stderr_block(code: str) -> str:
    """The ``stderr`` block (with its ``<details>`` element) of an example, or "" if it prints nothing there."""
    with tempfile.TemporaryDirectory() as directory:
        done = run_example(code, Path(directory))
        if done.returncode:
            raise SystemExit(f"the example failed:\n{code}\n{done.stderr[-4000:]}")
        lines = [shown(line, str(Path(directory).resolve())) for line in done.stderr.splitlines()]
        lines = [shown(line, directory) for line in lines]
    if not lines:
        return ""
    return ("\n<details><summary>stderr</summary>\n\n```stderr\n" + "\n".join(lines) + "\n```\n\n</details>\n")


def rewrite(name: str) -> None:
    path = REPO / name
    text = path.read_text(encoding="utf-8")

    def replace(match: re.Match) -> str:
        code = match.group("code")
        if code.lstrip().startswith(">>>"):
            return match.group(0)
        end = match.start("stderr") if match.group("stderr") is not None else match.end()
        kept = match.group(0)[: end - match.start()]
        if match.group("stderr") is not None:  # drop the old block and its <details> opening
            kept = re.sub(r"\s*(?:<details><summary>[^\n]*</summary>\s*)?```stderr\n$", "\n", kept)
        print(f"{name}:{text.count(chr(10), 0, match.start()) + 1}", file=sys.stderr)
        return kept + stderr_block(code)

    path.write_text(BLOCK.sub(replace, text), encoding="utf-8")


if __name__ == "__main__":
    for page in sys.argv[1:] or ["README.md", *DOCS]:
        rewrite(page)
