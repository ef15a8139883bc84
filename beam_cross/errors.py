"""The one error type for feature values that cannot be crossed.

Argument errors (a bad ``num_bins``, too few features) are plain ``TypeError`` / ``ValueError``.
A bad *value* in a feature raises :class:`FeatureError`, which also carries a short machine-readable
``reason`` so that pipelines can count and route rejected rows by cause.
"""

from __future__ import annotations

from typing import Any

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

REASONS = (MISSING, NULL, FLOAT, BOOL, NESTED, MIXED_KINDS, UNSUPPORTED, OUT_OF_RANGE, SHAPE)

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
}


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
