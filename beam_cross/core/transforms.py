"""Transforms before a cross: the int64 ids of bucketized, looked-up, identity and hashed features.

Each transform names a raw column and turns each of its values into an int64 id, bit for bit as
the TensorFlow / Keras op it is named after (``crossing-semantics.md`` §10); the ids are then crossed
as integers, as ``crossed_column`` and Keras ``FeatureSpace`` cross them. No TensorFlow here: NumPy,
Arrow and FarmHash (``tf.strings.to_hash_bucket_fast(x, n)`` is ``Fingerprint64(x) % n``).

- :class:`Bucketize`: Keras ``Discretization(bin_boundaries=...)``, a ``bucketized_column`` of a
  float32 ``numeric_column``;
- :class:`Lookup`: Keras ``StringLookup`` / ``IntegerLookup`` (``style="keras"``) or
  ``categorical_column_with_vocabulary_list`` (``style="feature_column"``);
- :class:`Identity`: ``categorical_column_with_identity``;
- :class:`Hash`: Keras ``Hashing(num_bins)`` without salt.

A value a transform cannot take (a string into ``Bucketize``, a float into a ``Lookup``) is a
:class:`~beam_cross.FeatureError` naming the feature, the problem and the value; never a silent id.
A multivalent value (a list) is transformed value by value.

>>> Bucketize("age", [18, 25, 35])([17, 18, 40.5, float("nan")]).tolist()
[0, 1, 3, 3]
>>> Lookup("country", ["fr", "us"])(["us", "fr", "de"]).tolist()
[2, 1, 0]
>>> Hash("country", 10)(["a", "b"]).tolist(), Hash("hour", 10)([1, 2]).tolist()
([9, 2], [9, 9])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from beam_cross.core import _fingerprint, errors
from beam_cross.core.columns import FeatureColumn
from beam_cross.core.lookup import STYLES, Lookup
from beam_cross.core.raw_values import FLOAT, INT, STRING, raw_values
from beam_cross.core.transform_base import (
    Transform,
    check_count,
    check_name,
    decimal_fingerprints,
    string_fingerprints,
)

__all__ = ["STYLES", "TRANSFORMS", "Bucketize", "Hash", "Identity", "Lookup", "Transform", "transform_from_dict",
           "transformed_column"]


@dataclass(frozen=True, init=False)
class Bucketize(Transform):
    """Keras ``Discretization(bin_boundaries=boundaries)`` ids: the number of boundaries ``<=`` the value.

    The boundaries and the value are compared as **float32**, as Keras and a float32 ``numeric_column``
    do (``bucketized_column``): 0.1 as a float64 against a boundary 0.1 goes to bucket 1; integers above
    2**24 round to float32 first. NaN and +inf go to the last bucket (``len(boundaries)``), -inf to 0.
    A subnormal float32 (boundary or value) compares as 0, as TF's kernels flush denormals to zero.

    ``Bucketize(name, num_buckets=k)`` (Keras ``Discretization(num_bins=k)``) has its boundaries still
    to learn: the ``k - 1`` inner quantiles of the column (:meth:`learn`, :mod:`beam_cross.core.learning`);
    it crosses nothing until learned. A learned one keeps ``num_buckets`` (as Keras keeps ``num_bins``).

    Args:
        name: the raw column, of integers or floats.
        boundaries: a non-empty, strictly increasing list of numbers (strictly increasing as float32).
            None (the default) with ``num_buckets``: to learn.
        num_buckets: the number of buckets to learn boundaries for, >= 2.

    >>> Bucketize("x", [0.1, 1.0])([0.1, 0.09999999, -0.0, 16777217]).tolist()
    [1, 0, 0, 2]
    >>> Bucketize("x", num_buckets=4).learn([1.0, 2.0, 2.0]).boundaries
    (1.0, 2.0)
    """

    boundaries: tuple[float, ...] | None
    num_buckets: int | None
    kind: ClassVar[str] = "bucketize"
    takes: ClassVar[tuple[str, ...]] = (INT, FLOAT)
    learns: ClassVar[str] = "boundaries"

    def __init__(self, name, boundaries=None, *, num_buckets=None):
        check_name(name)
        if num_buckets is not None:
            num_buckets = check_count(num_buckets, "num_buckets", 2)
        if boundaries is None:
            if num_buckets is None:
                raise TypeError(f"`Bucketize({name!r})` needs `boundaries`, or `num_buckets` to learn them from data.")
            object.__setattr__(self, "name", name)
            object.__setattr__(self, "boundaries", None)
            object.__setattr__(self, "num_buckets", num_buckets)
            object.__setattr__(self, "_float32", None)
            return
        try:
            given = tuple(boundaries)
        except TypeError:
            given = None
        if not given or isinstance(boundaries, (str, bytes)) or any(
            isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, float, np.integer, np.floating)) for b in given
        ):
            raise TypeError(f"`boundaries` must be a non-empty list of numbers. Received: boundaries={boundaries!r}")
        as_float32 = np.asarray([float(b) for b in given], np.float64).astype(np.float32)
        if np.isnan(as_float32).any() or (np.diff(as_float32) <= 0).any():
            raise ValueError(
                "`boundaries` must be strictly increasing as float32 (how Keras and TF store them). "
                f"Received: boundaries={list(given)}"
            )
        if num_buckets is not None and len(given) > num_buckets - 1:
            raise ValueError(f"`boundaries` make {len(given) + 1} buckets, more than num_buckets={num_buckets}. "
                             f"Received: boundaries={list(given)}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "boundaries", tuple(float(b) for b in given))
        object.__setattr__(self, "num_buckets", num_buckets)
        object.__setattr__(self, "_float32", _flush_subnormals(as_float32))

    @property
    def learned(self) -> bool:
        return self.boundaries is not None

    def describe(self) -> str:
        return f"Bucketize({self.name!r}, num_buckets={self.num_buckets})" if not self.learned else repr(self)

    def __repr__(self):
        extra = f", num_buckets={self.num_buckets}" if self.num_buckets is not None else ""
        return f"Bucketize(name={self.name!r}, boundaries={self.boundaries!r}{extra})"

    def __hash__(self):
        return hash((self.kind, self.name, self.boundaries, self.num_buckets))

    def __eq__(self, other):
        return type(other) is Bucketize and (self.name, self.boundaries, self.num_buckets) == (
            other.name, other.boundaries, other.num_buckets)

    def to_dict(self) -> dict:
        config = {"transform": self.kind, "name": self.name}
        if self.boundaries is not None:
            config["boundaries"] = list(self.boundaries)
        if self.num_buckets is not None:
            config["num_buckets"] = self.num_buckets
        return config

    def learn(self, quantiles) -> Bucketize:
        """The learned transform: its boundaries are ``quantiles`` (the ``num_buckets - 1`` inner
        quantiles of the column, see :func:`beam_cross.core.learning.exact_quantiles`) as float32,
        NaN dropped, sorted and deduplicated (a column with heavy ties gives fewer buckets; Keras keeps
        repeated boundaries, whose buckets stay empty).

        Args:
            quantiles: numbers (at least one that is not NaN).
        """
        values = np.asarray([float(q) for q in quantiles], np.float64)
        values = np.unique(values[~np.isnan(values)].astype(np.float32))
        values = values[np.concatenate(([True], np.diff(_flush_subnormals(values)) > 0))] if len(values) else values
        if not len(values):
            raise ValueError(f"Feature `{self.name}`: {self.describe()} learned no boundary: the column holds no "
                             "number that is not NaN.")
        return Bucketize(self.name, [float(v) for v in values], num_buckets=self.num_buckets)

    def fast_ids(self, values):
        """A NumPy or Arrow array of numbers without nulls, straight to the kernel (the general path's ids)."""
        self.check_learned()
        if isinstance(values, pa.Array) and (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)) \
                and not values.null_count:
            values = values.to_numpy(zero_copy_only=False)
        if not (isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and _fingerprint._C is not None) or not (
                values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
            return None
        return self._numbers(values.reshape(-1)).reshape(values.shape)

    def _part_ids(self, part, raw, feature):
        return self._numbers(part.data)

    def _numbers(self, data: np.ndarray) -> np.ndarray:
        self.check_learned()
        kernel = _fingerprint._C
        if kernel is not None and data.dtype == np.float64:  # rounded to float32 in the kernel's one pass
            out = np.empty(len(data), np.int64)
            kernel.bucketize(np.ascontiguousarray(data), True, self._float32, out)
            return out
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf, as TF's cast
            values = data.astype(np.float32)
        if kernel is not None:  # one pass, subnormals flushed inside
            out = np.empty(len(values), np.int64)
            kernel.bucketize(np.ascontiguousarray(values), False, self._float32, out)
            return out
        return np.searchsorted(self._float32, _flush_subnormals(values), side="right")


_FLOAT32_TINY = np.finfo(np.float32).tiny


def _flush_subnormals(values: np.ndarray) -> np.ndarray:
    """Subnormal float32 values as zero: TensorFlow's kernels run with denormals flushed to zero (FTZ/DAZ),
    so a boundary or a value below ``1.1754944e-38`` in magnitude compares as 0."""
    return np.where(np.abs(values) < _FLOAT32_TINY, np.float32(0), values)


@dataclass(frozen=True, init=False)
class Identity(Transform):
    """``categorical_column_with_identity(name, num_buckets, default_value)`` ids: an integer in
    ``[0, num_buckets)`` is its own id; another is ``default_value``, or, without one, a FeatureError
    (reason ``out_of_range``; TF's graph asserts). A -1 in a single-valued feature is dropped by
    feature columns (no id, no cross): a FeatureError (reason ``no_id``).

    >>> Identity("hour", 24, default_value=0)([5, 23, 24]).tolist()
    [5, 23, 0]
    """

    num_buckets: int
    default_value: int | None
    kind: ClassVar[str] = "identity"
    takes: ClassVar[tuple[str, ...]] = (INT,)

    def __init__(self, name, num_buckets, *, default_value=None):
        check_name(name)
        num_buckets = check_count(num_buckets, "num_buckets", 1)
        if default_value is not None:
            default_value = check_count(default_value, "default_value", 0)
            if default_value >= num_buckets:
                raise ValueError(f"`default_value` must be in [0, num_buckets) = [0, {num_buckets}). "
                                 f"Received: default_value={default_value}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "num_buckets", num_buckets)
        object.__setattr__(self, "default_value", default_value)

    def to_dict(self) -> dict:
        return {"transform": self.kind, "name": self.name, "num_buckets": self.num_buckets,
                "default_value": self.default_value}

    def _part_ids(self, part, raw, feature):
        self._dropped(part, raw, feature)
        data = self._int64(part, raw, feature)
        outside = (data < 0) | (data >= self.num_buckets)
        if self.default_value is None:
            self._first(part, raw, feature, outside, errors.OUT_OF_RANGE,
                        f"`Identity` takes integers in [0, {self.num_buckets}) without a `default_value`.")
            return data
        return np.where(outside, self.default_value, data)


@dataclass(frozen=True, init=False)
class Hash(Transform):
    """Keras ``Hashing(num_bins)`` ids (no salt): ``tf.strings.to_hash_bucket_fast(x, num_bins)``,
    ``Fingerprint64(x) % num_bins``; an integer is hashed as its decimal string.

    >>> Hash("hour", 10)([1, 2, -1]).tolist() == Hash("hour", 10)(["1", "2", "-1"]).tolist()
    True
    """

    num_bins: int
    kind: ClassVar[str] = "hash"
    takes: ClassVar[tuple[str, ...]] = (STRING, INT)

    def __init__(self, name, num_bins):
        check_name(name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "num_bins", check_count(num_bins, "num_bins", 1))

    def to_dict(self) -> dict:
        return {"transform": self.kind, "name": self.name, "num_bins": self.num_bins}

    def _part_ids(self, part, raw, feature):
        keys = string_fingerprints(part.data, feature) if part.kind == STRING else decimal_fingerprints(part.data, feature)
        return (keys % np.uint64(self.num_bins)).astype(np.int64)


TRANSFORMS = {cls.kind: cls for cls in (Bucketize, Lookup, Identity, Hash)}


def transform_from_dict(config) -> Transform:
    """A transform from its :meth:`Transform.to_dict` form, ``{"transform": "bucketize", "name": ..., ...}``.

    >>> transform_from_dict(Bucketize("age", [18, 25]).to_dict())
    Bucketize(name='age', boundaries=(18.0, 25.0))
    >>> transform_from_dict({"transform": "lookup", "name": "country", "max_tokens": 100}).learned
    False
    """
    if not isinstance(config, dict):
        raise TypeError(f"A transform config must be a dict. Received: {config!r}")
    kind = config.get("transform")
    if kind not in TRANSFORMS:
        raise ValueError(f"A transform config needs `transform`, one of {sorted(TRANSFORMS)}. Received: {config!r}")
    options = {k: v for k, v in config.items() if k != "transform"}
    if "name" not in options:
        raise ValueError(f"A transform config needs the `name` of its raw column. Received: {config!r}")
    cls = TRANSFORMS[kind]
    positional = {"identity": ("num_buckets",), "hash": ("num_bins",)}.get(kind, ())
    missing = [p for p in positional if p not in options]
    if kind == "bucketize" and "boundaries" not in options and "num_buckets" not in options:
        missing = ["boundaries (or num_buckets, to learn them)"]
    if missing:
        raise ValueError(f"A `{kind}` transform config needs {missing}. Received: {config!r}")
    args = [options.pop("name")] + [options.pop(p) for p in positional]
    try:
        return cls(*args, **options)
    except TypeError as error:
        if "unexpected keyword" in str(error):
            raise ValueError(f"Unknown keys in a `{kind}` transform config: {sorted(options)}. Received: {config!r}") from None
        raise


def transformed_column(values, transform: Transform, feature=None) -> FeatureColumn:
    """The ids of ``transform`` over a column, as a :class:`FeatureColumn` of their int64 bits (what a
    cross hashes). ``feature`` names the column in errors (defaults to the transform's column)."""
    feature = transform.name if feature is None else feature
    transform.check_learned(feature)
    fast = transform.fast_ids(values)
    if fast is not None:
        return FeatureColumn(fast.reshape(-1).view(np.uint64), None, fast.shape)
    raw = raw_values(values, feature)
    ids = transform.ids(raw, feature)
    return FeatureColumn(ids.view(np.uint64), raw.row_splits, raw.shape)
