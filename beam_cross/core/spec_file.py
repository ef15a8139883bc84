"""A spec file: a list of crosses (``Cross.to_dict`` dicts) in JSON or YAML, read into :class:`Cross` objects.

The file holds the list itself, or a mapping with the list under ``crosses:`` (the command's
``--config`` takes the same files). An entry ``{all_crosses: {features: [...], degree: 2, num_bins: ...}}``
stands for the crosses :func:`~beam_cross.core.generated.all_crosses` generates. YAML is read with ``yaml.safe_load`` (a superset of JSON; no
tags), so one reader takes both.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "crosses.json"
>>> _ = path.write_text('[{"features": [{"transform": "bucketize", "name": "age", "boundaries": [18, 25]}, '
...                     '"country"], "num_bins": 1000}]')
>>> [c.name for c in read_crosses(path)]
['age_X_country']
"""

from __future__ import annotations

import os

import yaml

from beam_cross.core.generated import expand_generated
from beam_cross.core.spec import Cross, check_crosses

__all__ = ["read_crosses"]


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
        return check_crosses(expand_generated(config))
    except (TypeError, ValueError) as error:
        raise type(error)(f"The spec file {os.fspath(path)}: {error}") from None
