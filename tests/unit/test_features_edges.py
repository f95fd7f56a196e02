"""Edges of featurization that the main tests leave open (found by mutation testing).

Every error's full message (what a person reads, with the JSON kind of the bad
value), the field an error names, the sign bit's exact boundary, numbers that
are not plain ``float``/``int`` (numpy's), the largest dimension, overflow, an
empty action set's mask, and featurizing where the compiled module is absent.
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest

import decide.features as features_module
from decide.features import FeatureError, FeatureSpace, flatten
from decide.limits import MAX_HASH_DIMENSION


@pytest.mark.parametrize(
    ("value", "path", "detail"),
    [
        ("not a list", "features", "expected a list of JSON objects (or one object), got string"),
        (5, "features", "expected a list of JSON objects (or one object), got number"),
        (True, "features", "expected a list of JSON objects (or one object), got boolean"),
        (["x"], "features[0]", "expected a JSON object of features, got string"),
        ([[1]], "features[0]", "expected a JSON object of features, got array"),
        ([{"a": {1, 2}}], "features[0].a", "unsupported value of type set; use a string, number, boolean, list or object"),
        (
            [{"a": [{"b": 1}]}], "features[0].a[0]",
            "a feature list may hold only numbers and strings, got object; put structured values in a nested object instead",
        ),
        (
            [{"a": [1, True]}], "features[0].a[1]",
            "a feature list may hold only numbers and strings, got boolean; put structured values in a nested object instead",
        ),
        (
            [{"a": [[1]]}], "features[0].a[0]",
            "a feature list may hold only numbers and strings, got array; put structured values in a nested object instead",
        ),
        ([{"a": 10**400}], "features[0].a", "number is too large; send a value that fits in a double"),
        ([{"a": math.nan}], "features[0].a", "number must be finite, got nan; send a finite value or leave the feature out"),
    ],
)
def test_every_flattening_error_says_what_was_sent_and_what_to_send(value, path, detail):
    with pytest.raises(FeatureError) as caught:
        flatten(value)
    assert (caught.value.path, caught.value.detail) == (path, detail)
    assert caught.value.field == path, "the API names the field at fault from the error"
    assert str(caught.value) == f"{path}: {detail}"


@pytest.mark.parametrize(
    ("actions", "path", "detail"),
    [
        ({"id": "a"}, "actions", "expected a list of actions, got object"),
        (None, "actions", "expected a list of actions, got null"),
        (["a"], "actions[0]", "expected an action object, got string"),
        ([{"id": ""}], "actions[0].id", "every action needs a non-empty string id"),
        ([{"id": "a"}, {"id": "a"}], "actions[1].id", "duplicate action id 'a'; ids must be unique"),
    ],
)
@pytest.mark.parametrize("compiled", [True, False])
def test_every_action_error_says_what_is_wrong(actions, path, detail, compiled):
    with pytest.raises(FeatureError) as caught:
        FeatureSpace(compiled=compiled).action_set([], actions)
    assert (caught.value.path, caught.value.detail, caught.value.field) == (path, detail, path)


def test_a_stored_decision_that_cannot_be_featurized_says_why():
    # chosen_vectors trusts decisions validated at /rank; if one is not, the learner's error must still be readable.
    with pytest.raises(Exception, match="number must be finite"):
        FeatureSpace(16).chosen_vectors([({"x": math.nan}, {"id": "a"})])


def test_a_crc_of_exactly_two_to_the_31_is_negative():
    key = "edge=vu}aqhca"  # a string feature: edge = "vu}aqhca"
    assert zlib.crc32(key.encode()) == 2**31
    for compiled in (True, False):
        space = FeatureSpace(256, compiled=compiled)
        with_it = space.action_set({"edge": "vu}aqhca", "n": 1.0}, [{"id": "a"}]).context
        without = space.action_set({"n": 1.0}, [{"id": "a"}]).context
        assert (with_it - without)[2**31 % 256] == -1.0
        assert np.count_nonzero(with_it - without) == 1
    contexts, _ = FeatureSpace(256).chosen_vectors([({"edge": "vu}aqhca", "n": 1.0}, {"id": "a"})])
    assert contexts[0].tobytes() == with_it.tobytes()


def test_numpy_numbers_are_numbers():
    # numpy's float64 is a float subclass: callers in Python (simulations, replays) pass them as numbers
    assert flatten({"x": np.float64(0.5), "y": 3}) == [("x", 0.5), ("y", 3.0)]
    assert flatten({"x": [np.float64(1.5)]}) == [("x[0]", 1.5)]
    with pytest.raises(FeatureError, match="number must be finite"):
        flatten({"x": np.float64("inf")})


def test_the_largest_dimension_is_accepted_and_one_more_is_not():
    largest = MAX_HASH_DIMENSION
    assert FeatureSpace(dimension=largest).dimension == largest
    with pytest.raises(ValueError, match=f"dimension must be an integer from 1 to {largest}"):
        FeatureSpace(dimension=largest + 1)


def test_products_that_overflow_are_left_to_the_policy_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        actions = FeatureSpace(64, compiled=False).action_set({"x": 1e200}, [{"id": "a", "features": {"y": 1e200}}])
    assert np.isinf(actions.features).any()


@pytest.mark.parametrize("compiled", [True, False])
def test_an_empty_action_set_has_a_boolean_mask_that_indexes_its_rows(compiled):
    actions = FeatureSpace(32, compiled=compiled).action_set({"x": 1.0}, [])
    assert actions.eligible.dtype == bool
    assert actions.features[actions.eligible].shape == (0, 32)


def test_featurization_runs_in_python_alone_where_the_compiled_module_was_not_built(monkeypatch):
    context = {"user": {"age": 31.0, "country": "FR"}, "tags": ["a", "b"]}
    actions = [{"id": "x", "features": {"price": 2.5}}, {"id": "y"}]
    expected = FeatureSpace(128).action_set(context, actions, ["y"])
    monkeypatch.setattr(features_module, "_featurize", None)
    for compiled in (True, False):
        got = FeatureSpace(128, compiled=compiled).action_set(context, actions, ["y"])
        assert got.ids == expected.ids
        assert got.context.tobytes() == expected.context.tobytes()
        assert got.features.tobytes() == expected.features.tobytes()
        assert got.eligible.tolist() == [True, False]
