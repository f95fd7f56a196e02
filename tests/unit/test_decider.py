"""The decision's draw and ranking, which the API computes without numpy's and pydantic's checks."""

from __future__ import annotations

import numpy as np

from decide.api.decider import choose, decision_rng, ranking


def test_choose_draws_exactly_what_rng_choice_draws() -> None:
    """Decisions logged before the change are reproduced by the same event id and version."""
    shapes = np.random.default_rng(0)
    for seed in range(500):
        p = shapes.dirichlet(np.ones(7))
        p[shapes.random(7) < 0.3] = 0.0
        if p.sum() == 0:
            p[3] = 1.0
        p /= p.sum()
        expected = decision_rng(f"event-{seed}", 4).choice(len(p), p=p)
        assert choose(p.tolist(), decision_rng(f"event-{seed}", 4)) == expected


def test_ranking_puts_the_chosen_action_first_then_by_probability() -> None:
    ranked = ranking(("a", "b", "c", "d"), [0.1, 0.4, 0.1, 0.4], chosen=2)
    assert ranked == [
        {"id": "c", "probability": 0.1},
        {"id": "b", "probability": 0.4},
        {"id": "d", "probability": 0.4},
        {"id": "a", "probability": 0.1},
    ]
