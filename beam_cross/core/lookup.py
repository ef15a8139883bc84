"""``Lookup``: vocabulary ids, as Keras ``StringLookup`` / ``IntegerLookup`` or ``categorical_column_with_vocabulary_list``.

A string is found by its FarmHash fingerprint in the vocabulary's sorted fingerprints, then compared
byte for byte with the token found (so a fingerprint collision never gives a wrong id); the same
fingerprint gives the hashed OOV id (``tf.strings.to_hash_bucket_fast(x, k)`` is ``Fingerprint64(x) % k``).
An integer is found by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core import errors
from beam_cross.core.raw_values import INT, STRING, Part
from beam_cross.core.transform_base import (
    INT64_MAX,
    INT64_MIN,
    Transform,
    check_count,
    check_name,
    decimal_fingerprints,
    string_fingerprints,
)

STYLES = ("keras", "feature_column")


def _check_vocabulary(vocabulary) -> tuple:
    try:
        tokens = tuple(vocabulary)
    except TypeError:
        tokens = None
    if isinstance(vocabulary, (str, bytes)) or not tokens:
        raise TypeError(f"`vocabulary` must be a non-empty list of strings or of ints. Received: vocabulary={vocabulary!r}")
    if all(isinstance(t, str) for t in tokens):
        kind = STRING
    elif all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in tokens):
        kind = INT
        tokens = tuple(int(t) for t in tokens)
        if not all(INT64_MIN <= t <= INT64_MAX for t in tokens):
            raise ValueError(f"`vocabulary` integers must fit in int64. Received: vocabulary={_short_list(tokens)}")
    else:
        raise TypeError(f"`vocabulary` must hold only strings or only ints. Received: vocabulary={_short_list(tokens)}")
    if len(set(tokens)) != len(tokens):
        seen, repeated = set(), []
        for t in tokens:
            if t in seen:
                repeated.append(t)
            seen.add(t)
        raise ValueError(f"`vocabulary` must not repeat a token. Received: repeated tokens {_short_list(repeated)}")
    return tokens, kind


def _short_list(items, limit: int = 8) -> str:
    items = list(items)
    return repr(items) if len(items) <= limit else repr(items[:limit])[:-1] + f", ... ({len(items)} in all)]"


@dataclass(frozen=True, init=False, repr=False)
class Lookup(Transform):
    """Vocabulary ids, as Keras ``StringLookup`` / ``IntegerLookup`` or a ``categorical_column_with_vocabulary_list``.

    ``style="keras"`` (``output_mode="int"``, no mask token): the OOV ids come first, then the
    vocabulary from ``num_oov_indices`` on. With ``num_oov_indices=1`` an OOV value is 0; with ``k > 1``
    a string is ``tf.strings.to_hash_bucket_fast(x, k)`` and an integer ``floormod(x, k)``
    (``IntegerLookup``'s default ``oov_method="floormod"``); with 0 an OOV value is a FeatureError
    (reason ``oov``), as the layer fails.

    ``style="feature_column"``: the vocabulary from 0; an OOV value is ``len(vocabulary) + hash % k``
    with ``num_oov_indices=k`` OOV buckets (``num_oov_buckets``; an integer hashed as its decimal
    string), else ``default_value`` (-1, which is crossed). Feature columns drop ``''`` / ``-1`` from a
    single-valued input before the lookup: TF gives that row no cross, beam_cross a FeatureError
    (reason ``no_id``); in a list they are looked up as any value.

    Args:
        name: the raw column: strings for a vocabulary of strings, integers for one of ints.
        vocabulary: the tokens, in id order, unique (strings, or int64 integers).
        num_oov_indices: the OOV ids (``style="keras"``) or buckets (``"feature_column"``).
            Defaults to None: 1 for ``"keras"`` (``StringLookup``'s default), 0 for ``"feature_column"``
            (``num_oov_buckets``' default).
        style: ``"keras"`` or ``"feature_column"``. Defaults to ``"keras"``.
        default_value: the id of an OOV value with ``style="feature_column"`` and no OOV bucket.
            Defaults to None: -1, TF's default.

    >>> Lookup("w", ["a", "b", "c"], num_oov_indices=3)(["a", "zz", "yy", "xx"]).tolist()
    [3, 1, 1, 2]
    >>> Lookup("w", ["a", "b", "c"], style="feature_column")(["c", "zz"]).tolist()
    [2, -1]
    """

    vocabulary: tuple
    num_oov_indices: int
    style: str
    default_value: int | None
    _cache: dict = field(default_factory=dict, compare=False)
    kind: ClassVar[str] = "lookup"

    def __init__(self, name, vocabulary, *, num_oov_indices=None, style="keras", default_value=None):
        check_name(name)
        if style not in STYLES:
            raise ValueError(f"`style` must be one of {STYLES}. Received: style={style!r}")
        tokens, token_kind = _check_vocabulary(vocabulary)
        if num_oov_indices is None:
            num_oov_indices = 1 if style == "keras" else 0
        num_oov_indices = check_count(num_oov_indices, "num_oov_indices", 0)
        if style == "keras":
            if default_value is not None:
                raise ValueError("`default_value` is for style='feature_column'; Keras lookups give OOV values "
                                 f"their OOV ids. Received: default_value={default_value!r}")
            reserved = "[UNK]" if token_kind == STRING else -1
            if reserved in tokens:
                raise ValueError(f"`vocabulary` must not hold the OOV token {reserved!r} of Keras lookups. "
                                 f"Received: vocabulary={_short_list(tokens)}")
        elif default_value is not None:
            if num_oov_indices:
                raise ValueError("`default_value` and OOV buckets (num_oov_indices > 0) exclude each other, as in "
                                 f"categorical_column_with_vocabulary_list. Received: default_value={default_value!r}, "
                                 f"num_oov_indices={num_oov_indices}")
            default_value = check_count(default_value, "default_value", INT64_MIN)
        elif not num_oov_indices:
            default_value = -1
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "vocabulary", tokens)
        set_(self, "num_oov_indices", num_oov_indices)
        set_(self, "style", style)
        set_(self, "default_value", default_value)
        set_(self, "_cache", {"kind": token_kind})

    @property
    def takes(self):
        return (self._cache["kind"],)

    def __hash__(self):  # cached: a vocabulary may hold 100,000 tokens
        cached = self._cache.get("hash")
        if cached is None:
            cached = self._cache["hash"] = hash((self.kind, self.name, self.vocabulary, self.num_oov_indices,
                                                 self.style, self.default_value))
        return cached

    def __eq__(self, other):
        return type(other) is Lookup and (self is other or self.to_dict() == other.to_dict())

    def __repr__(self):
        return (f"Lookup({self.name!r}, {_short_list(self.vocabulary, 5)}, num_oov_indices={self.num_oov_indices}, "
                f"style={self.style!r}" + (f", default_value={self.default_value}" if self.default_value is not None else "")
                + ")")

    def __getstate__(self):
        return {**self.__dict__, "_cache": {"kind": self._cache["kind"]}}

    def to_dict(self) -> dict:
        config = {"transform": self.kind, "name": self.name, "vocabulary": list(self.vocabulary),
                  "num_oov_indices": self.num_oov_indices, "style": self.style}
        if self.default_value is not None:
            config["default_value"] = self.default_value
        return config

    def _index(self):
        """(sorted keys, their vocabulary positions, the tokens as Arrow): strings are found by
        fingerprint, then compared byte for byte; integers by value."""
        index = self._cache.get("index")
        if index is None:
            if self._cache["kind"] == STRING:
                tokens = pa.array([t.encode("utf-8") for t in self.vocabulary], pa.large_binary())
                keys = string_fingerprints(tokens, "vocabulary")
            else:
                tokens, keys = None, np.array(self.vocabulary, np.int64)
            order = np.argsort(keys, kind="stable")
            index = self._cache["index"] = (keys[order], order, tokens)
        return index

    def positions(self, part: Part, keys: np.ndarray) -> np.ndarray:
        """The vocabulary position of each value of ``part`` (``keys``: its fingerprints or ints), -1 if absent."""
        sorted_keys, order, tokens = self._index()
        at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        found = sorted_keys[at] == keys
        where = order[at]
        if tokens is not None and found.any():  # a fingerprint match is checked on the bytes themselves
            hits = np.flatnonzero(found)
            equal = pc.equal(part.data.take(pa.array(hits)), tokens.take(pa.array(where[hits])))
            found[hits] = equal.to_numpy(zero_copy_only=False)
        return np.where(found, where, -1)

    def _part_ids(self, part, raw, feature):
        strings = part.kind == STRING
        if self.style == "feature_column":
            self._dropped(part, raw, feature)
        data = part.data if strings else self._int64(part, raw, feature)
        fingerprints = string_fingerprints(data, feature) if strings else None
        found = self.positions(part, fingerprints if strings else data)
        oov = found < 0
        k = self.num_oov_indices
        if self.style == "keras":
            if k == 0:
                self._first(part, raw, feature, oov, errors.OOV, errors.DETAILS[errors.OOV])
            ids = found + k
            if k > 1 and oov.any():
                hashed = (fingerprints % np.uint64(k)).astype(np.int64) if strings else np.mod(data, k)
                ids = np.where(oov, hashed, ids)
            elif k == 1:
                ids[oov] = 0
            return ids
        ids = found
        if oov.any():
            if k:
                keys = fingerprints if strings else decimal_fingerprints(data, feature)
                ids = np.where(oov, len(self.vocabulary) + (keys % np.uint64(k)).astype(np.int64), ids)
            else:
                ids[oov] = self.default_value
        return ids
