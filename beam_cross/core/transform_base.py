"""The base of the transforms before a cross (:class:`Transform`) and what they share: argument checks,
the refusal of a value a transform cannot take, feature columns' dropped values, string fingerprints."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core import errors
from beam_cross.core.arrow_values import arrow_fingerprints
from beam_cross.core.errors import FeatureError
from beam_cross.core.raw_values import FLOAT, STRING, Part, RawValues, raw_values

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be the name of a raw column (a non-empty string). Received: name={name!r}")
    return name


def check_count(value, argument: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{argument}` must be an int. Received: {argument}={value!r}")
    if not minimum <= value <= INT64_MAX:
        raise ValueError(f"`{argument}` must be an int64 >= {minimum}. Received: {argument}={value!r}")
    return operator.index(value)


LEARN_FIRST = ("learn it first with beam_cross.LearnCrosses (Beam), beam_cross.learned(crosses, stats) (statistics "
               "computed elsewhere), a `beam-cross --config` run, or beam_cross.tft (analyzers)")


class NotLearnedError(ValueError):
    """A transform whose parameters are still to learn (``Bucketize(name, num_buckets=k)``, ``Lookup(name)``
    without a vocabulary) asked for ids. ``feature`` is its column, ``transform`` the transform."""

    def __init__(self, transform, feature=None):
        feature = transform.name if feature is None else feature
        super().__init__(f"Feature `{feature}`: {transform.describe()} is not learned yet (no "
                         f"{transform.learns}); {LEARN_FIRST}.")
        self.feature, self.transform = feature, transform

    def __reduce__(self):
        return type(self), (self.transform, self.feature)


def string_fingerprints(data: pa.Array, feature) -> np.ndarray:
    return arrow_fingerprints(data, feature)[0]


def decimal_fingerprints(numbers: np.ndarray, feature) -> np.ndarray:
    """``Fingerprint64`` of each integer's decimal string (``tf.strings.as_string``)."""
    return string_fingerprints(pc.cast(pa.array(numbers), pa.large_string()), feature)


@dataclass(frozen=True)
class Transform:
    """A transform of the raw column ``name`` into int64 ids (the base of the four transforms)."""

    name: str
    kind: ClassVar[str] = ""  # the "transform" key of its dict
    takes: ClassVar[tuple[str, ...]] = ()  # the kinds of value it takes: "int", "float", "string"
    learns: ClassVar[str] = ""  # what an unlearned transform of this kind learns from data

    @property
    def learned(self) -> bool:
        """False for a transform whose parameters are still to learn from data (see :mod:`beam_cross.core.learning`)."""
        return True

    def describe(self) -> str:
        """A short description for messages."""
        return repr(self)

    def check_learned(self, feature=None):
        """Itself, or a :class:`NotLearnedError` when its parameters are still to learn."""
        if not self.learned:
            raise NotLearnedError(self, feature)
        return self

    def to_dict(self) -> dict:
        raise NotImplementedError

    def __call__(self, values):
        """The ids of a column (see :func:`beam_cross.hashed_cross` for the layouts): an int64 array of
        its shape, or a ``pyarrow.ListArray`` of int64 for a multivalent column."""
        self.check_learned()
        fast = self.fast_ids(values)
        if fast is not None:
            return fast
        raw = raw_values(values, self.name)
        ids = self.ids(raw, self.name)
        if raw.row_splits is None:
            return ids.reshape(raw.shape)
        return pa.LargeListArray.from_arrays(pa.array(raw.row_splits), pa.array(ids))

    def fast_ids(self, values) -> np.ndarray | None:
        """The ids of a single-valued column in a layout the transform reads fastest (its shape kept), or
        None to take the general path (:func:`~beam_cross.core.raw_values.raw_values`, then :meth:`ids`)."""
        return None

    def ids(self, raw: RawValues, feature) -> np.ndarray:
        """The int64 id of every value of ``raw``, in its flat order."""
        self.check_learned(feature)
        for part in raw.parts:
            if part.kind not in self.takes:
                self._refuse(part, raw, feature)
        if len(raw.parts) == 1 and raw.parts[0].positions is None:  # one kind: no gathering
            return self._part_ids(raw.parts[0], raw, feature).astype(np.int64, copy=False)
        out = np.zeros(raw.size, np.int64)
        for part in raw.parts:
            out[part.positions] = self._part_ids(part, raw, feature)
        return out

    def _part_ids(self, part: Part, raw: RawValues, feature) -> np.ndarray:
        raise NotImplementedError

    def _refuse(self, part: Part, raw: RawValues, feature, index: int = 0, reason=None, detail=None):
        position = index if part.positions is None else int(part.positions[index])
        if reason is None:
            reason = errors.FLOAT if part.kind == FLOAT else errors.WRONG_KIND
            takes = " or ".join(f"{k}s" for k in self.takes)
            detail = f"`{type(self).__name__}` takes {takes}, not {part.kind}s"
            detail += " (floats are crossed through `Bucketize` only)." if part.kind == FLOAT else "."
        raise FeatureError(feature, reason, detail, part.value(index), raw.row(position))

    def _first(self, part: Part, raw: RawValues, feature, mask: np.ndarray, reason, detail):
        if mask.any():
            self._refuse(part, raw, feature, int(np.flatnonzero(mask)[0]), reason, detail)

    def _dropped(self, part: Part, raw: RawValues, feature) -> None:
        """Feature columns drop '' / -1 from a dense input before the lookup: no id (errors.NO_ID)."""
        if raw.row_splits is not None:
            return  # a SparseTensor's values are looked up as they are
        if part.kind == STRING:
            mask = pc.equal(pc.binary_length(part.data), 0).to_numpy(zero_copy_only=False)
        else:
            mask = (part.data == -1) if part.data.dtype != np.uint64 else np.zeros(len(part.data), bool)
        self._first(part, raw, feature, mask, errors.NO_ID, errors.DETAILS[errors.NO_ID])

    def _int64(self, part: Part, raw: RawValues, feature) -> np.ndarray:
        if part.data.dtype == np.uint64:
            self._first(part, raw, feature, part.data > INT64_MAX, errors.OUT_OF_RANGE,
                        f"`{type(self).__name__}` takes int64 values, as TensorFlow does.")
            return part.data.astype(np.int64)
        return part.data
