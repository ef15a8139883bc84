"""The command's ``--config`` takes ``all_crosses`` entries: every generated cross is written, with the
ids of ``tf.sparse.cross_hashed`` over its features in the given order (read back with the csv module)."""

from __future__ import annotations

import csv
import glob

import numpy as np
import pytest

from beam_cross import all_crosses
from beam_cross.job.run import run


def test_config_all_crosses_through_the_command(tmp_path):
    tf = pytest.importorskip("tensorflow", reason="the oracle is tf.sparse.cross_hashed")
    rows = [{"country": c, "hour": h, "device": d} for c, h, d in
            zip(["fr", "us", "de", "日本", "fr"] * 20, range(100), ["ios", "web", "tv", "ios"] * 25)]
    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["country", "hour", "device"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "crosses.yaml").write_text(
        "- all_crosses: {features: [country, hour, device], degree: 3, num_bins: {'*': 1000, country_X_hour: 77}}\n")
    output = tmp_path / "out"
    summary = run(["--input", str(tmp_path / "in.csv"), "--config", str(tmp_path / "crosses.yaml"),
                   "--output", str(output), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (100, 100, 0)
    written = []
    for path in sorted(glob.glob(f"{output}/crossed/*")):
        with open(path, newline="", encoding="utf-8") as handle:
            written.extend(csv.DictReader(handle))
    written.sort(key=lambda r: int(r["hour"]))
    crosses = all_crosses(["country", "hour", "device"], degree=3, num_bins={"*": 1000, "country_X_hour": 77})
    assert [c.name for c in crosses] == ["country_X_hour", "country_X_device", "hour_X_device",
                                         "country_X_hour_X_device"]
    for cross in crosses:
        inputs = [tf.constant(np.asarray([r[f] for r in rows], object if f != "hour" else np.int64)[:, None])
                  for f in cross.features]
        expected = tf.sparse.cross_hashed(inputs, num_buckets=cross.num_bins).values.numpy().tolist()
        assert [int(r[cross.name]) for r in written] == expected, cross.name
