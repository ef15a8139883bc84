"""``num_bins`` suggested from measured distinct crosses: a collision report read back as bins.

A first run measures each cross's distinct crosses (the command's ``report/collisions.json``,
:class:`~beam_cross.beam.stats.CrossStatsFn`, the tf.Transform collision analyzer); each cross's
suggestion is then the fewest bins whose expected collision share is at most the target
(:func:`beam_cross.core.stats.suggested_num_bins`), and :func:`suggested_bins` hands them to
:func:`~beam_cross.all_crosses` (or a spec file's ``all_crosses`` entry) as its ``num_bins``:

>>> from beam_cross import Cross, all_crosses
>>> from beam_cross.core.stats import CrossStatsAccumulator
>>> accumulator = CrossStatsAccumulator(Cross(["country", "hour"], num_bins=10))
>>> accumulator.add_columns({"country": ["fr", "us", "fr", "de"], "hour": [13, 7, 13, 9]})
>>> bins = suggested_bins([accumulator.result()], default=1000)
>>> bins
{'country_X_hour': 200, '*': 1000}
>>> [(c.name, c.num_bins) for c in all_crosses(["country", "hour", "device"], num_bins=bins)]
[('country_X_hour', 200), ('country_X_device', 1000), ('hour_X_device', 1000)]

A count estimated by a sketch (``exact`` false) counts as its upper 95% bound. The distinct crosses
of a sample underestimate those of the full data, so measure on data like the data to cross.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from beam_cross.core.stats import CrossStats, check_target, suggested_num_bins

__all__ = ["SUGGESTED_FROM", "SuggestedBins", "suggested_bins"]

SUGGESTED_FROM = "suggested_from"  # in a spec file's `num_bins`: the report to suggest from
DEFAULT_KEY = "*"


class SuggestedBins(dict):
    """Bins by cross name, suggested from a report. As ``all_crosses``' ``num_bins``, the crosses of the
    report that it does not generate are ignored (a report may hold other crosses): ``reported``."""

    reported: frozenset = frozenset()


def _entries(report, where: str) -> list[Mapping]:
    if isinstance(report, Mapping) and "crosses" in report:
        report = report["crosses"]
    elif isinstance(report, Mapping):
        report = [{"cross": name, **(s.to_dict() if isinstance(s, CrossStats) else s)} for name, s in report.items()]
    if isinstance(report, (str, bytes)) or not isinstance(report, Iterable):
        raise TypeError(f"A collision report must be a path, a mapping or a list of statistics. Received: {report!r}")
    entries = [s.to_dict() if isinstance(s, CrossStats) else s for s in report]
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("cross"), str) or not isinstance(
                entry.get("distinct_crosses"), int) or isinstance(entry.get("distinct_crosses"), bool):
            raise ValueError(f"{where}: each cross's statistics must name the `cross` and hold its "
                             f"`distinct_crosses` (an int). Received: {entry!r}")
    return entries


def _read(path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise ValueError(f"The collision report {os.fspath(path)} cannot be read: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"The collision report {os.fspath(path)} is not JSON: {error}") from None


def suggested_bins(report, *, target_collision_share: float | None = None, default: int | None = None) -> SuggestedBins:
    """Each cross's suggested ``num_bins``, from its measured distinct crosses.

    Args:
        report: the path of a collision report (the command's ``report/collisions.json``), its parsed
            JSON, a list of :class:`~beam_cross.core.stats.CrossStats` (what ``CrossStatsFn`` gives)
            or their dicts, or a mapping of cross name to them (what
            ``beam_cross.tft.read_collision_stats`` returns).
        target_collision_share: the expected collision share to stay under; by default the one each
            report entry was measured for (``target_collision_share``, else 0.01).
        default: if given, the bins (``"*"``) of every cross the report does not hold.

    Returns:
        A mapping of cross name to bins, with ``"*"`` when ``default`` is given: an
        :func:`~beam_cross.all_crosses` ``num_bins``.
    """
    where = f"The collision report {os.fspath(report)}" if isinstance(report, (str, os.PathLike)) else "The collision report"
    if isinstance(report, (str, os.PathLike)):
        report = _read(report)
    if target_collision_share is not None:
        check_target(target_collision_share)
    bins = SuggestedBins()
    for entry in _entries(report, where):
        distinct = entry["distinct_crosses"]
        if not entry.get("exact", True) and entry.get("distinct_crosses_95pct_bounds"):
            distinct = max(distinct, int(entry["distinct_crosses_95pct_bounds"][1]))
        target = target_collision_share if target_collision_share is not None else entry.get("target_collision_share", 0.01)
        bins[entry["cross"]] = suggested_num_bins(distinct, target)
    bins.reported = frozenset(bins)
    if default is not None:
        bins[DEFAULT_KEY] = default
    return bins


def resolve_num_bins(num_bins, directory=None):
    """A spec file's ``num_bins``: as given, or, for ``{suggested_from: path, ...}``, the bins that report
    suggests (``path`` relative to ``directory``), overridden by the mapping's other keys (cross
    names, ``"*"``); ``target_collision_share`` is passed on."""
    if not isinstance(num_bins, Mapping) or SUGGESTED_FROM not in num_bins:
        return num_bins
    options = dict(num_bins)
    path = options.pop(SUGGESTED_FROM)
    if not isinstance(path, str) or not path:
        raise TypeError(f"`{SUGGESTED_FROM}` must be the path of a collision report. Received: {path!r}")
    if directory is not None and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(directory, path)
    bins = suggested_bins(path, target_collision_share=options.pop("target_collision_share", None))
    bins.update(options)
    return bins
