"""``Lookup``: vocabulary ids, as Keras ``StringLookup`` / ``IntegerLookup`` or ``categorical_column_with_vocabulary_list``.

A string is found by :class:`~beam_cross.core.vocabulary.VocabularyIndex` (exact; its fingerprint also
gives the hashed OOV id, ``tf.strings.to_hash_bucket_fast(x, k)`` being ``Fingerprint64(x) % k``); an
integer by value, in the sorted vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from beam_cross.core import errors
from beam_cross.core.raw_values import INT, STRING
from beam_cross.core.transform_base import (
    INT64_MAX,
    INT64_MIN,
    Transform,
    check_count,
    check_name,
    decimal_fingerprints,
)
from beam_cross.core.vocabulary import VocabularyIndex, apply_rule, pack_tokens, unpickled_state

STYLES = ("keras", "feature_column")
_EMPTY_FINGERPRINT = np.uint64(0x9AE16A3B2F90404F)  # Fingerprint64(b"")


def _check_vocabulary(vocabulary) -> tuple:
    try:
        tokens = tuple(vocabulary)
    except TypeError:
        tokens = None
    if isinstance(vocabulary, (str, bytes)) or not tokens:
        raise TypeError(f"`vocabulary` must be a non-empty list of strings or of ints. Received: vocabulary={vocabulary!r}")
    if all(isinstance(t, str) for t in tokens):
        kind = STRING
        try:  # one pass: a vocabulary may hold 100,000 tokens
            "".join(tokens).encode("utf-8")
        except UnicodeEncodeError:
            bad = next(t for t in tokens if not _is_utf8(t))
            raise ValueError("`vocabulary` tokens must be valid Unicode: a lone surrogate has no UTF-8 bytes to "
                             f"look up. Received: token {bad!r}") from None
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


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short_list(items, limit: int = 8) -> str:
    items = list(items)
    return repr(items) if len(items) <= limit else repr(items[:limit])[:-1] + f", ... ({len(items)} in all)]"


@dataclass(frozen=True, init=False, repr=False)
class Lookup(Transform):
    """Vocabulary ids, as Keras ``StringLookup`` / ``IntegerLookup`` or a ``categorical_column_with_vocabulary_list``.

    ``style="keras"`` (``output_mode="int"``, no mask token): the OOV ids come first, then the
    vocabulary from ``num_oov_indices`` on. Keras reads a string vocabulary through NumPy, which drops
    each token's trailing NULs (``"a\\x00"`` is looked up as ``"a"``); so does this style
    (``lookup_tokens``). With ``num_oov_indices=1`` an OOV value is 0; with ``k > 1``
    a string is ``tf.strings.to_hash_bucket_fast(x, k)`` and an integer ``floormod(x, k)``
    (``IntegerLookup``'s default ``oov_method="floormod"``); with 0 an OOV value is a FeatureError
    (reason ``oov``), as the layer fails.

    ``style="feature_column"``: the vocabulary from 0; an OOV value is ``len(vocabulary) + hash % k``
    with ``num_oov_indices=k`` OOV buckets (``num_oov_buckets``; an integer hashed as its decimal
    string), else ``default_value`` (-1, which is crossed). Feature columns drop ``''`` / ``-1`` from a
    single-valued input before the lookup: TF gives that row no cross, beam_cross a FeatureError
    (reason ``no_id``); in a list they are looked up as any value.

    ``Lookup(name)`` without a vocabulary (Keras ``StringLookup(max_tokens=...)`` before ``adapt``) has
    its vocabulary still to learn (:meth:`learn`): the column's tokens by count descending, ties by
    token descending (Keras ``adapt``'s order; tf.Transform's ``vocabulary`` order too), those seen
    fewer than ``min_count`` times dropped, at most ``max_tokens`` of them. It crosses nothing until
    learned.

    Args:
        name: the raw column: strings for a vocabulary of strings, integers for one of ints.
        vocabulary: the tokens, in id order, unique (strings, or int64 integers). None (the
            default): to learn.
        max_tokens: the most ids of a learned vocabulary, counted as Keras counts them with
            ``style="keras"``: the OOV ids included (``max_tokens - num_oov_indices`` tokens; no mask
            token here); with ``style="feature_column"`` the most tokens of the vocabulary (its
            ``vocabulary_size``; OOV buckets come on top). None: no limit.
        min_count: the fewest times a token must occur to be learned (tf.Transform's
            ``frequency_threshold``). Defaults to 1.
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
    >>> Lookup("w", max_tokens=3).learn({"x": 1, "y": 2, "z": 2, "w": 1}).vocabulary  # 3 ids: OOV, z, y
    ('z', 'y')
    """

    vocabulary: tuple
    num_oov_indices: int
    style: str
    default_value: int | None
    max_tokens: int | None
    min_count: int
    _cache: dict = field(default_factory=dict, compare=False)
    kind: ClassVar[str] = "lookup"
    learns: ClassVar[str] = "vocabulary"

    def __init__(self, name, vocabulary=None, *, num_oov_indices=None, style="keras", default_value=None,
                 max_tokens=None, min_count=1):
        check_name(name)
        if style not in STYLES:
            raise ValueError(f"`style` must be one of {STYLES}. Received: style={style!r}")
        if num_oov_indices is None:
            num_oov_indices = 1 if style == "keras" else 0
        num_oov_indices = check_count(num_oov_indices, "num_oov_indices", 0)
        min_count = check_count(min_count, "min_count", 1)
        if max_tokens is not None:
            max_tokens = check_count(max_tokens, "max_tokens", 1)
            if style == "keras" and max_tokens <= num_oov_indices:
                raise ValueError(f"`max_tokens` counts the {num_oov_indices} OOV ids of a Keras lookup, so it must be "
                                 f"more than num_oov_indices={num_oov_indices} (Keras' count). "
                                 f"Received: max_tokens={max_tokens}")
        if vocabulary is None:
            tokens, token_kind = None, None
        else:
            tokens, token_kind = _check_vocabulary(vocabulary)
            if max_tokens is not None and len(tokens) > self._most_tokens(max_tokens, style, num_oov_indices):
                raise ValueError(f"`vocabulary` holds {len(tokens)} tokens, more than max_tokens={max_tokens} allows "
                                 f"(style={style!r}). Received: vocabulary={_short_list(tokens)}")
        if style == "keras" and default_value is not None:
            raise ValueError("`default_value` is for style='feature_column'; Keras lookups give OOV values "
                             f"their OOV ids. Received: default_value={default_value!r}")
        if style == "keras" and tokens is not None:
            reserved = "[UNK]" if token_kind == STRING else -1
            if token_kind == STRING:  # Keras reads its vocabulary through NumPy, which drops trailing NULs
                stripped = [t.rstrip("\x00") for t in tokens]
                if len(set(stripped)) != len(stripped):
                    raise ValueError("`vocabulary` must not repeat a token once trailing NULs are dropped (Keras "
                                     f"reads it through NumPy, which drops them). Received: vocabulary={_short_list(tokens)}")
            if reserved in (stripped if token_kind == STRING else tokens):
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
        set_(self, "max_tokens", max_tokens)
        set_(self, "min_count", min_count)
        set_(self, "_cache", {"kind": token_kind})
        keys = tuple(stripped) if style == "keras" and token_kind == STRING else tokens
        set_(self, "lookup_tokens", keys)

    @staticmethod
    def _most_tokens(max_tokens, style, num_oov_indices) -> int | None:
        if max_tokens is None:
            return None
        return max_tokens - num_oov_indices if style == "keras" else max_tokens

    @property
    def most_tokens(self) -> int | None:
        """The most tokens a learned vocabulary holds (None: no limit)."""
        return self._most_tokens(self.max_tokens, self.style, self.num_oov_indices)

    @property
    def learned(self) -> bool:
        return self.vocabulary is not None

    def describe(self) -> str:
        if self.learned:
            return repr(self)
        extra = "".join(f", {k}={v!r}" for k, v in (("max_tokens", self.max_tokens), ("min_count", self.min_count))
                        if v != {"max_tokens": None, "min_count": 1}[k])
        return f"Lookup({self.name!r}{extra}, style={self.style!r})"

    @property
    def takes(self):
        kind = self._cache["kind"]
        return (STRING, INT) if kind is None else (kind,)

    def skipped_tokens(self, kind: str) -> tuple:
        """The tokens a learned vocabulary never holds: Keras drops its OOV token (``"[UNK]"``, ``-1``)
        from the counts; feature columns drop ``""`` / ``-1`` from their input before a lookup."""
        if self.style == "keras":
            return ("[UNK]",) if kind == STRING else (-1,)
        return ("",) if kind == STRING else (-1,)

    def learn(self, counts) -> Lookup:
        """The learned transform, from the count of each token of the column (a mapping or ``(token, count)``
        pairs; a token is a ``str``, UTF-8 ``bytes`` or an int, one kind per column): count descending,
        ties by token descending (Keras ``adapt``; strings compare as their UTF-8 bytes), tokens below
        ``min_count`` and :meth:`skipped_tokens` dropped, the first :attr:`most_tokens` kept."""
        pairs = counts.items() if isinstance(counts, dict) else counts
        totals: dict = {}
        kinds = set()
        for token, count in pairs:
            if isinstance(token, bytes):
                try:
                    token = token.decode("utf-8")
                except UnicodeDecodeError:
                    raise errors.FeatureError(self.name, errors.UNSUPPORTED, "a learned vocabulary holds UTF-8 "
                                              "strings; this token is not valid UTF-8.", token) from None
            kinds.add(STRING if isinstance(token, str) else INT)
            totals[token] = totals.get(token, 0) + int(count)
        if len(kinds) > 1:
            raise errors.FeatureError(self.name, errors.MIXED_KINDS, f"{self.describe()} learns a vocabulary of "
                                      "strings or of ints, and the column holds both.", "strings and ints")
        kind = kinds.pop() if kinds else STRING
        for token in self.skipped_tokens(kind):
            totals.pop(token, None)
        kept = [(count, token) for token, count in totals.items() if count >= self.min_count]
        if kind == STRING:
            kept.sort(key=lambda ct: (ct[0], ct[1].encode("utf-8", "surrogatepass")), reverse=True)
        else:
            kept.sort(reverse=True)
        most = self.most_tokens
        tokens = [token for _, token in (kept if most is None else kept[:most])]
        if not tokens:
            raise ValueError(f"Feature `{self.name}`: {self.describe()} learned an empty vocabulary: the column holds "
                             f"no token seen at least min_count={self.min_count} times.")
        return Lookup(self.name, tokens, num_oov_indices=self.num_oov_indices, style=self.style,
                      default_value=self.default_value,
                      max_tokens=self.max_tokens, min_count=self.min_count)

    def __hash__(self):  # cached: a vocabulary may hold 100,000 tokens
        cached = self._cache.get("hash")
        if cached is None:
            cached = self._cache["hash"] = hash((self.kind, self.name, self.vocabulary, self.num_oov_indices,
                                                 self.style, self.default_value, self.max_tokens, self.min_count))
        return cached

    def __eq__(self, other):
        return type(other) is Lookup and (self is other or self.to_dict() == other.to_dict())

    def __repr__(self):
        vocabulary = _short_list(self.vocabulary, 5) if self.vocabulary is not None else "None"
        extra = "".join(f", {k}={v!r}" for k, v in (("max_tokens", self.max_tokens), ("min_count", self.min_count))
                        if v != {"max_tokens": None, "min_count": 1}[k])
        return (f"Lookup({self.name!r}, {vocabulary}, num_oov_indices={self.num_oov_indices}, "
                f"style={self.style!r}" + (f", default_value={self.default_value}" if self.default_value is not None else "")
                + extra + ")")

    def __getstate__(self):  # the vocabulary packed once (vocabulary.pack_tokens), however often it is pickled
        packed = self._cache.get("packed")
        if packed is None:
            same = self.lookup_tokens == self.vocabulary
            packed = self._cache["packed"] = (pack_tokens(self.vocabulary),
                                              None if same else pack_tokens(self.lookup_tokens))
        return {**self.__dict__, "_cache": {"kind": self._cache["kind"]}, "vocabulary": packed[0],
                "lookup_tokens": packed[1]}

    def __setstate__(self, state):
        self.__dict__.update(unpickled_state(state))

    def to_dict(self) -> dict:
        config = {"transform": self.kind, "name": self.name}
        if self.vocabulary is not None:
            config["vocabulary"] = list(self.vocabulary)
        config.update(num_oov_indices=self.num_oov_indices, style=self.style)
        if self.default_value is not None:
            config["default_value"] = self.default_value
        if self.max_tokens is not None:
            config["max_tokens"] = self.max_tokens
        if self.min_count != 1:
            config["min_count"] = self.min_count
        return config

    def _strings(self) -> VocabularyIndex:
        index = self._cache.get("strings")
        if index is None:
            index = self._cache["strings"] = VocabularyIndex(self.lookup_tokens)
        return index

    def _int_positions(self, data: np.ndarray) -> np.ndarray:
        index = self._cache.get("ints")
        if index is None:
            keys = np.array(self.vocabulary, np.int64)
            order = np.argsort(keys, kind="stable")
            index = self._cache["ints"] = (keys[order], order)
        keys, order = index
        at = np.minimum(np.searchsorted(keys, data), len(keys) - 1)
        return np.where(keys[at] == data, order[at], -1)

    def rule(self) -> tuple[int, int, int, int]:
        """``(base, oov_base, oov_buckets, fallback)`` of :class:`~beam_cross.core.vocabulary.VocabularyIndex`:
        a token's position + base; an OOV value's ``oov_base + hash % oov_buckets``, or ``fallback``."""
        k = self.num_oov_indices
        if self.style == "keras":
            return (k, 0, k, -1)  # k = 0: OOV is -1, refused by the caller
        if k:
            return (0, len(self.vocabulary), k, 0)
        return (0, 0, 0, self.default_value)

    def fast_ids(self, values):
        """The ids of a 1-D (or ``(n, 1)``) object array or list of exact ``str`` / ``bytes``, through the
        compiled kernel in one pass; None for any other column, or one the general path must refuse."""
        self.check_learned()
        if self._cache["kind"] != STRING:
            return None
        if isinstance(values, np.ndarray):
            if values.dtype != object or not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
                return None
            shape, flat = values.shape, values.reshape(-1)
        elif type(values) is list:
            shape, flat = (len(values),), np.fromiter(values, object, len(values))
        else:
            return None
        found = self._strings().ids_of_objects(flat, self.rule())
        if found is None:
            return None
        ids, fingerprints = found
        if self.style == "keras" and self.num_oov_indices == 0 and (ids < 0).any():
            return None  # an OOV value: refused by the general path, which names it
        if self.style == "feature_column" and (fingerprints == _EMPTY_FINGERPRINT).any():
            return None  # maybe '' (dropped by feature columns): the general path checks
        return ids.reshape(shape)

    def _part_ids(self, part, raw, feature):
        if self.style == "feature_column":
            self._dropped(part, raw, feature)
        if part.kind == STRING:
            ids = positions = self._strings().ids(part.data, self.rule())
        else:
            data = self._int64(part, raw, feature)
            positions = self._int_positions(data)
            ids = self._int_ids(positions, data, feature)
        if self.style == "keras" and self.num_oov_indices == 0:  # OOV is -1 in both, and refused
            self._first(part, raw, feature, positions < 0, errors.OOV, errors.DETAILS[errors.OOV])
        return ids

    def _int_ids(self, positions, data, feature):
        """Integer ids: Keras ``IntegerLookup`` hashes an OOV int by ``floormod``, feature columns by the
        ``Fingerprint64`` of its decimal string."""
        k = self.num_oov_indices
        rows = np.flatnonzero(positions < 0)
        if self.style == "keras":
            ids = positions + k if k else positions.copy()
            if k > 1 and len(rows):
                ids[rows] = np.mod(data[rows], k)
            return ids
        keys = np.zeros(len(data), np.uint64)
        if k and len(rows):
            keys[rows] = decimal_fingerprints(data[rows], feature)
        return apply_rule(positions, keys, self.rule())
