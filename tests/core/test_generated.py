"""``all_crosses``: every combination of 2 to ``degree`` features in the given order, each cross's ids
those of ``tf.sparse.cross_hashed`` over its features in that order; the same ids under any
``PYTHONHASHSEED``; spec files holding ``all_crosses`` entries."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beam_cross import Bucketize, Cross, Lookup, all_crosses
from beam_cross.core.spec_file import read_crosses

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "country": ["fr", "us", "de", "fr", "", "日本"],
    "hour": [0, 13, 23, -1, 2**62, 7],
    "device": ["ios", "android", "web", "web", "ios", "tv"],
    "tier": [1, 2, 3, 1, 2, 3],
}


@pytest.mark.parametrize("degree", [2, 3, 4])
def test_the_crosses_are_every_combination_in_position_order(degree):
    features = list(ROWS)
    crosses = all_crosses(features, degree=degree, num_bins=100)
    expected = [c for size in range(2, degree + 1) for c in itertools.combinations(features, size)]
    assert [c.features for c in crosses] == expected
    assert [c.name for c in crosses] == ["_X_".join(c) for c in expected]


def test_each_cross_gives_the_ids_of_tf_sparse_cross_hashed_over_its_features_in_order():
    tf = pytest.importorskip("tensorflow", reason="the oracle is tf.sparse.cross_hashed")
    for cross in all_crosses(list(ROWS), degree=4, num_bins=1000):
        inputs = [tf.constant(np.asarray(ROWS[f], dtype=object if isinstance(ROWS[f][0], str) else np.int64)[:, None])
                  for f in cross.features]
        expected = tf.sparse.cross_hashed(inputs, num_buckets=1000).values.numpy()
        np.testing.assert_array_equal(cross.apply(ROWS), expected, err_msg=cross.name)


def test_transforms_cross_as_their_ids():
    age, tier = Bucketize("age", [18, 25, 35]), Lookup("tier", [1, 2, 3])
    crosses = all_crosses([age, "country", tier], num_bins=50)
    assert [c.inputs for c in crosses] == [(age, "country"), (age, tier), ("country", tier)]
    assert crosses[0] == Cross([age, "country"], 50)


_IDS = """
import json, sys
from beam_cross import all_crosses
rows = json.loads(sys.argv[1])
print(json.dumps({c.name: c.apply(rows).tolist() for c in all_crosses(list(rows), degree=3, num_bins=997)}))
"""


def test_ids_do_not_depend_on_pythonhashseed():
    outputs = set()
    for seed in ("0", "1", "4242", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", _IDS, json.dumps(ROWS)], capture_output=True, text=True,
                              env=env, timeout=120, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == {c.name: c.apply(ROWS).tolist()
                                         for c in all_crosses(list(ROWS), degree=3, num_bins=997)}


def test_exclude_leaves_out_every_combination_holding_a_group():
    names = [c.name for c in all_crosses(list(ROWS), degree=3, num_bins=10, exclude=[["hour"], ["country", "tier"]])]
    assert names == ["country_X_device", "device_X_tier"]


def test_num_bins_by_cross_name_with_a_default():
    crosses = all_crosses(["a", "b", "c"], num_bins={"a_X_c": 7, "*": 100})
    assert [(c.name, c.num_bins) for c in crosses] == [("a_X_b", 100), ("a_X_c", 7), ("b_X_c", 100)]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"features": ["a"], "num_bins": 10}, ValueError, "at least two"),
    ({"features": ["a", "a"], "num_bins": 10}, ValueError, "once"),
    ({"features": "ab", "num_bins": 10}, TypeError, "list of features"),
    ({"features": ["a", "b"], "degree": 5, "num_bins": 10}, ValueError, "from 2 to 4"),
    ({"features": ["a", "b"], "degree": 1, "num_bins": 10}, ValueError, "from 2 to 4"),
    ({"features": ["a", "b"]}, TypeError, "`num_bins` must be given"),
    ({"features": ["a", "b", "c"], "num_bins": {"a_X_b": 3}}, ValueError, r"no bins for \['a_X_c', 'b_X_c'\]"),
    ({"features": ["a", "b"], "num_bins": {"b_X_a": 3, "*": 2}}, ValueError, "not generated"),
    ({"features": ["a", "b"], "num_bins": 10, "exclude": [["z"]]}, ValueError, "not in `features`"),
    ({"features": ["a", "b"], "num_bins": 10, "exclude": [["a"]]}, ValueError, "leaves no cross"),
    ({"features": ["a", "b"], "num_bins": -1}, ValueError, "num_bins"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        all_crosses(**kwargs)


def test_a_spec_file_holds_generated_crosses_next_to_stated_ones(tmp_path):
    path = tmp_path / "crosses.yaml"
    path.write_text(
        "crosses:\n"
        "  - all_crosses: {features: [country, {transform: bucketize, name: age, boundaries: [18, 25]}, device],"
        " num_bins: {'*': 1000, country_X_device: 50}}\n"
        "  - {features: [hour, tier], num_bins: 10}\n"
    )
    crosses = read_crosses(path)
    assert crosses == (*all_crosses(["country", Bucketize("age", [18, 25]), "device"],
                                    num_bins={"*": 1000, "country_X_device": 50}), Cross(["hour", "tier"], 10))


@pytest.mark.parametrize("entry, message", [
    ({"all_crosses": {"num_bins": 10}}, "needs `features`"),
    ({"all_crosses": {"features": ["a", "b"], "num_bins": 10, "depth": 2}}, "unknown keys"),
    ({"all_crosses": {"features": ["a", "b"], "num_bins": 10}, "name": "x"}, "that one key"),
])
def test_a_bad_generated_entry_names_the_file(tmp_path, entry, message):
    path = tmp_path / "crosses.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(ValueError, match=message) as raised:
        read_crosses(path)
    assert str(path) in str(raised.value)


def test_suggested_bins_from_a_report_and_its_checks(tmp_path):
    """``suggested_bins`` gives ``stats.suggested_num_bins`` of each measured count; an estimated count
    counts as its upper bound; a report's other crosses are ignored, a misspelt override is not."""
    from beam_cross import suggested_bins
    from beam_cross.core.stats import suggested_num_bins
    from beam_cross.core.suggested import resolve_num_bins

    report = {"crosses": [
        {"cross": "a_X_b", "distinct_crosses": 500, "target_collision_share": 0.01, "exact": True},
        {"cross": "a_X_c", "distinct_crosses": 2_000_000, "exact": False, "distinct_crosses_95pct_bounds": [1_960_000, 2_040_000]},
        {"cross": "x_X_y", "distinct_crosses": 7},
    ]}
    bins = suggested_bins(report, default=64)
    assert bins == {"a_X_b": suggested_num_bins(500, 0.01), "a_X_c": suggested_num_bins(2_040_000, 0.01),
                    "x_X_y": suggested_num_bins(7, 0.01), "*": 64}
    assert suggested_bins(report, target_collision_share=0.1)["a_X_b"] == suggested_num_bins(500, 0.1)
    assert [(c.name, c.num_bins) for c in all_crosses(["a", "b", "c"], num_bins=bins)] == [
        ("a_X_b", bins["a_X_b"]), ("a_X_c", bins["a_X_c"]), ("b_X_c", 64)]
    (tmp_path / "report.json").write_text(json.dumps(report))
    resolved = resolve_num_bins({"suggested_from": "report.json", "b_X_c": 9, "a_X_x": 1}, tmp_path)
    with pytest.raises(ValueError, match=r"names crosses that are not generated: \['a_X_x'\]"):
        all_crosses(["a", "b", "c"], num_bins=resolved)
    with pytest.raises(ValueError, match="gives no bins for"):
        all_crosses(["a", "b", "d"], num_bins=suggested_bins(report))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"The collision report .*bad.json is not JSON"):
        suggested_bins(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="must name the `cross` and hold its `distinct_crosses`"):
        suggested_bins([{"cross": "a_X_b", "distinct_crosses": "500"}])
