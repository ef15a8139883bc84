"""The collision report: ``collisions.json`` (one record per cross) and ``collisions.png``.

The chart has one row per cross. Left: the share of cross values expected to collide against
``num_bins`` (log scale), with the measured share at the current ``num_bins``, the target share and
the suggested ``num_bins``. Right: bin occupancy, i.e. how many bins hold 1, 2, 3... distinct
crosses at the current ``num_bins``. Needs matplotlib (``pip install beam-cross[report]``).
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_cross.core.stats import CrossStats, expected_collision_share

JSON_NAME = "collisions.json"
PNG_NAME = "collisions.png"


def report_records(stats) -> list[dict]:
    return [s.to_dict() if isinstance(s, CrossStats) else dict(s) for s in stats]


def write_json(stats, path: str) -> str:
    """Writes ``{"crosses": [...]}`` to ``path`` (local or any Beam filesystem)."""
    with FileSystems.create(path) as handle:
        handle.write(json.dumps({"crosses": report_records(stats)}, indent=2).encode("utf-8"))
    return path


def read_json(path: str) -> list[dict]:
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))["crosses"]


def _title(record) -> str:
    bins = "full hash" if record["num_bins"] == 0 else f"{record['num_bins']:,} bins"
    return (
        f"{record['cross']}: {record['distinct_crosses']:,} distinct crosses in {bins}, "
        f"{record['collision_share']:.1%} of values collide"
    )


def _curve_panel(axis, record):
    distinct, num_bins = record["distinct_crosses"], record["num_bins"]
    target, suggested = record["target_collision_share"], record["suggested_num_bins"]
    low = max(1, min(num_bins or suggested, suggested, distinct) // 10)
    high = max(num_bins, suggested, distinct, 10) * 10
    grid = np.unique(np.geomspace(low, high, 200).astype(np.int64))
    axis.plot(grid, 100 * expected_collision_share(distinct, grid), color="tab:blue", label="expected (occupancy formula)")
    axis.axhline(100 * target, color="tab:green", linestyle="--", linewidth=1, label=f"target {target:.1%}")
    axis.plot([suggested], [100 * expected_collision_share(distinct, suggested)], marker="*", markersize=14,
              color="tab:green", linestyle="none", label=f"suggested: {suggested:,} bins")
    if num_bins:
        axis.plot([num_bins], [100 * record["collision_share"]], marker="o", markersize=9, color="tab:red",
                  linestyle="none", label=f"now: {num_bins:,} bins, {record['collision_share']:.1%} measured")
    axis.set_xscale("log")
    axis.set_ylim(0, 100)
    axis.set_xlabel("num_bins (log scale)")
    axis.set_ylabel("cross values colliding (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper right")
    axis.set_title(_title(record), fontsize=10, loc="left")


def _occupancy_panel(axis, record):
    occupancy = {int(k): n for k, n in record["occupancy"].items()}
    sizes = sorted(occupancy)
    colors = ["tab:gray" if k == 1 else "tab:red" for k in sizes]
    positions = range(len(sizes))
    axis.bar(positions, [occupancy[k] for k in sizes], color=colors)
    axis.set_xticks(list(positions), [str(k) for k in sizes])
    axis.set_xlabel("distinct crosses in the bin")
    axis.set_ylabel("bins")
    used = record["bins_used"]
    axis.set_title(f"{used:,} bins used; red = shared by several crosses", fontsize=9, loc="left")
    axis.grid(True, axis="y", alpha=0.3)


def write_chart(records, path: str) -> str:
    """Renders ``records`` (``CrossStats.to_dict()`` dicts) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    records = report_records(records)
    figure, axes = plt.subplots(
        max(len(records), 1), 2, figsize=(13, 3.6 * max(len(records), 1)), squeeze=False,
        gridspec_kw={"width_ratios": [2.2, 1]},
    )
    for (curve, occupancy), record in zip(axes, records):
        _curve_panel(curve, record)
        _occupancy_panel(occupancy, record)
    if not records:
        axes[0][0].text(0.5, 0.5, "no crosses", ha="center")
    figure.suptitle("beam-cross collision report: how often distinct crosses share a bin", fontsize=12)
    figure.tight_layout()
    local = path
    if "://" in path:  # render locally, then copy to the target filesystem
        local = os.path.join(tempfile.mkdtemp(), PNG_NAME)
    figure.savefig(local, dpi=100)
    plt.close(figure)
    if local != path:
        with open(local, "rb") as source, FileSystems.create(path) as target:
            target.write(source.read())
    return path
