"""The command's ``--config`` takes ``all_crosses`` entries: every generated cross is written, with the
ids of ``tf.sparse.cross_hashed`` over its features in the given order (read back with the csv module)."""

from __future__ import annotations

import csv
import glob
import json

import numpy as np
import pytest

from beam_cross import all_crosses
from beam_cross.job.errors import PlanError
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


def test_config_num_bins_suggested_from_a_first_run(tmp_path):
    """A first run's collision report sizes the second run's generated crosses: each gets the fewest
    bins whose expected collision share, for the distinct crosses of the input, is at most the target.
    The distinct crosses are counted here from the full 64-bit crosses (``num_bins=0``), not read
    from the report."""
    from beam_cross import hashed_cross
    from beam_cross.core.stats import expected_collision_share, suggested_num_bins

    rows = [{"country": c, "hour": h % 24, "device": d} for c, h, d in
            zip(["fr", "us", "de", "日本", "br", "in", "fr"] * 60, range(420), ["ios", "web", "tv", "ios", "car"] * 84)]
    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["country", "hour", "device"])
        writer.writeheader()
        writer.writerows(rows)
    features = "[country, hour, device]"
    (tmp_path / "first.yaml").write_text(f"- all_crosses: {{features: {features}, num_bins: 10}}\n"
                                         "- {features: [device, hour], num_bins: 10}\n")  # a cross all_crosses does not make
    run(["--input", str(tmp_path / "in.csv"), "--config", str(tmp_path / "first.yaml"),
         "--output", str(tmp_path / "first"), "--no_chart"])
    (tmp_path / "second.yaml").write_text(
        f"- all_crosses: {{features: {features}, num_bins: {{suggested_from: first/report/collisions.json, "
        "target_collision_share: 0.05, hour_X_device: 333}}\n")
    output = tmp_path / "second"
    summary = run(["--input", str(tmp_path / "in.csv"), "--config", str(tmp_path / "second.yaml"),
                   "--output", str(output), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (420, 420, 0)
    manifest = json.loads((output / "_MANIFEST.json").read_text())
    bins = {c["name"]: c["num_bins"] for c in manifest["crosses"]}
    columns = {f: [r[f] for r in rows] for f in ("country", "hour", "device")}
    for name in ("country_X_hour", "country_X_device"):
        distinct = len(set(hashed_cross([columns[f] for f in name.split("_X_")], num_bins=0).tolist()))
        assert bins[name] == suggested_num_bins(distinct, 0.05), name
        assert expected_collision_share(distinct, bins[name]) <= 0.05 < expected_collision_share(distinct, bins[name] - 1)
    assert bins["hour_X_device"] == 333  # the config's own bins win over the report's


def test_config_suggested_from_a_missing_report_is_refused(tmp_path):
    (tmp_path / "in.csv").write_text("country,hour\nfr,13\n")
    (tmp_path / "crosses.yaml").write_text("- all_crosses: {features: [country, hour], num_bins: {suggested_from: nope.json}}\n")
    with pytest.raises(PlanError, match=r"crosses.yaml: The collision report .*nope.json cannot be read: No such file"):
        run(["--input", str(tmp_path / "in.csv"), "--config", str(tmp_path / "crosses.yaml"),
             "--output", str(tmp_path / "out"), "--no_chart"])
    assert not (tmp_path / "out").exists()
