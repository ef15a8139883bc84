"""Crossing one row at a time: a dict whose crossed features are plain values, crossed as it comes.

A :class:`RowPlan` is the fast path of the element path (``CrossFeatures`` on dicts and rows): for a
dict whose crossed features are all exact ``str``, ``bytes`` or ``int`` (within int64 / uint64) of
their declared kinds, and that has no field named like a cross, it returns the new dict (the input's
fields, less the consumed ones without ``keep_inputs``, plus one int per cross). For any other dict
it returns None, and the caller crosses that element on the general path
(:func:`beam_cross.core.batches.cross_batch`), which crosses lists, applies the whole value rule and
says why a row is rejected. Both give the same bins: the fast cases are the values that the value
rule takes as they are.

With the compiled kernel a row is one C call; on the NumPy path, pyfarmhash and a Python fold.

>>> from beam_cross.core.spec import Cross
>>> plan = RowPlan([Cross(["country", "hour"], 1000)])
>>> plan.cross({"country": "fr", "hour": 13})
{'country': 'fr', 'hour': 13, 'country_X_hour': 755}
>>> plan.cross({"country": "fr", "hour": 1.5}) is None  # a float: the general path rejects it
True
"""

from __future__ import annotations

import farmhash

from beam_cross.core import _fingerprint
from beam_cross.core.cross import DEFAULT_HASH_KEY, _modulus

_CODES = {None: 0, "string": _fingerprint.STRING_KIND, "int": _fingerprint.INT_KIND}  # the kernel's kind bits
_MASK = 2**64 - 1
_K_MUL = int(_fingerprint.K_MUL)
_INT64_MIN, _UINT64_END = -(2**63), 2**64
_CACHE_LIMIT = 1 << 16  # strings remembered by the NumPy path's row crossing, per plan


def _cat64(h: int, fp: int) -> int:
    """TensorFlow's ``FingerprintCat64(h, fp)`` on Python ints (the NumPy path's row fold)."""
    t = (fp * _K_MUL) & _MASK
    t = ((t ^ (t >> 47)) * _K_MUL) & _MASK
    r = ((h ^ _K_MUL ^ t) * _K_MUL) & _MASK
    r = ((r ^ (r >> 47)) * _K_MUL) & _MASK
    return r ^ (r >> 47)


class RowPlan:
    """Crosses dicts one by one with ``crosses`` (validated :class:`~beam_cross.Cross`, int mode).

    Args:
        crosses: the crosses, in output order.
        keep_inputs: keep the consumed features in the output (else they are dropped).
        feature_types: feature -> ``"string"`` / ``"int"``: a value of the other kind is not a fast case.
        guarded: names that must not already be fields of the input (the cross names it would overwrite).
    """

    def __init__(self, crosses, *, keep_inputs: bool = True, feature_types=None, guarded=None):
        crosses = tuple(crosses)
        if any(c.output_mode != "int" for c in crosses):
            raise ValueError("RowPlan crosses int-mode crosses only; one_hot rows go through the batch path.")
        if any(any(c.transforms) for c in crosses):
            raise ValueError("RowPlan crosses raw features only; transformed features go through the batch path.")
        feature_types = feature_types or {}
        self.features = tuple(dict.fromkeys(f for c in crosses for f in c.features))
        index = {f: i for i, f in enumerate(self.features)}
        self._declared = tuple(_CODES[feature_types.get(f)] for f in self.features)
        self._crosses = tuple(
            (c.name, (c.hash_key or DEFAULT_HASH_KEY) % 2**64, _modulus(c.num_bins), tuple(index[f] for f in c.features))
            for c in crosses
        )
        self._drop = () if keep_inputs else self.features
        self._guarded = tuple(c.name for c in crosses) if guarded is None else tuple(guarded)
        kernel = _fingerprint._C
        self._compiled = None
        if kernel is not None:
            self._compiled = kernel.make_plan(self.features, bytes(self._declared), self._crosses, self._drop, self._guarded)
            self._kernel_cross = kernel.cross_mapping
        self._cache: dict = {}

    def cross(self, mapping: dict) -> dict | None:
        """The crossed dict, or None when the row is not a fast case (see the module docstring)."""
        if self._compiled is not None:
            return self._kernel_cross(self._compiled, mapping)
        return self._cross_in_python(mapping)

    def _cross_in_python(self, mapping: dict) -> dict | None:
        fingerprints = []
        for feature, declared in zip(self.features, self._declared):
            value = mapping.get(feature, mapping)  # the mapping itself stands for "absent": never a fast case
            kind = type(value)
            if kind is int:
                if declared == _fingerprint.STRING_KIND or not _INT64_MIN <= value < _UINT64_END:
                    return None
                fingerprints.append(value & _MASK)
            elif kind is str or kind is bytes:
                if declared == _fingerprint.INT_KIND:
                    return None
                fingerprint = self._cache.get(value)
                if fingerprint is None:
                    try:
                        fingerprint = farmhash.fingerprint64(value)
                    except (UnicodeError, ValueError):  # a lone surrogate: the general path rejects it
                        return None
                    if len(self._cache) >= _CACHE_LIMIT:
                        self._cache.clear()
                    self._cache[value] = fingerprint
                fingerprints.append(fingerprint)
            else:
                return None
        for name in self._guarded:
            if name in mapping:
                return None
        if self._drop:
            drop = self._drop
            out = {k: v for k, v in mapping.items() if k not in drop}
        else:
            out = dict(mapping)
        for name, seed, modulus, members in self._crosses:
            h = seed
            for member in members:
                h = _cat64(h, fingerprints[member])
            out[name] = h % modulus
        return out
