"""``Cross``: an immutable, validated description of one feature cross."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from beam_cross.core.cross import check_hash_key, check_num_bins, hashed_cross

OUTPUT_MODES = ("int", "one_hot")


@dataclass(frozen=True, init=False)
class Cross:
    """One cross: which features, in which order, into how many bins, under which name.

    ``name`` defaults to ``"_X_".join(features)``, the naming of TensorFlow's crossed columns and
    Keras ``FeatureSpace``. A ``Cross`` round-trips through a plain dict or JSON, so crosses can
    live in a config file.

    >>> cross = Cross(["country", "hour"], num_bins=1000)
    >>> cross.name
    'country_X_hour'
    >>> Cross.from_dict(cross.to_dict()) == cross
    True
    >>> cross.apply({"country": ["fr", "us"], "hour": [13, 7]}).tolist()  # tf.sparse.cross_hashed agrees
    [755, 305]
    """

    features: tuple[str, ...]
    num_bins: int
    name: str
    output_mode: str
    hash_key: int | None

    def __init__(self, features, num_bins, *, name=None, output_mode="int", hash_key=None):
        try:
            names = None if isinstance(features, (str, bytes)) else tuple(features)
        except TypeError:  # not iterable
            names = None
        if names is None or not all(isinstance(f, str) and f for f in names):
            raise TypeError(f"`features` must be a list of feature names (non-empty strings). Received: features={features!r}")
        features = names
        if len(features) < 2:
            raise ValueError(f"A cross needs at least two features. Received: features={list(features)}")
        if len(set(features)) != len(features):
            raise ValueError(f"`features` must not repeat a name. Received: features={list(features)}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"`output_mode` must be one of {OUTPUT_MODES}. Received: output_mode={output_mode!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string or None. Received: name={name!r}")
        check_hash_key(hash_key)
        set_ = object.__setattr__
        set_(self, "features", features)
        set_(self, "num_bins", check_num_bins(num_bins))
        set_(self, "name", name or "_X_".join(features))
        set_(self, "output_mode", output_mode)
        set_(self, "hash_key", None if hash_key is None else int(hash_key))

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "num_bins": self.num_bins,
            "name": self.name,
            "output_mode": self.output_mode,
            "hash_key": self.hash_key,
        }

    @classmethod
    def from_dict(cls, config: dict) -> Cross:
        if not isinstance(config, dict):
            raise TypeError(f"A cross config must be a dict. Received: {config!r}")
        unknown = set(config) - {"features", "num_bins", "name", "output_mode", "hash_key"}
        if unknown:
            raise ValueError(f"Unknown keys in a cross config: {sorted(unknown)}. Received: {config!r}")
        if "features" not in config or "num_bins" not in config:
            raise ValueError(f"A cross config needs `features` and `num_bins`. Received: {config!r}")
        return cls(
            config["features"],
            config["num_bins"],
            name=config.get("name"),
            output_mode=config.get("output_mode", "int"),
            hash_key=config.get("hash_key"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Cross:
        return cls.from_dict(json.loads(text))

    def apply(self, columns):
        """The bins of this cross, from a mapping of feature name to column (see ``hashed_cross``).

        Always the integer bins: ``output_mode`` is for front doors that encode them.
        """
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise KeyError(f"Cross `{self.name}` needs features {missing}, missing from the input")
        return hashed_cross({f: columns[f] for f in self.features}, self.num_bins, hash_key=self.hash_key)


def check_crosses(crosses) -> tuple[Cross, ...]:
    """A non-empty tuple of :class:`Cross` with unique names, from a list of ``Cross`` or cross dicts.

    >>> [c.name for c in check_crosses([Cross(["a", "b"], 10), {"features": ["b", "c"], "num_bins": 5}])]
    ['a_X_b', 'b_X_c']
    """
    if isinstance(crosses, (Cross, Mapping, str)) or not isinstance(crosses, Iterable):
        raise TypeError(f"`crosses` must be a list of `Cross` (or of cross dicts). Received: crosses={crosses!r}")
    checked = tuple(Cross.from_dict(c) if isinstance(c, Mapping) else c for c in crosses)
    for cross in checked:
        if not isinstance(cross, Cross):
            raise TypeError(f"`crosses` must hold `Cross` objects or cross dicts. Received: {cross!r}")
    if not checked:
        raise ValueError("`crosses` must hold at least one cross. Received: crosses=[]")
    names = [c.name for c in checked]
    if len(set(names)) != len(names):
        raise ValueError(f"Cross names must be unique. Received: names={names}")
    return checked
