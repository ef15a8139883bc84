"""Generated crosses: every combination of a list of features, in one canonical order.

Tools that generate crosses (BigQuery ML ``ML.FEATURE_CROSS(..., degree)``, Vowpal Wabbit ``-q ::``,
the old ``CategoryCrossing(depth)``, Merlin's ``HashedCrossAll``) differ in how they order the features
of a cross, and the order changes the ids. Merlin's orders them by a Python ``set``, so its ids change
with ``PYTHONHASHSEED``. :func:`all_crosses` fixes the order: the features as given, the combinations
in position order (``itertools.combinations``), degree 2 first. No set or dict order is involved.

>>> [c.name for c in all_crosses(["country", "hour", "device"], num_bins=1000)]
['country_X_hour', 'country_X_device', 'hour_X_device']
>>> [c.name for c in all_crosses(["a", "b", "c"], degree=3, num_bins={"a_X_b_X_c": 10, "*": 100})]
['a_X_b', 'a_X_c', 'b_X_c', 'a_X_b_X_c']
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable, Mapping

from beam_cross.core.spec import Cross, check_crosses
from beam_cross.core.suggested import resolve_num_bins
from beam_cross.core.transforms import Transform, transform_from_dict

__all__ = ["MAX_DEGREE", "all_crosses", "expand_generated"]

MAX_DEGREE = 4
DEFAULT_KEY = "*"  # in a num_bins mapping: the bins of every cross it does not name


def _feature(item):
    if isinstance(item, Mapping):
        return transform_from_dict(item)
    if isinstance(item, Transform) or (isinstance(item, str) and item):
        return item
    raise TypeError(f"Each feature must be a feature name (a non-empty string), a transform or a transform's dict. "
                    f"Received: {item!r}")


def _name(feature) -> str:
    return feature.name if isinstance(feature, Transform) else feature


def all_crosses(features, degree: int = 2, num_bins=None, *, exclude=(), output_mode: str = "int",
                hash_key=None) -> tuple[Cross, ...]:
    """The crosses of every combination of 2 to ``degree`` of ``features``, in canonical order.

    Args:
        features: feature names or transforms (:class:`~beam_cross.Bucketize`, ...; or their dicts),
            at least two, each column once. Their order is the order of every cross's features.
        degree: the largest number of features in a cross, 2 to 4.
        num_bins: the bins of every cross (an int), or a mapping of cross name to bins, with ``"*"``
            for the crosses it does not name (without ``"*"``, it must name every cross); or the bins
            a collision report suggests (:func:`~beam_cross.core.suggested.suggested_bins`), whose
            other crosses are ignored.
        exclude: groups of feature names never crossed together: a combination holding every feature
            of one group is left out (``exclude=[["user_id"]]`` leaves out every cross of ``user_id``).
        output_mode, hash_key: as :class:`~beam_cross.Cross`, for every cross.

    Returns:
        A tuple of :class:`~beam_cross.Cross`: degree 2 first, then 3, ...; within a degree, the
        combinations in the order of ``itertools.combinations`` over the given features.
    """
    if isinstance(features, (str, bytes, Mapping, Transform)) or not isinstance(features, Iterable):
        raise TypeError(f"`features` must be a list of features. Received: features={features!r}")
    features = [_feature(f) for f in features]
    names = [_name(f) for f in features]
    if len(features) < 2:
        raise ValueError(f"`features` must hold at least two features. Received: {names}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Each column may appear once in `features`. Received: {repeated} more than once")
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or not 2 <= degree <= MAX_DEGREE:
        raise ValueError(f"`degree` must be an integer from 2 to {MAX_DEGREE}. Received: degree={degree!r}")
    groups = _groups(exclude, names)
    combinations = [c for size in range(2, min(degree, len(features)) + 1)
                    for c in itertools.combinations(range(len(features)), size)
                    if not any(group <= {names[i] for i in c} for group in groups)]
    if not combinations:
        raise ValueError(f"`exclude` leaves no cross of {names} up to degree {degree}. Received: exclude={exclude!r}")
    cross_names = ["_X_".join(names[i] for i in c) for c in combinations]
    bins = _bins(num_bins, cross_names)
    return check_crosses([
        Cross([features[i] for i in c], bins[name], output_mode=output_mode, hash_key=hash_key)
        for c, name in zip(combinations, cross_names)
    ])


def _groups(exclude, names) -> list[frozenset]:
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise TypeError(f"`exclude` must be a list of groups of feature names. Received: exclude={exclude!r}")
    groups = []
    for group in exclude:
        if isinstance(group, (str, bytes)) or not isinstance(group, Iterable) or not group:
            raise TypeError(f"Each group of `exclude` must be a non-empty list of feature names. Received: {group!r}")
        unknown = sorted(set(group) - set(names))
        if unknown:
            raise ValueError(f"`exclude` names features that are not in `features`: {unknown}")
        groups.append(frozenset(group))
    return groups


def _bins(num_bins, cross_names) -> dict:
    if isinstance(num_bins, Mapping):
        reported = getattr(num_bins, "reported", frozenset())  # suggested_bins: a report's other crosses
        unknown = sorted(set(num_bins) - set(cross_names) - {DEFAULT_KEY} - reported)
        if unknown:
            raise ValueError(f"`num_bins` names crosses that are not generated: {unknown}. The generated crosses: "
                             f"{cross_names}")
        missing = [n for n in cross_names if n not in num_bins and DEFAULT_KEY not in num_bins]
        if missing:
            raise ValueError(f"`num_bins` gives no bins for {missing} (add them, or `{DEFAULT_KEY!r}` for the others)")
        return {n: num_bins.get(n, num_bins.get(DEFAULT_KEY)) for n in cross_names}
    if num_bins is None:
        raise TypeError("`num_bins` must be given: the bins of every cross, or a mapping of cross name to bins")
    return dict.fromkeys(cross_names, num_bins)


GENERATED_KEY = "all_crosses"


def expand_generated(config: list, directory=None) -> list:
    """A spec file's list of crosses with each ``{"all_crosses": {...}}`` entry replaced by the crosses
    it generates (its keys are :func:`all_crosses`' arguments), in place: how a config file holds them.
    Its ``num_bins`` may be ``{suggested_from: report.json, ...}``
    (:func:`~beam_cross.core.suggested.resolve_num_bins`; a relative path is taken from ``directory``).

    >>> [c["num_bins"] if isinstance(c, dict) else c.name for c in expand_generated(
    ...     [{"all_crosses": {"features": ["a", "b", "c"], "num_bins": 10}}, {"features": ["a", "d"], "num_bins": 5}])]
    ['a_X_b', 'a_X_c', 'b_X_c', 5]
    """
    out = []
    for entry in config:
        if isinstance(entry, Mapping) and GENERATED_KEY in entry:
            if set(entry) != {GENERATED_KEY} or not isinstance(entry[GENERATED_KEY], Mapping):
                raise ValueError(f"An `{GENERATED_KEY}` entry must be a mapping with that one key, holding "
                                 f"all_crosses' arguments. Received: {dict(entry)!r}")
            arguments = dict(entry[GENERATED_KEY])
            known = {"features", "degree", "num_bins", "exclude", "output_mode", "hash_key"}
            unknown = sorted(set(arguments) - known)
            if unknown:
                raise ValueError(f"`{GENERATED_KEY}` takes {sorted(known)}. Received unknown keys: {unknown}")
            if "features" not in arguments:
                raise ValueError(f"`{GENERATED_KEY}` needs `features`. Received: {arguments!r}")
            if "num_bins" in arguments:
                arguments["num_bins"] = resolve_num_bins(arguments["num_bins"], directory)
            out.extend(all_crosses(arguments.pop("features"), **arguments))
        else:
            out.append(entry)
    return out
