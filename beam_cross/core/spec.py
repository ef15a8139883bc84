"""``Cross``: an immutable, validated description of one feature cross."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from beam_cross.core.cross import check_hash_key, check_num_bins, hashed_cross
from beam_cross.core.transform_base import LEARN_FIRST
from beam_cross.core.transforms import Transform, transform_from_dict

OUTPUT_MODES = ("int", "one_hot")


@dataclass(frozen=True, init=False)
class Cross:
    """One cross: which features, in which order, into how many bins, under which name.

    A feature is a raw column (its name: a string or an integer is crossed as it is) or a transform
    of one (:class:`~beam_cross.Bucketize`, :class:`~beam_cross.Lookup`, :class:`~beam_cross.Identity`,
    :class:`~beam_cross.Hash`), whose int64 ids are crossed, as ``crossed_column`` and Keras
    ``FeatureSpace`` cross them. ``features`` holds the raw column names, ``inputs`` what was given.

    ``name`` defaults to ``"_X_".join`` of the raw column names in the given order: the naming of
    Keras ``FeatureSpace`` (a transform keeps its column's name). TensorFlow's ``crossed_column``
    names the same cross from its sorted leaf names with ``_bucketized`` suffixes
    (``age_bucketized_X_country``); pass ``name=`` for that. A ``Cross`` round-trips through a plain
    dict, JSON or YAML, so crosses can live in a config file.

    >>> cross = Cross(["country", "hour"], num_bins=1000)
    >>> cross.name
    'country_X_hour'
    >>> Cross.from_dict(cross.to_dict()) == cross
    True
    >>> cross.apply({"country": ["fr", "us"], "hour": [13, 7]}).tolist()  # tf.sparse.cross_hashed agrees
    [755, 305]
    >>> from beam_cross.core.transforms import Bucketize
    >>> wide = Cross([Bucketize("age", [18, 25]), "country"], 1000)  # crossed_column agrees
    >>> wide.name, wide.apply({"age": [17, 18, 30], "country": ["fr", "fr", "us"]}).tolist()
    ('age_X_country', [116, 20, 471])
    """

    features: tuple[str, ...]
    num_bins: int
    name: str
    output_mode: str
    hash_key: int | None
    inputs: tuple = field(default=(), compare=True, repr=False)

    def __init__(self, features, num_bins, *, name=None, output_mode="int", hash_key=None):
        try:
            given = None if isinstance(features, (str, bytes, Transform)) else tuple(features)
        except TypeError:  # not iterable
            given = None
        if given is None or not all((isinstance(f, str) and f) or isinstance(f, Transform) for f in given):
            raise TypeError(
                "`features` must be a list of feature names (non-empty strings) or transforms (Bucketize, Lookup, "
                f"Identity, Hash). Received: features={features!r}"
            )
        features = tuple(f.name if isinstance(f, Transform) else f for f in given)
        if len(features) < 2:
            raise ValueError(f"A cross needs at least two features. Received: features={list(features)}")
        if len(set(features)) != len(features):
            raise ValueError(f"`features` must not repeat a name. Received: features={list(features)}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"`output_mode` must be one of {OUTPUT_MODES}. Received: output_mode={output_mode!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string or None. Received: name={name!r}")
        check_hash_key(hash_key)
        num_bins = check_num_bins(num_bins)
        if output_mode == "one_hot" and num_bins < 1:
            raise ValueError(
                "A one_hot cross needs `num_bins` >= 1 (a one-hot vector of num_bins entries). "
                f"Received: num_bins={num_bins} for cross `{name or '_X_'.join(features)}`"
            )
        set_ = object.__setattr__
        set_(self, "features", features)
        set_(self, "num_bins", num_bins)
        set_(self, "name", name or "_X_".join(features))
        set_(self, "output_mode", output_mode)
        set_(self, "hash_key", None if hash_key is None else int(hash_key))
        set_(self, "inputs", given)

    @property
    def learned(self) -> bool:
        """False when a transform of the cross has parameters still to learn (see :mod:`beam_cross.core.learning`)."""
        return all(t is None or t.learned for t in self.transforms)

    @property
    def transforms(self) -> tuple:
        """Per feature, its transform, or None for a raw column."""
        return tuple(f if isinstance(f, Transform) else None for f in self.inputs)

    def to_dict(self) -> dict:
        return {
            "features": [f.to_dict() if isinstance(f, Transform) else f for f in self.inputs],
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
        features = config["features"]
        if isinstance(features, (list, tuple)):
            features = [transform_from_dict(f) if isinstance(f, dict) else f for f in features]
        return cls(
            features,
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
        return hashed_cross({f: columns[f.name if isinstance(f, Transform) else f] for f in self.inputs},
                            self.num_bins, hash_key=self.hash_key)


def check_crosses(crosses, *, require_learned: bool = False) -> tuple[Cross, ...]:
    """A non-empty tuple of :class:`Cross` with unique names, from a list of ``Cross`` or cross dicts.

    With ``require_learned`` (what a front door that crosses asks), a cross with a transform still to
    learn (``Bucketize(name, num_buckets=k)``, ``Lookup(name)`` without a vocabulary) is a
    :class:`CrossSpecError` (problem ``"not_learned"``) saying how to learn it.

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
    features = {f for c in checked for f in c.features}
    clashing = sorted(set(names) & features)
    if clashing:
        raise ValueError(f"A cross must not be named like a feature it could overwrite. Received: names={clashing}")
    if require_learned:
        for cross in checked:
            todo = [t for t in cross.transforms if t is not None and not t.learned]
            if todo:
                raise CrossSpecError(f"Cross `{cross.name}` cannot cross yet: {', '.join(t.describe() for t in todo)} "
                                     f"still to learn (no {', '.join(t.learns for t in todo)}); {LEARN_FIRST}.",
                                     cross.name, NOT_LEARNED, [t.name for t in todo])
    return checked


KINDS = ("string", "int", "float")
# What is wrong with a cross against its input (CrossSpecError.problem).
NAMED_LIKE_A_COLUMN, MISSING_COLUMN, RAW_FLOAT, WRONG_KIND = "named_like_a_column", "missing_column", "raw_float", "wrong_kind"
NOT_LEARNED = "not_learned"


class CrossSpecError(ValueError):
    """A cross that does not fit its input (see :func:`check_crosses_against`).

    Attributes:
        cross: the name of the cross.
        problem: ``"named_like_a_column"``, ``"missing_column"``, ``"raw_float"``, ``"wrong_kind"`` or
            ``"not_learned"``.
        features: the columns at fault (the cross's name for ``named_like_a_column``).
    """

    def __init__(self, message, cross, problem, features):
        super().__init__(message)
        self.cross, self.problem, self.features = cross, problem, tuple(features)

    def __reduce__(self):
        return type(self), (str(self), self.cross, self.problem, self.features)


def check_crosses_against(crosses, columns, *, require_learned: bool = False) -> tuple[Cross, ...]:
    """:func:`check_crosses`, then the crosses against the columns of an input: the one check of every
    front door (``CrossFeatures`` on schema'd rows, :func:`beam_cross.beam.frames.output_schema`, the
    command's plan, the Beam YAML provider).

    ``columns`` maps each column name to its kind (``"string"``, ``"int"``, ``"float"``, or None when
    not known), or is a list of names. A :class:`CrossSpecError` (a ``ValueError``) says which cross is
    wrong and how: it is named like a column (which it would overwrite), it needs a column the input
    lacks, it crosses a float column raw (floats are crossed through ``Bucketize`` only), or it
    transforms a column of a kind its transform does not take (strings into ``Bucketize``, floats into
    a ``Lookup``).

    >>> from beam_cross.core.transforms import Bucketize
    >>> [c.name for c in check_crosses_against([Cross([Bucketize("age", [18]), "country"], 10)],
    ...                                        {"age": "float", "country": "string"})]
    ['age_X_country']
    >>> check_crosses_against([Cross(["age", "country"], 10)], {"age": "float", "country": "string"})
    Traceback (most recent call last):
    ...
    beam_cross.core.spec.CrossSpecError: Cross `age_X_country` crosses the float column `age` as it is; floats are crossed through a `Bucketize` only (Cross([Bucketize("age", [...]), ...])).
    """
    checked = check_crosses(crosses, require_learned=require_learned)
    if not isinstance(columns, Mapping):
        columns = dict.fromkeys(columns)
    bad = {k: v for k, v in columns.items() if v is not None and v not in KINDS}
    if bad:
        raise ValueError(f"Column kinds must be one of {KINDS} or None. Received: {bad}")
    for cross in checked:
        if cross.name in columns:
            raise CrossSpecError(f"Cross `{cross.name}` is named like an input column, which it would overwrite; "
                                 "give the cross another name (Cross(..., name=...)).",
                                 cross.name, NAMED_LIKE_A_COLUMN, [cross.name])
        missing = [f for f in cross.features if f not in columns]
        if missing:
            raise CrossSpecError(f"Cross `{cross.name}` needs features {missing}, which the input does not have. "
                                 f"Received: columns={list(columns)}", cross.name, MISSING_COLUMN, missing)
        for feature, transform in zip(cross.features, cross.transforms):
            kind = columns[feature]
            if transform is None and kind == "float":
                raise CrossSpecError(
                    f"Cross `{cross.name}` crosses the float column `{feature}` as it is; floats are crossed "
                    f'through a `Bucketize` only (Cross([Bucketize("{feature}", [...]), ...])).',
                    cross.name, RAW_FLOAT, [feature],
                )
            if transform is not None and kind is not None and kind not in transform.takes:
                takes = " or ".join(f"{k}s" for k in transform.takes)
                raise CrossSpecError(f"Cross `{cross.name}`: `{type(transform).__name__}` of column `{feature}` takes "
                                     f"{takes}, but the column holds {kind}s.", cross.name, WRONG_KIND, [feature])
    return checked
