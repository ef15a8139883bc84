"""Unlearned transforms (``Bucketize(name, num_buckets=k)``, ``Lookup(name, max_tokens=...)``), their
round trips, their refusal to cross, and what they learn: vocabularies against Keras ``adapt`` itself,
quantiles against their exact definition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from beam_cross import Bucketize, Cross, FeatureError, Lookup
from beam_cross.core.learning import (
    exact_counts,
    exact_quantiles,
    learn_exactly,
    learned,
    rank_error,
    unlearned_transforms,
)
from beam_cross.core.spec import NOT_LEARNED, CrossSpecError, check_crosses, check_crosses_against
from beam_cross.core.transform_base import NotLearnedError

UNLEARNED = [Bucketize("age", num_buckets=4), Lookup("country", max_tokens=5), Lookup("tag", style="feature_column",
             max_tokens=3, min_count=2, num_oov_indices=2), Lookup("hour", min_count=3)]


@pytest.mark.parametrize("transform", UNLEARNED, ids=repr)
def test_unlearned_transforms_round_trip(transform):
    cross = Cross([transform, "other"], 100)
    assert not transform.learned and not cross.learned
    assert Cross.from_dict(cross.to_dict()) == cross
    assert Cross.from_json(cross.to_json()) == cross
    assert Cross.from_dict(yaml.safe_load(yaml.safe_dump(cross.to_dict()))) == cross
    assert "vocabulary" not in json.dumps(cross.to_dict()) and "boundaries" not in json.dumps(cross.to_dict())


def test_learned_forms_keep_what_they_learned_from():
    learned_age = Bucketize("age", num_buckets=4).learn([10, 20, 30])
    assert learned_age.to_dict() == {"transform": "bucketize", "name": "age", "boundaries": [10.0, 20.0, 30.0],
                                     "num_buckets": 4}
    learned_country = Lookup("country", max_tokens=5, min_count=2).learn({"fr": 3, "us": 2, "de": 1})
    assert learned_country.to_dict() == {"transform": "lookup", "name": "country", "vocabulary": ["fr", "us"],
                                         "num_oov_indices": 1, "style": "keras", "max_tokens": 5, "min_count": 2}
    for transform in (learned_age, learned_country):
        cross = Cross([transform, "x"], 10)
        assert cross.learned and Cross.from_json(cross.to_json()) == cross


@pytest.mark.parametrize("transform", UNLEARNED, ids=repr)
def test_an_unlearned_transform_refuses_to_cross(transform):
    cross = Cross([transform, "other"], 100)
    with pytest.raises(NotLearnedError, match=rf"Feature `{transform.name}`: .* is not learned yet .*learn it first"):
        cross.apply({transform.name: [1], "other": ["a"]})
    with pytest.raises(NotLearnedError, match="LearnCrosses"):
        transform([1, 2])
    with pytest.raises(CrossSpecError, match=rf"Cross `{transform.name}_X_other` cannot cross yet: .* learn it first") as info:
        check_crosses([cross], require_learned=True)
    assert info.value.problem == NOT_LEARNED and info.value.features == (transform.name,)
    with pytest.raises(CrossSpecError, match="cannot cross yet"):
        check_crosses_against([cross], {transform.name: "int", "other": "string"}, require_learned=True)
    assert check_crosses([cross]) == (cross,)  # a spec to learn is a valid spec


def test_unlearned_arguments_are_checked():
    with pytest.raises(TypeError, match=r"needs `boundaries`, or `num_buckets`"):
        Bucketize("age")
    with pytest.raises(ValueError, match=r"`num_buckets` must be an int64 >= 2"):
        Bucketize("age", num_buckets=1)
    with pytest.raises(ValueError, match=r"make 4 buckets, more than num_buckets=3"):
        Bucketize("age", [1, 2, 3], num_buckets=3)
    with pytest.raises(ValueError, match=r"`max_tokens` counts the 2 OOV ids .* Received: max_tokens=2"):
        Lookup("c", max_tokens=2, num_oov_indices=2)
    with pytest.raises(ValueError, match=r"`min_count` must be an int64 >= 1"):
        Lookup("c", min_count=0)
    with pytest.raises(ValueError, match=r"holds 3 tokens, more than max_tokens=3 allows"):
        Lookup("c", ["a", "b", "c"], max_tokens=3)  # Keras: 3 ids, one of them OOV
    assert Lookup("c", ["a", "b", "c"], max_tokens=3, style="feature_column").most_tokens == 3
    with pytest.raises(ValueError, match=r"needs \['boundaries \(or num_buckets, to learn them\)'\]"):
        Cross.from_dict({"features": [{"transform": "bucketize", "name": "age"}, "x"], "num_bins": 3})


def _keras_vocabulary(data, layer):
    layer.adapt(np.asarray(data))
    return [t.decode() if isinstance(t, bytes) else t for t in layer.get_vocabulary()[layer.num_oov_indices:]]


TOKENS = (["x", "y", "y", "z", "z", "w"] + ["a"] * 7 + ["b"] * 7 + ["é"] * 3 + ["ab"] * 3 + ["[UNK]"] * 9
          + [f"t{i % 17}" for i in range(200)])


@pytest.mark.parametrize(("max_tokens", "num_oov_indices"), [(None, 1), (6, 1), (6, 3), (40, 2), (2, 1)])
def test_a_learned_string_vocabulary_is_keras_adapt(max_tokens, num_oov_indices):
    from keras.layers import StringLookup

    expected = _keras_vocabulary(TOKENS, StringLookup(max_tokens=max_tokens, num_oov_indices=num_oov_indices))
    lookup = Lookup("w", max_tokens=max_tokens, num_oov_indices=num_oov_indices).learn(exact_counts(Lookup("w"), TOKENS))
    assert list(lookup.vocabulary) == expected


def test_a_learned_integer_vocabulary_is_keras_adapt():
    from keras.layers import IntegerLookup

    data = [5, 5, 7, 7, -1, -1, -1, 2**40, 2**40, 3, 0, 0, 0] + [i % 11 for i in range(100)]
    for max_tokens in (None, 4):
        expected = _keras_vocabulary(np.asarray(data, np.int64), IntegerLookup(max_tokens=max_tokens))
        lookup = Lookup("n", max_tokens=max_tokens).learn(exact_counts(Lookup("n"), data))
        assert list(lookup.vocabulary) == [int(t) for t in expected]


def test_feature_column_vocabularies_count_max_tokens_as_the_vocabulary_size():
    counts = {"a": 5, "b": 5, "c": 2, "": 9, "d": 1}
    assert Lookup("w", style="feature_column", max_tokens=2).learn(counts).vocabulary == ("b", "a")
    assert Lookup("w", style="feature_column", min_count=2).learn(counts).vocabulary == ("b", "a", "c")  # '' dropped
    assert Lookup("w", min_count=2).learn(counts).vocabulary == ("", "b", "a", "c")  # Keras keeps ''


def test_learning_refuses_what_it_cannot_learn():
    with pytest.raises(ValueError, match=r"Feature `w`: .* learned an empty vocabulary.*min_count=3"):
        Lookup("w", min_count=3).learn({"a": 2})
    with pytest.raises(FeatureError, match=r"`w`.*both") as info:
        Lookup("w").learn([("a", 1), (2, 1)])
    assert info.value.reason == "mixed_kinds"
    with pytest.raises(FeatureError, match=r"`w`.*not valid UTF-8"):
        Lookup("w").learn([(b"\xff", 1)])
    with pytest.raises(ValueError, match=r"Feature `age`: .* learned no boundary"):
        Bucketize("age", num_buckets=3).learn([float("nan")])
    with pytest.raises(FeatureError, match=r"`age`.*takes ints or floats, not strings") as info:
        learn_exactly([Cross([Bucketize("age", num_buckets=3), "x"], 10)], {"age": ["a"], "x": [1]})
    assert info.value.feature == "age" and info.value.value == "a"  # the str it was, not its UTF-8 bytes
    with pytest.raises(FeatureError, match=r"`c`.*not floats"):
        exact_counts(Lookup("c"), [1.5])


def test_bytes_and_strings_count_as_one_token():
    assert exact_counts(Lookup("w"), [b"fr", "fr", np.str_("fr"), "us"]) == {"fr": 3, "us": 1}
    assert Lookup("w").learn([(b"fr", 1), ("fr", 2), ("us", 2)]).vocabulary == ("fr", "us")


def test_exact_quantiles_and_boundaries():
    values = np.arange(1000.0)
    assert exact_quantiles(values, 4) == [249.0, 499.0, 749.0]
    assert rank_error(values, exact_quantiles(values, 4), 4) == 0
    ties = [0.0] * 900 + list(range(1, 101))
    boundaries = Bucketize("t", num_buckets=4).learn(exact_quantiles(ties, 4)).boundaries
    assert boundaries == (0.0,)  # the three inner quantiles are 0: deduplicated to one boundary
    assert rank_error(ties, boundaries, 4) == 0
    assert exact_quantiles([3.0, float("nan"), 1.0, 2.0], 2) == [2.0]
    # float32 rounding may merge boundaries; subnormals compare as 0
    assert Bucketize("t", num_buckets=4).learn([0.1, np.nextafter(0.1, 1), 0.2]).boundaries == (
        float(np.float32(0.1)), float(np.float32(0.2)))
    assert Bucketize("t", num_buckets=3).learn([0.0, 1e-40]).boundaries == (0.0,)


def test_rank_error_measures_the_distance_in_ranks():
    values = np.arange(100.0)
    assert rank_error(values, [24.0, 49.0, 74.0], 4) == 0
    assert rank_error(values, [24.0, 49.0, 79.0], 4) == 0.05
    assert rank_error(values, [24.0, 74.0], 4) == 0.25  # a target with no boundary near it
    assert rank_error(values, [24.5, 49.0, 74.0], 4) == 0.005  # between two values: half a rank


def test_learned_fills_in_every_cross_once():
    age, country = Bucketize("age", num_buckets=3), Lookup("country", max_tokens=3)
    crosses = [Cross([age, "hour"], 10), Cross([age, country], 10, name="a_c"), Cross(["x", "y"], 5)]
    assert unlearned_transforms(crosses) == (age, country)
    out = learned(crosses, {age: [20, 40], country: {"fr": 2, "us": 1, "de": 1}})
    assert [c.learned for c in out] == [True, True, True]
    assert out[0].inputs[0] is out[1].inputs[0]
    assert out[1].inputs[1].vocabulary == ("fr", "us") and out[1].name == "a_c" and out[2] == crosses[2]
    with pytest.raises(ValueError, match=r"`stats` lacks the statistics of Lookup\('country', max_tokens=3"):
        learned(crosses, {age: [20]})
    columns = {"age": [10, 30, 50], "hour": [1, 2, 3], "country": ["fr", "fr", "us"], "x": [1, 2, 3], "y": [1, 2, 3]}
    ids = [c.apply(columns).tolist() for c in learn_exactly(crosses, columns)]
    manual = [Cross([Bucketize("age", [10, 30]), "hour"], 10), Cross([Bucketize("age", [10, 30]),
              Lookup("country", ["fr", "us"])], 10, name="a_c"), crosses[2]]
    assert ids == [c.apply(columns).tolist() for c in manual]
