"""A model loop learns to route each segment of a population to the model that is best for it.

Three real numpy models run in backends; each is accurate on one segment only
(``simulations/model_routing.py``). /rank chooses a model and returns its
prediction, /reward says whether the prediction was right, and the loop's
policy learns from that alone.
"""

from __future__ import annotations

from collections import Counter

from simulations.model_routing import ACCURACY, INPUTS, ModelRoutingPopulation

ROUNDS = 600
BLOCK = 75


def test_the_bandit_learns_which_model_is_best_for_each_segment(models_service):
    models = sorted(ACCURACY)
    for name in models:
        models_service.register(name, target=f"simulations.model_routing:{name}", inputs=INPUTS, deadlineMs=2000)
    for name in models:
        models_service.wait_up(name)
    service = models_service.service
    service.create_loop("routing", models=models, rewardWaitTime=1.0, updateInterval=0.01, policy="linucb")
    population = ModelRoutingPopulation(seed=3)
    routed: list[tuple[str, str]] = []
    for number in range(1, ROUNDS + 1):
        task = population.next_task()
        answer = models_service.rank("routing", models, task.context)
        assert "fallback" not in answer, answer["fallback"]
        routed.append((task.segment, answer["rewardActionId"]))
        reward = service.client.post("/reward", json={"eventId": answer["eventId"], "value": population.reward(task, answer["prediction"])})
        assert reward.status_code == 202
        if number % BLOCK == 0:
            service.advance(2.0)
            service.learn_all()
    late = routed[-200:]
    best = Counter(model == ModelRoutingPopulation.best(segment) for segment, model in late)
    assert best[True] / len(late) >= 0.85, Counter(late)
    early = routed[:BLOCK]
    assert sum(model == ModelRoutingPopulation.best(segment) for segment, model in early) / BLOCK < 0.6, "it had to learn"
