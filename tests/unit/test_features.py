"""Featurization: flattening rules, error paths, stable hashing and what the vectors can express."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import decide
from decide.features import FeatureError, FeatureSpace, flatten

BIG = 2**20
"""A dimension large enough that the few features of a test never collide."""


def crc_index(key: str, dimension: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % dimension


def crc_sign(key: str) -> float:
    return -1.0 if zlib.crc32(key.encode("utf-8")) & 0x80000000 else 1.0


# Flattening


def test_string_is_one_hot_on_name_and_value() -> None:
    assert flatten([{"country": "US"}]) == [("country=US", 1.0)]


def test_numbers_keep_their_value_as_floats() -> None:
    assert flatten([{"age": 30, "score": -0.25}]) == [("age", 30.0), ("score", -0.25)]


def test_booleans_are_one_hot() -> None:
    assert flatten([{"mobile": True, "returning": False}]) == [
        ("mobile=true", 1.0),
        ("returning=false", 1.0),
    ]


def test_nested_objects_are_namespaces() -> None:
    features = [{"user": {"age": 30, "profile": {"lang": "en"}}}]
    assert flatten(features) == [("user^age", 30.0), ("user.profile^lang=en", 1.0)]


def test_numeric_list_is_positional() -> None:
    assert flatten([{"embedding": [0.5, -1, 2.0]}]) == [
        ("embedding[0]", 0.5),
        ("embedding[1]", -1.0),
        ("embedding[2]", 2.0),
    ]


def test_string_list_is_multi_hot() -> None:
    assert flatten([{"user": {"tags": ["sports", "news"]}}]) == [
        ("user^tags=sports", 1.0),
        ("user^tags=news", 1.0),
    ]


def test_underscore_keys_are_ignored_at_any_depth() -> None:
    features = [{"_private": "x", "user": {"_id": 7, "age": 3}, "_ns": {"a": 1}}]
    assert flatten(features) == [("user^age", 3.0)]


def test_nulls_are_ignored_but_keep_list_positions() -> None:
    features = [{"a": None, "user": {"b": None}, "v": [1.0, None, 3.0]}, None]
    assert flatten(features) == [("v[0]", 1.0), ("v[2]", 3.0)]


def test_single_object_is_accepted_like_a_one_item_list() -> None:
    assert flatten({"a": "b", "n": 2}) == flatten([{"a": "b"}, {"n": 2}])


def test_absent_features_flatten_to_nothing() -> None:
    assert flatten(None) == []
    assert flatten([]) == []


# Errors a person can act on


@pytest.mark.parametrize(
    ("context", "path"),
    [
        ([{"a": 1}, {"user": {"age": math.nan}}], "contextFeatures[1].user.age"),
        ([{"price": math.inf}], "contextFeatures[0].price"),
        ([{"v": [1.0, 2.0, -math.inf]}], "contextFeatures[0].v[2]"),
        ({"user": {"first name": {"len": math.nan}}}, 'contextFeatures.user["first name"].len'),
        ([{"a": {"a": math.nan}}], "contextFeatures[0].a.a"),
        ([{"big": 10**400}], "contextFeatures[0].big"),
    ],
)
def test_non_finite_numbers_are_rejected_with_their_path(context: object, path: str) -> None:
    with pytest.raises(FeatureError) as caught:
        FeatureSpace().action_set(context, [{"id": "a"}])
    assert caught.value.path == path
    assert str(caught.value).startswith(path + ": ")
    assert "finite" in caught.value.detail or "too large" in caught.value.detail


def test_bad_action_feature_path_names_the_action() -> None:
    actions = [{"id": "a"}, {"id": "b", "features": [{"x": 1}, {"price": math.nan}]}]
    with pytest.raises(FeatureError) as caught:
        FeatureSpace().action_set([], actions)
    assert caught.value.path == "actions[1].features[1].price"


def test_context_path_names_the_request_field() -> None:
    with pytest.raises(FeatureError) as caught:
        FeatureSpace().action_set({"x": math.nan}, [{"id": "a"}], context_path="context")
    assert caught.value.path == "context.x"


@pytest.mark.parametrize(
    ("features", "path"),
    [
        ([{"items": [{"a": 1}]}], "features[0].items[0]"),
        ([{"matrix": [[1, 2]]}], "features[0].matrix[0]"),
        ([{"flags": [True]}], "features[0].flags[0]"),
        ([{"odd": {1, 2}}], "features[0].odd"),
        (["not an object"], "features[0]"),
        ("not a list", "features"),
    ],
)
def test_unsupported_values_are_rejected(features: object, path: str) -> None:
    with pytest.raises(FeatureError) as caught:
        flatten(features)
    assert caught.value.path == path
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("actions", "path"),
    [
        ({"id": "a"}, "actions"),
        (["a"], "actions[0]"),
        ([{"features": []}], "actions[0].id"),
        ([{"id": ""}], "actions[0].id"),
        ([{"id": 3}], "actions[0].id"),
        ([{"id": "a"}, {"id": "a"}], "actions[1].id"),
        ([{"id": "a", "features": 5}], "actions[0].features"),
    ],
)
def test_malformed_actions_are_rejected(actions: object, path: str) -> None:
    with pytest.raises(FeatureError) as caught:
        FeatureSpace().action_set([], actions)
    assert caught.value.path == path


# Hashing


def test_context_index_and_sign_come_from_crc32() -> None:
    """Pins the hash function: changing it would silently scramble every stored model."""
    actions = FeatureSpace(dimension=BIG).action_set([{"country": "US", "age": 30}], [{"id": "a"}])
    expected = {
        crc_index("_bias", BIG): crc_sign("_bias"),
        crc_index("country=US", BIG): crc_sign("country=US"),
        crc_index("age", BIG): 30.0 * crc_sign("age"),
    }
    nonzero = np.flatnonzero(actions.context)
    assert sorted(nonzero.tolist()) == sorted(expected)
    for index, value in expected.items():
        assert actions.context[index] == value


def test_action_vectors_are_pinned() -> None:
    """Pins the cross hash for the same reason; update only with a migration plan."""
    actions = FeatureSpace(dimension=BIG).action_set(
        {"country": "US"}, [{"id": "a", "features": {"color": "red"}}]
    )
    row = actions.features[0]
    assert np.flatnonzero(row).tolist() == [137792, 168414, 284870, 319733, 829896]
    assert row[np.flatnonzero(row)].tolist() == [1.0, 1.0, -1.0, -1.0, 1.0]


def test_colliding_features_accumulate_with_their_signs() -> None:
    context = [{"a": 2.0, "b": "x"}, {"a": 0.5}]
    actions = [{"id": "p", "features": {"size": 3.0}}]
    result = FeatureSpace(dimension=1).action_set(context, actions)
    context_sum = crc_sign("_bias") + 2.5 * crc_sign("a") + crc_sign("b=x")
    action_terms = crc_sign("_id=p") + 3.0 * crc_sign("size")
    assert result.context[0] == pytest.approx(context_sum)
    assert result.features[0, 0] == pytest.approx(crc_sign("_bias") + context_sum * action_terms)


def test_featurization_is_deterministic_across_calls() -> None:
    space = FeatureSpace()
    context = [{"user": {"age": 41, "tags": ["a", "b"]}, "mobile": True}]
    actions = [{"id": "x", "features": {"price": 9.5}}, {"id": "y"}]
    first = space.action_set(context, actions)
    second = space.action_set(context, actions)
    np.testing.assert_array_equal(first.context, second.context)
    np.testing.assert_array_equal(first.features, second.features)


def test_featurization_is_stable_across_processes() -> None:
    """Workers, learners and replays run in other processes, with other hash seeds."""
    script = (
        "from decide.features import FeatureSpace\n"
        "s = FeatureSpace(dimension=128).action_set("
        "{'user': {'age': 41}, 'country': 'FR'}, [{'id': 'x', 'features': {'c': 'red'}}])\n"
        "print(repr(s.context.tolist()), repr(s.features.tolist()))\n"
    )
    root = str(Path(decide.__file__).resolve().parents[1])
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


# Action sets


def test_shapes_follow_the_dimension() -> None:
    actions = [{"id": str(i), "features": {"f": float(i)}} for i in range(5)]
    for dimension in (1, 7, 64, 1000):
        result = FeatureSpace(dimension=dimension).action_set([{"a": 1, "b": "c"}], actions)
        assert result.context.shape == (dimension,)
        assert result.features.shape == (5, dimension)
        assert result.ids == ("0", "1", "2", "3", "4")


@pytest.mark.parametrize("dimension", [0, -1, 2**24 + 1, True, 3.0])
def test_invalid_dimension_is_rejected(dimension: object) -> None:
    with pytest.raises(ValueError, match="dimension"):
        FeatureSpace(dimension=dimension)  # type: ignore[arg-type]


def test_no_actions_gives_an_empty_matrix() -> None:
    result = FeatureSpace(dimension=16).action_set({"a": 1}, [])
    assert result.features.shape == (0, 16)
    assert result.eligible.shape == (0,)


def test_excluded_actions_stay_in_place_but_are_ineligible() -> None:
    actions = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    result = FeatureSpace().action_set({}, actions, excluded_ids=["b", "unknown"])
    assert result.ids == ("a", "b", "c")
    assert result.eligible.dtype == bool
    assert result.eligible.tolist() == [True, False, True]


def test_different_ids_give_different_vectors() -> None:
    result = FeatureSpace().action_set({"a": 1}, [{"id": "x"}, {"id": "y"}])
    assert not np.array_equal(result.features[0], result.features[1])


def test_action_features_may_be_a_list_an_object_or_absent() -> None:
    space = FeatureSpace(dimension=BIG)
    as_list = space.action_set({}, [{"id": "a", "features": [{"c": "red"}]}]).features
    as_object = space.action_set({}, [{"id": "a", "features": {"c": "red"}}]).features
    absent = space.action_set({}, [{"id": "a"}]).features
    np.testing.assert_array_equal(as_list, as_object)
    assert np.count_nonzero(as_list) == np.count_nonzero(absent) + 1


def test_interactions_make_action_vectors_depend_on_context() -> None:
    actions = [{"id": "x", "features": {"price": 2.0}}]
    with_cross = FeatureSpace(interactions=True)
    without = FeatureSpace(interactions=False)
    seg_a, seg_b = {"segment": "a"}, {"segment": "b"}
    assert not np.array_equal(
        with_cross.action_set(seg_a, actions).features,
        with_cross.action_set(seg_b, actions).features,
    )
    np.testing.assert_array_equal(
        without.action_set(seg_a, actions).features, without.action_set(seg_b, actions).features
    )
    assert not np.array_equal(
        with_cross.action_set(seg_a, actions).features, without.action_set(seg_a, actions).features
    )


def best_action_per_segment(space: FeatureSpace) -> dict[str, str]:
    """Fit a least-squares payoff model on noisy samples and read off its favourite actions."""
    rng = np.random.default_rng(7)
    payoff = {("a", "x"): 1.0, ("a", "y"): 0.2, ("b", "x"): 0.1, ("b", "y"): 0.9}
    actions = [
        {"id": "x", "features": {"kind": "video"}},
        {"id": "y", "features": {"kind": "text"}},
    ]
    rows, rewards = [], []
    for _ in range(200):
        segment = str(rng.choice(["a", "b"]))
        choice = int(rng.integers(2))
        featurized = space.action_set({"segment": segment, "hour": 3}, actions)
        rows.append(featurized.features[choice])
        rewards.append(payoff[(segment, featurized.ids[choice])] + rng.normal(0, 0.05))
    theta = np.linalg.lstsq(np.array(rows), np.array(rewards), rcond=None)[0]
    best = {}
    for segment in ("a", "b"):
        featurized = space.action_set({"segment": segment, "hour": 3}, actions)
        best[segment] = featurized.ids[int(np.argmax(featurized.features @ theta))]
    return best


def test_linear_model_on_interactions_learns_per_context_payoffs() -> None:
    assert best_action_per_segment(FeatureSpace(interactions=True)) == {"a": "x", "b": "y"}


def test_without_interactions_a_shared_model_cannot_personalize() -> None:
    best = best_action_per_segment(FeatureSpace(interactions=False))
    assert best["a"] == best["b"]
