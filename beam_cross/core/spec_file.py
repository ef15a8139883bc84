"""A spec file: a list of crosses (``Cross.to_dict`` dicts) in JSON or YAML, read into :class:`Cross` objects.

The file holds the list itself, or a mapping with the list under ``crosses:`` (the command's
``--config`` takes the same files). An entry ``{all_crosses: {features: [...], degree: 2, num_bins: ...}}``
stands for the crosses :func:`~beam_cross.core.generated.all_crosses` generates; its ``num_bins`` may be
``{suggested_from: report/collisions.json, "*": 1000}``, the bins a collision report suggests
(:mod:`beam_cross.core.suggested`; the path relative to the spec file). YAML is read with ``yaml.safe_load`` (a superset of JSON; no
tags), so one reader takes both.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "crosses.json"
>>> _ = path.write_text('[{"features": [{"transform": "bucketize", "name": "age", "boundaries": [18, 25]}, '
...                     '"country"], "num_bins": 1000}]')
>>> [c.name for c in read_crosses(path)]
['age_X_country']

A learned spec (:mod:`beam_cross.core.learning`) is written by :func:`write_crosses`: the crosses file,
and each vocabulary longer than ``inline_limit`` tokens in a file of its own next to it,
``vocabulary_<feature>.jsonl``, one JSON value per line (a JSON string escapes newlines, so any token
fits on its line); the transform's dict names it, ``"vocabulary_file": "vocabulary_country.jsonl"``,
a path relative to the spec file. :func:`read_crosses` reads it back: ``CrossingLayer(path)``,
``beam_cross.tft.preprocessing_fn(read_crosses(path))`` and ``beam-cross --config path`` take the same
file.

>>> from beam_cross.core.spec import Cross
>>> from beam_cross.core.transforms import Lookup
>>> spec = [Cross([Lookup("word", [f"w{i}" for i in range(500)] + ["two\\nlines"]), "hour"], 100)]
>>> written = write_crosses(spec, path.parent / "learned.json")
>>> sorted(p.name for p in written)
['learned.json', 'vocabulary_word.jsonl']
>>> read_crosses(path.parent / "learned.json") == tuple(spec)
True
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import yaml

from beam_cross.core.generated import expand_generated
from beam_cross.core.spec import Cross, check_crosses

__all__ = ["read_crosses", "spec_files", "write_crosses"]

VOCABULARY_FILE = "vocabulary_file"


def read_crosses(path) -> tuple[Cross, ...]:
    """The crosses of the JSON or YAML file at ``path``, checked as :func:`~beam_cross.core.spec.check_crosses` does."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"A spec file path must be a str or os.PathLike. Received: path={path!r}")
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"The spec file {os.fspath(path)} is not valid JSON or YAML (tags such as "
                             f"!!python/... are not allowed): {' '.join(str(error).split())}") from None
    if isinstance(config, dict):
        config = config.get("crosses")
    if not isinstance(config, list) or not config:
        raise ValueError(f"The spec file {os.fspath(path)} must hold a non-empty list of crosses "
                         f"(or `crosses: [...]`). Received: {config!r}")
    try:
        config = _with_vocabulary_files(config, Path(path).parent)
        return check_crosses(expand_generated(config, Path(path).parent))
    except (TypeError, ValueError) as error:
        raise type(error)(f"The spec file {os.fspath(path)}: {error}") from None


def _with_vocabulary_files(config: list, directory: Path) -> list:
    """The entries, with each ``vocabulary_file`` of a transform dict read into its ``vocabulary``."""
    out = []
    for entry in config:
        features = entry.get("features") if isinstance(entry, dict) else None
        if isinstance(features, list) and any(isinstance(f, dict) and VOCABULARY_FILE in f for f in features):
            entry = {**entry, "features": [_read_vocabulary(f, directory) if isinstance(f, dict) and VOCABULARY_FILE in f
                                           else f for f in features]}
        out.append(entry)
    return out


def _read_vocabulary(transform: dict, directory: Path) -> dict:
    name = transform[VOCABULARY_FILE]
    if "vocabulary" in transform:
        raise ValueError(f"A transform has both `vocabulary` and `{VOCABULARY_FILE}`. Received: {transform!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"`{VOCABULARY_FILE}` must be a path (relative to the spec file). Received: {name!r}")
    path = directory / name
    tokens = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                token = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"The vocabulary file {path}, line {number}: not a JSON value ({error.msg}). "
                                 f"Received: {line[:80]!r}") from None
            if isinstance(token, bool) or not isinstance(token, (str, int)):
                raise ValueError(f"The vocabulary file {path}, line {number}: a token is a JSON string or integer. "
                                 f"Received: {token!r}")
            tokens.append(token)
    rest = {k: v for k, v in transform.items() if k != VOCABULARY_FILE}
    return {**rest, "vocabulary": tokens}


def _file_name(feature: str, taken: set) -> str:
    stem = "vocabulary_" + (re.sub(r"[^A-Za-z0-9_.-]", "_", feature) or "_")
    name, n = f"{stem}.jsonl", 2
    while name in taken:
        name, n = f"{stem}_{n}.jsonl", n + 1
    taken.add(name)
    return name


def spec_files(crosses, name: str = "crosses.json", *, inline_limit: int = 100) -> dict[str, bytes]:
    """The files of a spec, by name: ``name`` (JSON, or YAML when it ends in ``.yaml`` / ``.yml``) and a
    ``vocabulary_<feature>.jsonl`` per vocabulary of more than ``inline_limit`` tokens. Pure: the
    command writes them through Beam's file systems, :func:`write_crosses` to local paths."""
    crosses = check_crosses(crosses)
    files: dict[str, bytes] = {}
    taken = {name}
    entries = []
    for cross in crosses:
        entry = cross.to_dict()
        features = []
        for feature in entry["features"]:
            vocabulary = feature.get("vocabulary") if isinstance(feature, dict) else None
            if vocabulary is not None and len(vocabulary) > inline_limit:
                file_name = _file_name(feature["name"], taken)
                files[file_name] = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in vocabulary).encode("utf-8")
                feature = {k: (file_name if k == "vocabulary" else v) for k, v in feature.items()}
                feature[VOCABULARY_FILE] = feature.pop("vocabulary")
            features.append(feature)
        entries.append({**entry, "features": features})
    if name.endswith((".yaml", ".yml")):
        text = yaml.safe_dump({"crosses": entries}, allow_unicode=True, sort_keys=False)
    else:
        text = json.dumps({"crosses": entries}, indent=2, ensure_ascii=False) + "\n"
    files[name] = text.encode("utf-8")
    return files


def write_crosses(crosses, path, *, inline_limit: int = 100, overwrite: bool = False) -> list[Path]:
    """Writes the spec of :func:`spec_files` at ``path`` (its vocabulary files next to it); returns the
    paths written. Each file is written whole, then renamed into place; an existing file is a
    ``FileExistsError`` unless ``overwrite``."""
    path = Path(path)
    files = spec_files(crosses, path.name, inline_limit=inline_limit)
    targets = {path.parent / name: data for name, data in files.items()}
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"write_crosses does not overwrite files (pass overwrite=True). Existing: {existing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, data in targets.items():
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, target)
    return sorted(targets, key=lambda t: (t != path, t.name))
