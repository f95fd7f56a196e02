"""The compiled kernels must give exactly what the Python and numpy code they speed up gives.

Featurization's common case (``decide/_featurize.c``) must equal the Python
definition bit for bit, or step aside; Thompson sampling's kernels
(``decide/policies/_thompson.c``) must count the same wins as numpy, or step aside.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest

from decide import features
from decide.features import FeatureError, FeatureSpace
from decide.policies import distributions
from decide.policies.base import ActionSet
from decide.policies.distributions import (
    antithetic_win_frequencies,
    compiled_shared_thompson,
)
from decide.policies.linear import SINGULAR_PIVOT, LinearThompson, covariance_factor
from decide.policies.params import NonFiniteInput

if features._featurize is None or distributions._thompson is None:
    if os.environ.get("DECIDE_REQUIRE_COMPILED"):
        pytest.fail("the C extensions were not built; CI installs with a C compiler and must test them", pytrace=False)
    pytest.skip("the C extensions are not built (no C compiler at install)", allow_module_level=True)

TEXTS = ["", "a", "gold", "US", "en-GB", "é", "naïve café", "中文", "🙂", "a=b", "x^y", "p.q", "[0]", "_lead", "true"]


def text(rng: random.Random) -> str:
    return rng.choice(TEXTS) + (str(rng.randint(0, 9)) if rng.random() < 0.3 else "")


def number(rng: random.Random) -> float | int:
    return rng.choice([
        rng.random(), -rng.random(), 0.0, -0.0, 1e300, -1e-300, 5e-324, rng.uniform(-1e6, 1e6),
        rng.randint(-5, 5), rng.randint(-(2**62), 2**62), 2**63 + 1, -(2**70), 10**300,
    ])


def value(rng: random.Random, depth: int):
    kind = rng.random()
    if kind < 0.25:
        return text(rng)
    if kind < 0.5:
        return number(rng)
    if kind < 0.6:
        return rng.random() < 0.5
    if kind < 0.65:
        return None
    if kind < 0.8 and depth < 4:
        return feature_object(rng, depth + 1)
    items = [rng.choice([text(rng), number(rng), None]) for _ in range(rng.randint(0, 4))]
    return items if rng.random() < 0.8 else tuple(items)


def feature_object(rng: random.Random, depth: int = 0) -> dict:
    return {text(rng): value(rng, depth) for _ in range(rng.randint(0, 6))}


def feature_list(rng: random.Random):
    shape = rng.random()
    if shape < 0.1:
        return None
    if shape < 0.3:
        return feature_object(rng)
    return [feature_object(rng) if rng.random() < 0.9 else None for _ in range(rng.randint(0, 4))]


def document(rng: random.Random) -> tuple[object, list[dict]]:
    ids = rng.sample(["a", "b", "article-7", "é", "中文", "_x", "id=1", "🙂"], rng.randint(1, 8))
    actions = []
    for action_id in ids:
        action = {"id": action_id}
        if rng.random() < 0.8:
            action["features"] = feature_list(rng)
        actions.append(action)
    return feature_list(rng), actions


def assert_same(compiled, reference) -> None:
    assert compiled.ids == reference.ids
    assert compiled.context.tobytes() == reference.context.tobytes()
    assert compiled.features.tobytes() == reference.features.tobytes()
    assert compiled.eligible.tobytes() == reference.eligible.tobytes()


@pytest.mark.parametrize("interactions", [True, False])
@pytest.mark.parametrize("dimension", [1, 2, 3, 64, 256, 1000, 4096])
def test_compiled_vectors_equal_the_python_definition_bit_for_bit(dimension, interactions):
    rng = random.Random(dimension * 2 + interactions)
    compiled = FeatureSpace(dimension, interactions)
    reference = FeatureSpace(dimension, interactions, compiled=False)
    for _ in range(300):
        context, actions = document(rng)
        excluded = [action["id"] for action in actions if rng.random() < 0.2]
        assert_same(compiled.action_set(context, actions, excluded), reference.action_set(context, actions, excluded))


def test_the_compiled_path_takes_every_valid_document():
    """Valid input never falls back to Python, or the speed would silently be gone."""
    rng = random.Random(7)
    for _ in range(300):
        context, actions = document(rng)
        context_vector, matrix = np.zeros(64), np.zeros((len(actions), 64))
        assert features._featurize.action_set(context, actions, 64, True, context_vector, matrix) is not None


def nested(depth: int) -> dict:
    inner: dict = {"leaf": "x", "n": 1.5}
    for level in range(depth):
        inner = {f"k{level}": inner}
    return inner


@pytest.mark.parametrize(
    ("context", "actions"),
    [
        pytest.param([{"x": math.nan}], [{"id": "a"}], id="nan"),
        pytest.param([{"x": -math.inf}], [{"id": "a"}], id="infinity"),
        pytest.param([{"x": 10**400}], [{"id": "a"}], id="integer beyond a double"),
        pytest.param([{"x": [True]}], [{"id": "a"}], id="boolean in a list"),
        pytest.param([{"x": [{"y": 1}]}], [{"id": "a"}], id="object in a list"),
        pytest.param([{"x": [[1]]}], [{"id": "a"}], id="list in a list"),
        pytest.param([{"x": {1, 2}}], [{"id": "a"}], id="unsupported type"),
        pytest.param([3], [{"id": "a"}], id="feature list holding a number"),
        pytest.param("user", [{"id": "a"}], id="context is a string"),
        pytest.param([], ["a"], id="action not an object"),
        pytest.param([], [{"features": []}], id="action without id"),
        pytest.param([], [{"id": ""}], id="empty id"),
        pytest.param([], [{"id": 7}], id="id not a string"),
        pytest.param([], [{"id": "a"}, {"id": "a"}], id="duplicate id"),
        pytest.param([], [{"id": "a", "features": "topic"}], id="features a string"),
        pytest.param([], [{"id": "a", "features": [{"x": math.inf}]}], id="non-finite action feature"),
    ],
)
def test_invalid_input_falls_back_to_the_python_error(context, actions):
    context_vector, matrix = np.zeros(16), np.zeros((len(actions), 16))
    assert features._featurize.action_set(context, actions, 16, True, context_vector, matrix) is None
    with pytest.raises(FeatureError) as compiled:
        FeatureSpace(16).action_set(context, actions)
    with pytest.raises(FeatureError) as reference:
        FeatureSpace(16, compiled=False).action_set(context, actions)
    assert (compiled.value.path, compiled.value.detail) == (reference.value.path, reference.value.detail)


def test_deep_nesting_is_left_to_python_and_still_equal():
    context = [nested(100)]
    assert_same(FeatureSpace(64).action_set(context, [{"id": "a"}]), FeatureSpace(64, compiled=False).action_set(context, [{"id": "a"}]))


def test_arrays_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="features must be a zeroed float64 array"):
        features._featurize.action_set([], [{"id": "a"}], 8, True, np.zeros(8), np.zeros((2, 8)))


@pytest.mark.parametrize("samples", [1, 2, 7, 256, 1001])
def test_compiled_thompson_counts_equal_numpys(samples):
    rng = np.random.default_rng(samples)
    for case in range(200):
        k = int(rng.integers(1, 12))
        means = rng.normal(0.0, float(rng.choice([1e-3, 1.0, 100.0])), k)
        rows = rng.normal(0.0, 1.0, (k, int(rng.integers(1, 20))))
        factor = covariance_factor(rows @ rows.T) if case % 3 else np.diag(rng.uniform(0.0, 2.0, k))
        normals = rng.standard_normal(((samples + 1) // 2, k))
        eligible = rng.random(k) < 0.8
        eligible[rng.integers(k)] = True
        compiled = antithetic_win_frequencies(means, factor, normals, eligible, samples)
        assert compiled.tobytes() == antithetic_win_frequencies(means, factor, normals, eligible, samples, compiled=False).tobytes()
        assert compiled[~eligible].sum() == 0 and compiled.sum() == pytest.approx(1.0)


def test_compiled_thompson_refuses_a_decision_without_eligible_actions():
    with pytest.raises(ValueError, match="no eligible action"):
        antithetic_win_frequencies(np.zeros(3), np.eye(3), np.ones((2, 3)), np.zeros(3, dtype=bool), 4)


def thompson_case(rng: np.random.Generator, dimension: int, actions: int) -> tuple[LinearThompson, dict, ActionSet]:
    """A linear Thompson policy with a snapshot learned from sparse random examples, and sparse candidates."""
    policy = LinearThompson(
        dimension=dimension, samples=int(rng.integers(1, 300)), scale=float(rng.uniform(0.1, 3.0)),
        floor=float(rng.choice([0.0, 0.05, 0.5])),
    )
    examples = rng.standard_normal((int(rng.integers(0, 200)), dimension)) * (rng.random((1, dimension)) < 0.5)
    snapshot = policy.snapshot({"xx": examples.T @ examples, "xr": examples.T @ rng.standard_normal(len(examples))})
    features = rng.standard_normal((actions, dimension)) * (rng.random((actions, dimension)) < 0.45)
    eligible = rng.random(actions) < 0.8
    eligible[rng.integers(actions)] = True
    return policy, snapshot, ActionSet(tuple(map(str, range(actions))), np.zeros(dimension), features, eligible)


def numpy_probabilities(policy: LinearThompson, snapshot: dict, actions: ActionSet, seed: int, monkeypatch) -> np.ndarray:
    with monkeypatch.context() as patch:
        patch.setattr(distributions, "_thompson", None)
        return policy.probabilities(snapshot, actions, np.random.default_rng(seed))


def test_compiled_linear_thompson_equals_its_numpy_definition(monkeypatch):
    """Every dimension's column blocks and tail, more candidates than dimensions (singular covariances) included."""
    rng = np.random.default_rng(7)
    compiled_cases = 0
    for case in range(600):
        dimension = int(rng.choice([1, 3, 8, 16, 70, 64, 256]))
        policy, snapshot, actions = thompson_case(rng, dimension, int(rng.integers(1, 13)))
        seed = int(rng.integers(2**31))
        normals = np.random.default_rng(seed).standard_normal(((policy.samples + 1) // 2, len(actions.ids)))
        compiled = compiled_shared_thompson(
            actions.features, snapshot["theta"], snapshot["chol"], normals, actions.eligible,
            policy.samples, policy.scale, policy.floor, SINGULAR_PIVOT,
        )
        reference = numpy_probabilities(policy, snapshot, actions, seed, monkeypatch)
        served = policy.probabilities(snapshot, actions, np.random.default_rng(seed))
        np.testing.assert_allclose(served, reference, rtol=0, atol=1e-12)
        if compiled is not None:
            compiled_cases += 1
            assert compiled.tobytes() == served.tobytes()
    assert compiled_cases > 350  # 409: the rest have more candidates than dimensions, or an all-zero candidate


def test_compiled_linear_thompson_steps_aside_where_numpy_must_decide(monkeypatch):
    rng = np.random.default_rng(3)
    policy, snapshot, actions = thompson_case(rng, 16, 4)
    normals = np.zeros(((policy.samples + 1) // 2, 4))
    arguments = (normals, actions.eligible, policy.samples, policy.scale, policy.floor, SINGULAR_PIVOT)
    assert compiled_shared_thompson(actions.features, snapshot["theta"], snapshot["chol"], *arguments) is not None
    assert compiled_shared_thompson(actions.features, None, None, *arguments) is None  # the prior: no θ yet
    assert compiled_shared_thompson(actions.features.astype(np.float32), snapshot["theta"], snapshot["chol"], *arguments) is None
    twins = actions.features.copy()
    twins[1] = twins[0]
    assert compiled_shared_thompson(twins, snapshot["theta"], snapshot["chol"], *arguments) is None
    twin_actions = ActionSet(actions.ids, actions.context, twins, actions.eligible)
    np.testing.assert_allclose(
        policy.probabilities(snapshot, twin_actions, np.random.default_rng(1)),
        numpy_probabilities(policy, snapshot, twin_actions, 1, monkeypatch), rtol=0, atol=1e-12,
    )
    huge = actions.features.copy()
    huge[0, 0] = 1e39  # beyond single precision in the projection
    assert compiled_shared_thompson(huge, snapshot["theta"], snapshot["chol"], *arguments) is None
    with pytest.raises(NonFiniteInput):
        policy.probabilities(snapshot, ActionSet(actions.ids, actions.context, huge, actions.eligible), np.random.default_rng(1))


def test_compiled_linear_thompson_refuses_a_decision_without_eligible_actions():
    rng = np.random.default_rng(5)
    _, snapshot, actions = thompson_case(rng, 8, 3)
    with pytest.raises(ValueError, match="no eligible action"):
        compiled_shared_thompson(
            actions.features, snapshot["theta"], snapshot["chol"], np.zeros((2, 3)), np.zeros(3, dtype=bool), 4, 1.0, 0.0,
            SINGULAR_PIVOT,
        )


def test_the_served_factor_is_lower_triangular_as_the_kernel_assumes():
    """The kernel skips the factor's upper triangle; a factor with anything there would be projected wrong."""
    rng = np.random.default_rng(11)
    for dimension in (1, 5, 64, 256):
        _, snapshot, _ = thompson_case(rng, dimension, 2)
        assert snapshot["chol"].dtype == np.float32 and not np.triu(snapshot["chol"], 1).any()
