"""Writing a learned spec (``write_crosses`` / ``spec_files``): vocabularies in files of their own, any
token (newlines, carriage returns, quotes, non-ASCII, integers) read back by ``read_crosses``."""

from __future__ import annotations

import json

import pytest

from beam_cross import Bucketize, Cross, Lookup
from beam_cross.core.spec_file import read_crosses, spec_files, write_crosses

ODD = ["plain", "two\nlines", "cr\rhere", "tab\there", '"quoted"', "\\", "日本", "[1, 2]", "null", " ", "\u2028", "x" * 300]
SPEC = [
    Cross([Lookup("word", ODD + [f"w{i}" for i in range(200)], max_tokens=1000), Bucketize("age", [1.5, 20.0],
          num_buckets=4)], 100),
    Cross([Lookup("word", ODD[:3], style="feature_column"), Lookup("n/id", [-5] + list(range(300)), num_oov_indices=2)],
          0, name="small"),
    Cross([Lookup("word", [f"v{i}" for i in range(150)], max_tokens=151), "hour"], 10, name="again"),
]


@pytest.mark.parametrize("name", ["crosses.json", "crosses.yaml"])
def test_a_learned_spec_round_trips_through_its_files(tmp_path, name):
    written = write_crosses(SPEC, tmp_path / name)
    assert [p.name for p in written] == [name, "vocabulary_n_id.jsonl", "vocabulary_word.jsonl",
                                         "vocabulary_word_2.jsonl"]
    assert read_crosses(tmp_path / name) == tuple(SPEC)
    lines = (tmp_path / "vocabulary_word.jsonl").read_text(encoding="utf-8").split("\n")
    assert len(lines) == len(ODD) + 200 + 1 and lines[1] == '"two\\nlines"'  # one token per line
    assert "vocabulary_file" in (tmp_path / name).read_text(encoding="utf-8")


def test_small_vocabularies_stay_inline_and_paths_are_relative_to_the_spec(tmp_path):
    files = spec_files(SPEC[1:2], "spec.json", inline_limit=400)
    assert list(files) == ["spec.json"]
    (tmp_path / "deep").mkdir()
    write_crosses(SPEC, tmp_path / "deep" / "spec.json")
    moved = tmp_path / "elsewhere"
    (tmp_path / "deep").rename(moved)
    assert read_crosses(moved / "spec.json") == tuple(SPEC)


def test_files_are_not_overwritten(tmp_path):
    (tmp_path / "vocabulary_word.jsonl").write_text("mine\n")
    with pytest.raises(FileExistsError, match=r"does not overwrite .*vocabulary_word.jsonl"):
        write_crosses(SPEC, tmp_path / "crosses.json")
    assert (tmp_path / "vocabulary_word.jsonl").read_text() == "mine\n" and not (tmp_path / "crosses.json").exists()
    write_crosses(SPEC, tmp_path / "crosses.json", overwrite=True)
    assert read_crosses(tmp_path / "crosses.json") == tuple(SPEC)


def test_bad_vocabulary_files_name_the_file_and_line(tmp_path):
    write_crosses(SPEC[:1], tmp_path / "crosses.json")
    (tmp_path / "vocabulary_word.jsonl").write_text('"a"\nb\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocabulary_word.jsonl, line 2: not a JSON value"):
        read_crosses(tmp_path / "crosses.json")
    (tmp_path / "vocabulary_word.jsonl").write_text('"a"\n1.5\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: a token is a JSON string or integer. Received: 1.5"):
        read_crosses(tmp_path / "crosses.json")
    spec = json.loads((tmp_path / "crosses.json").read_text())
    spec["crosses"][0]["features"][0]["vocabulary"] = ["a"]
    (tmp_path / "both.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"both `vocabulary` and `vocabulary_file`"):
        read_crosses(tmp_path / "both.json")
    (tmp_path / "vocabulary_word.jsonl").unlink()
    with pytest.raises(FileNotFoundError):
        read_crosses(tmp_path / "crosses.json")


def test_an_unlearned_spec_is_written_too(tmp_path):
    spec = [Cross([Bucketize("age", num_buckets=4), Lookup("word", max_tokens=5)], 10)]
    write_crosses(spec, tmp_path / "todo.yaml")
    assert read_crosses(tmp_path / "todo.yaml") == tuple(spec)
