"""What a feature value becomes, and the one error type for values that cannot be crossed.

Argument errors (a bad ``num_bins``, too few features) are plain ``TypeError`` / ``ValueError``.
A bad *value* in a feature raises :class:`FeatureError`, which also carries a short machine-readable
``reason`` so that pipelines can count and route rejected rows by cause.

The value rule (:func:`value_kind`), applied to each value on its own, whatever its neighbours,
its batch, the runner or ``PYTHONHASHSEED``:

- Python and NumPy integers of every width, and 0-d integer arrays, are their int64 bits (a
  uint64 above ``2**63 - 1`` keeps its 64 bits); ``bool`` / ``np.bool_`` are not integers here.
- ``str`` / ``np.str_`` are their UTF-8 bytes (every character, also the trailing NULs NumPy's
  repr hides); ``bytes`` are their bytes; an ``np.bytes_`` is its bytes less its trailing NULs,
  as NumPy itself gives the values of an ``S`` array (and as pickling, hence Beam, carries an
  ``np.bytes_``); a 0-d string array is the string it holds.
- Rejected, each with a reason: ``None`` (``null``); floats and complex numbers of any type, and
  0-d float arrays (``float``); bools (``bool``); integers outside int64 / uint64 (``out_of_range``);
  sets and other unordered containers, dicts, ``bytearray`` / ``memoryview`` (mutable buffers: pass
  ``bytes(value)``), strings that are not valid Unicode (lone surrogates) and any other type
  (``unsupported_type``).
- A list, tuple or 1-D array makes a multivalent value; its items follow the same rule, and a list
  inside it is ``nested``.

>>> import numpy as np
>>> [value_kind(v) for v in (7, np.uint8(7), np.array(5), "fr", b"fr", np.float16(1.5), True, {1, 2})]
['int', 'int', 'int', 'string', 'string', 'float', 'bool', 'unsupported_type']
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import numpy as np

# Reasons, also used as Beam metric names and in rejected-row records.
MISSING = "missing"  # the feature is absent from the row
NULL = "null"  # None / Arrow null in a single-valued feature, or inside a list
FLOAT = "float"
BOOL = "bool"
NESTED = "nested"  # a list where a scalar is expected, or a list of lists
MIXED_KINDS = "mixed_kinds"  # strings and integers in one column
UNSUPPORTED = "unsupported_type"
OUT_OF_RANGE = "out_of_range"  # an integer outside int64 / uint64
SHAPE = "shape"  # a column of the wrong rank or length
NAME_CLASH = "name_clash"  # a field already named like a cross, or a feature named twice in a RecordBatch
MALFORMED = "malformed"  # Arrow data breaking Arrow's own layout rules (e.g. decreasing list offsets)
# Reasons of the transforms of beam_cross.core.transforms (Bucketize, Lookup, Identity, Hash).
WRONG_KIND = "wrong_kind"  # a value of a kind the transform does not take (a string into Bucketize)
OOV = "oov"  # a value outside the vocabulary of a Lookup without OOV ids (num_oov_indices=0, Keras style)
NO_ID = "no_id"  # a value that TF drops before a feature-column lookup ('' / -1 in a single-valued feature)

REASONS = (MISSING, NULL, FLOAT, BOOL, NESTED, MIXED_KINDS, UNSUPPORTED, OUT_OF_RANGE, SHAPE, NAME_CLASH, MALFORMED,
           WRONG_KIND, OOV, NO_ID)

# The two kinds of value that can be crossed.
STRING = "string"
INT = "int"

# What each reason means, in the words every error message uses.
DETAILS = {
    MISSING: "the feature is missing from the row.",
    NULL: "missing values (None) cannot be crossed; fill or filter them first.",
    FLOAT: "floats cannot be crossed; only strings and integers can (bucketize or cast first).",
    BOOL: "booleans cannot be crossed; only strings and integers can (cast to int first).",
    NESTED: "a nested list cannot be crossed; a value must be a string, an integer or a list of them.",
    OUT_OF_RANGE: "integers must fit in int64 (or uint64).",
    UNSUPPORTED: "only strings, bytes and integers can be crossed, alone or in lists.",
    MIXED_KINDS: "a column must hold only strings or only integers, not both.",
    NAME_CLASH: "the element already has a field named like the cross.",
    MALFORMED: "the Arrow data breaks Arrow's layout rules.",
    WRONG_KIND: "the transform does not take values of this kind.",
    OOV: "the value is not in the vocabulary, and the lookup has no OOV ids (num_oov_indices=0).",
    NO_ID: (
        "TensorFlow's feature columns drop '' (strings) and -1 (integers) from a single-valued feature before "
        "the lookup, so the row has no id and no cross; filter the row, or pass the value in a list (a list's "
        "values are looked up as they are)."
    ),
}

# Exact types decided by one dict lookup (the common case); anything else goes through isinstance.
INT_TYPES = frozenset(
    {int} | {t for t in np.sctypeDict.values() if issubclass(t, np.integer) and not issubclass(t, np.timedelta64)}
)
STRING_TYPES = frozenset({str, bytes, np.str_, np.bytes_})
EXACT_KINDS = {
    **dict.fromkeys(INT_TYPES, INT),
    **dict.fromkeys(STRING_TYPES, STRING),
    **dict.fromkeys({float, complex, *(t for t in np.sctypeDict.values() if issubclass(t, np.inexact))}, FLOAT),
    bool: BOOL,
    np.bool_: BOOL,
    type(None): NULL,
}
_INT64_MIN, _UINT64_END = -(2**63), 2**64

_SPECIFIC = (
    ((Set, frozenset), "a set has no order, so its crosses would change between runs; pass a sorted list."),
    ((Mapping,), "a dict cannot be crossed; pass one of its values, or a list."),
    ((bytearray, memoryview), "a mutable buffer (bytearray, memoryview) is not crossed; pass bytes(value)."),
)
UNENCODABLE = "a string must be valid Unicode (encodable as UTF-8), as TensorFlow hashes its UTF-8 bytes."


def is_list_value(value) -> bool:
    """Whether ``value`` is a multivalent value: a list, a tuple or an array of rank >= 1."""
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def value_kind(value) -> str:
    """``"string"``, ``"int"``, or the reason (one of :data:`REASONS`) that rejects the scalar ``value``.

    The module docstring states the rule. A list-like value gives ``nested`` (a list is not a scalar).
    """
    kind = EXACT_KINDS.get(type(value))
    if kind is INT:
        if type(value) is int and not _INT64_MIN <= value < _UINT64_END:
            return OUT_OF_RANGE
        return INT
    if kind is STRING:
        return STRING if not isinstance(value, str) or _encodable(value) else UNSUPPORTED
    if kind is not None:
        return kind
    if isinstance(value, np.ndarray):
        if value.ndim:
            return NESTED
        item = value[()]  # a 0-d array is the scalar it holds
        return NESTED if is_list_value(item) else value_kind(item)
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, (str, bytes)):
        return STRING if not isinstance(value, str) or _encodable(value) else UNSUPPORTED
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.timedelta64):
        return INT if _INT64_MIN <= int(value) < _UINT64_END else OUT_OF_RANGE
    if type(value).__name__ == "NAType":  # pandas.NA, without importing pandas
        return NULL
    if isinstance(value, (float, complex, np.inexact)):
        return FLOAT
    if isinstance(value, (list, tuple)):
        return NESTED
    return UNSUPPORTED


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def detail_for(reason: str, value) -> str:
    """The words of a rejection: the reason's text, made specific for the unsupported values."""
    if reason == UNSUPPORTED:
        if isinstance(value, str):
            return UNENCODABLE
        for types, text in _SPECIFIC:
            if isinstance(value, types):
                return text
    return DETAILS[reason]


def canonical(value, kind: str):
    """A value of ``kind`` (already checked by :func:`value_kind`) as a plain ``int`` or ``bytes``."""
    if isinstance(value, np.ndarray):
        value = value[()]
    if kind == INT:
        return int(value) % _UINT64_END
    if isinstance(value, str):
        return value.encode("utf-8")
    if type(value) is np.bytes_:  # NumPy's value of an 'S' item: trailing NULs are padding
        return bytes(value).rstrip(b"\x00")
    return b"".join((value,))


# The detail of an element that is not a row at all (its FeatureError has no feature).
NOT_A_ROW = (
    "CrossFeatures takes dicts, schema'd rows (beam.Row, NamedTuple), pyarrow RecordBatches or Tables, "
    "or pandas DataFrames; this element is none of them."
)


def describe(value: Any) -> str:
    """What ``value`` is, in plain words: its type, its size, and the start of its repr.

    >>> describe("abc")
    "a str: 'abc'"
    >>> describe([1, 2])
    'a list of 2 items: [1, 2]'
    """
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    article = "an" if name[0].lower() in "aeiou" else "a"
    size = f" of {len(value)} items" if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else ""
    text = " ".join(repr(value).split())  # multi-line reprs (Arrow, pandas) on one line
    return f"{article} {name}{size}: {text if len(text) <= 80 else text[:77] + '...'}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FeatureError(ValueError):
    """A feature holds a value that cannot be crossed.

    Attributes:
        feature: the feature (column) name, or ``"features[i]"`` for an unnamed column.
        reason: one of :data:`REASONS`.
        detail: what is wrong, in words.
        value: the offending value (or a description of the column).
        row: the row of the offending value, when known.
        cross: the name of the cross being computed, when known.
    """

    def __init__(self, feature, reason, detail, value=None, row=None, cross=None):
        self.feature = feature
        self.reason = reason
        self.detail = detail
        self.value = value
        self.row = row
        self.cross = cross
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.feature is None:  # the element itself is not a row
            return f"{self.detail} Received: {describe(self.value)}"
        where = f"Feature `{self.feature}`"
        if self.cross is not None:
            where += f" of cross `{self.cross}`"
        text = f"{where}: {self.detail} Received: value={_short(self.value)}"
        if self.row is not None:
            text += f" at row {self.row}"
        return text

    def __reduce__(self):  # keep the fields through pickling (Beam ships errors between workers)
        return (
            type(self),
            (self.feature, self.reason, self.detail, self.value, self.row, self.cross),
        )

    def in_cross(self, cross: str) -> FeatureError:
        """The same error, naming the cross it was found in."""
        return FeatureError(self.feature, self.reason, self.detail, self.value, self.row, cross)
