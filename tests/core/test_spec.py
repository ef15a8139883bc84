"""``Cross``: validation, naming, dict/JSON round trip, ``apply`` (checked against the golden vectors)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from beam_cross import Cross, hashed_cross


def test_default_name_is_tf_crossed_column_naming():
    assert Cross(["country", "hour"], 10).name == "country_X_hour"
    assert Cross(("a", "b", "c"), 10).name == "a_X_b_X_c"
    assert Cross(["a", "b"], 10, name="mine").name == "mine"


def test_fields_and_defaults():
    cross = Cross(["a", "b"], np.int64(1000))
    assert cross.features == ("a", "b")
    assert cross.num_bins == 1000 and type(cross.num_bins) is int
    assert (cross.output_mode, cross.hash_key) == ("int", None)
    assert Cross(["a", "b"], 5, hash_key=np.int32(-3)).hash_key == -3


def test_features_from_any_iterable_of_names():
    assert Cross(iter(["a", "b"]), 5).features == ("a", "b")
    assert Cross((f for f in "xy"), 5).features == ("x", "y")


def test_frozen_and_hashable():
    cross = Cross(["a", "b"], 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cross.num_bins = 6
    assert {cross: 1}[Cross(["a", "b"], 5)] == 1
    assert cross != Cross(["b", "a"], 5)  # order matters: the cross is not commutative


@pytest.mark.parametrize(
    "cross",
    [
        Cross(["a", "b"], 5),
        Cross(["a", "b", "c"], 1, name="abc", output_mode="one_hot", hash_key=-(2**63)),
        Cross(["x", "y"], 2**63 - 1, hash_key=2**63 - 1),
    ],
)
def test_dict_and_json_round_trip(cross):
    config = cross.to_dict()
    assert set(config) == {"features", "num_bins", "name", "output_mode", "hash_key"}
    assert Cross.from_dict(config) == cross
    assert Cross.from_json(cross.to_json()) == cross
    assert json.loads(cross.to_json()) == config


def test_from_dict_defaults():
    cross = Cross.from_dict({"features": ["a", "b"], "num_bins": 7})
    assert cross == Cross(["a", "b"], 7)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((["a"], 5), {}, ValueError, r"A cross needs at least two features\. Received: features=\['a'\]"),
        (([], 5), {}, ValueError, r"at least two features"),
        ((["a", "a"], 5), {}, ValueError, r"`features` must not repeat a name\. Received: features=\['a', 'a'\]"),
        (("ab", 5), {}, TypeError, r"`features` must be a list of feature names .* Received: features='ab'"),
        ((["a", 1], 5), {}, TypeError, r"Received: features=\['a', 1\]"),
        ((["a", ""], 5), {}, TypeError, r"non-empty strings"),
        ((5, 5), {}, TypeError, r"Received: features=5"),
        ((["a", "b"], -1), {}, ValueError, r"`num_bins` must be a non-negative int64 .* Received: num_bins=-1"),
        ((["a", "b"], 5.0), {}, TypeError, r"`num_bins` must be an int\. Received: num_bins=5\.0"),
        ((["a", "b"], True), {}, TypeError, r"Received: num_bins=True"),
        ((["a", "b"], 5), {"output_mode": "multi_hot"}, ValueError,
         r"`output_mode` must be one of \('int', 'one_hot'\)\. Received: output_mode='multi_hot'"),
        ((["a", "b"], 5), {"name": ""}, ValueError, r"`name` must be a non-empty string or None\. Received: name=''"),
        ((["a", "b"], 5), {"name": 3}, ValueError, r"Received: name=3"),
        ((["a", "b"], 5), {"hash_key": 2**63}, ValueError, r"`hash_key` must fit in int64"),
        ((["a", "b"], 5), {"hash_key": "1"}, TypeError, r"`hash_key` must be an int or None"),
    ],
)
def test_validation_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Cross(*args, **kwargs)


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ({"features": ["a", "b"]}, ValueError, r"needs `features` and `num_bins`"),
        ({"num_bins": 5}, ValueError, r"needs `features` and `num_bins`"),
        ({"features": ["a", "b"], "num_bins": 5, "bins": 5}, ValueError, r"Unknown keys in a cross config: \['bins'\]"),
        ({"features": ["a", "b"], "num_bins": "5"}, TypeError, r"Received: num_bins='5'"),
        (["a", "b"], TypeError, r"A cross config must be a dict"),
    ],
)
def test_from_dict_errors(config, error, match):
    with pytest.raises(error, match=match):
        Cross.from_dict(config)


def test_from_json_errors():
    with pytest.raises(ValueError):
        Cross.from_json("not json")
    with pytest.raises(TypeError, match=r"must be a dict"):
        Cross.from_json("[1, 2]")


def test_apply_uses_the_cross_order_bins_and_key(golden):
    cases = {case["id"]: case for case in golden("cross_dense.json")}
    example = cases["worked_example_bins5"]
    columns = {"country": example["columns"][0]["values"], "hour": example["columns"][1]["values"], "unused": [0] * 5}
    np.testing.assert_array_equal(Cross(["country", "hour"], 5).apply(columns), example["expected"])
    keyed = cases["hash_key_12345"]
    columns = {"s": keyed["columns"][0]["values"], "i": keyed["columns"][1]["values"]}
    np.testing.assert_array_equal(Cross(["s", "i"], keyed["num_bins"], hash_key=12345).apply(columns), keyed["expected"])
    # one_hot is for the front doors: apply always returns the integer bins.
    np.testing.assert_array_equal(Cross(["s", "i"], 7, output_mode="one_hot", hash_key=12345).apply(columns),
                                  Cross(["s", "i"], 7, hash_key=12345).apply(columns))


def test_apply_reversed_order_differs_and_matches_hashed_cross():
    columns = {"a": ["x", "y", "z"], "b": [1, 2, 3]}
    forward, backward = Cross(["a", "b"], 0).apply(columns), Cross(["b", "a"], 0).apply(columns)
    np.testing.assert_array_equal(backward, hashed_cross([columns["b"], columns["a"]], 0))
    assert not np.array_equal(forward, backward)


def test_apply_missing_feature_and_bad_values_name_them():
    cross = Cross(["country", "hour"], 10)
    with pytest.raises(KeyError, match=r"Cross `country_X_hour` needs features \['hour'\], missing from the input"):
        cross.apply({"country": ["fr"]})
    with pytest.raises(ValueError, match=r"^Feature `hour`: floats cannot be crossed") as info:
        cross.apply({"country": ["fr", "us"], "hour": [1, 2.5]})
    assert (info.value.feature, info.value.row) == ("hour", 1)
