"""Evaluation over the API (per loop) and from the ``decide`` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from decide.cli import main
from decide.evaluation.logs import loop_log
from decide.evaluation.offline import Options, optimize
from simulations.environments import LinearPayoff

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def traffic(service, loop: str = "default", rounds: int = 120) -> None:
    """Uniformly-logged decisions with rewards from the linear population, joined and archived.

    A small feature dimension keeps the reward model's bootstrap quick.
    """
    service.client.patch(f"/loops/{loop}/config", json={"policy": "uniform", "rewardWaitTime": 1, "featureDimension": 32})
    environment = LinearPayoff(seed=4, n_actions=3)
    for _ in range(rounds):
        played = environment.next_round()
        answer = service.client.post("/rank", json={"loop": loop, "contextFeatures": played.context, "actions": played.actions}).json
        value = environment.reward(played, answer["rewardActionId"])
        service.client.post("/reward", json={"eventId": answer["eventId"], "value": value, "loop": loop})
    service.advance(5)
    service.learn_all()


def test_a_loops_evaluation_is_served_as_json(service):
    traffic(service)
    response = service.client.get("/loops/default/evaluation?candidate=linucb:alpha=1&confidence=0.9")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["loop"] == "default" and body["events"] == 120 and body["confidence"] == 0.9
    assert [p["policy"] for p in body["policies"]] == ["online", "baseline", "uniform", "linucb:alpha=1"]
    online = body["policies"][0]
    assert set(online["estimates"]) == {"ips", "snips", "dm", "dr"}
    assert online["estimates"]["ips"]["lower"] < online["estimates"]["ips"]["value"] < online["estimates"]["ips"]["upper"]
    assert online["diagnostics"]["effective_sample_size"] == pytest.approx(120)


def test_a_loops_report_is_served_as_html(service):
    traffic(service, rounds=60)
    response = service.client.get("/loops/default/report")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<title>decide report: loop default</title>" in page and page.count("data:image/png;base64,") == 5


def test_evaluation_problems_say_what_to_fix(service):
    assert service.client.get("/loops/nowhere/evaluation").status_code == 404
    empty = service.client.get("/loops/default/evaluation")
    assert empty.status_code == 404 and "no decisions with joined rewards" in empty.json["detail"]
    traffic(service, rounds=10)
    bad = service.client.get("/loops/default/evaluation?candidate=linucb:beta=2")
    assert bad.status_code == 400 and bad.json["field"] == "candidate" and "beta" in bad.json["detail"]
    assert service.client.get("/loops/default/evaluation?since=yesterday").json["field"] == "since"
    assert service.client.get("/loops/default/evaluation?limit=0").json["field"] == "limit"


def test_decide_evaluate_exports_and_imports_dsjson_and_writes_results(service, tmp_path):
    traffic(service, rounds=80)
    url = service.settings.database_url
    runner = CliRunner()
    exported = tmp_path / "log.json"
    result = runner.invoke(main, ["evaluate", "--loop", "default", "--database-url", url, "--export-dsjson", str(exported),
                                  "--candidate", "linucb", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "linucb" in result.output and "online" in result.output
    assert len(exported.read_text().splitlines()) == 80
    assert (tmp_path / "out" / "estimates.csv").read_text().count("\n") == 1 + 4 * 4
    from_db = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    config = json.dumps({"featureDimension": 32, "policy": "uniform"})
    again = runner.invoke(main, ["evaluate", "--dsjson", str(exported), "--config", config, "--candidate", "linucb", "--json"])
    assert again.exit_code == 0, again.output
    from_file = json.loads(again.output)
    for a, b in zip(from_db["policies"], from_file["policies"], strict=True):
        assert a["estimates"]["dr"]["value"] == pytest.approx(b["estimates"]["dr"]["value"])


def test_decide_evaluate_optimize_and_report(service, tmp_path):
    traffic(service, rounds=80)
    url = service.settings.database_url
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--loop", "default", "--database-url", url, "--optimize", "--search", "linucb:alpha=0.5|1"])
    assert result.exit_code == 0, result.output
    with service.app.extensions["decide"].sessions() as session:
        log = loop_log(session, "default", None, None, None)
    expected = optimize(log.examples, log.config, ["linucb:alpha=0.5|1"], Options())
    assert expected.message in result.output, "the command prints the recommendation that the same search makes on the same log"
    report = tmp_path / "loop.html"
    result = runner.invoke(main, ["report", "--loop", "default", "--database-url", url, "-o", str(report)])
    assert result.exit_code == 0, result.output
    assert report.read_text().count("<img") == 5


def test_command_mistakes_are_explained(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate"])
    assert result.exit_code != 0 and "--loop NAME" in result.output
    result = runner.invoke(main, ["evaluate", "--loop", "x", "--database-url", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code != 0
    result = runner.invoke(main, ["simulate", "nowhere"])
    assert result.exit_code != 0 and "built-in scenarios" in result.output


def test_decide_simulate_writes_results_curves_and_a_report(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(main, ["simulate", "linear-contextual", "--rounds", "300", "--seeds", "0", "--out", str(out),
                                       "--check-estimators", "uniform"])
    assert result.exit_code == 0, result.output
    assert "linucb" in result.output and "uniform" in result.output
    results = json.loads((out / "results.json").read_text())
    assert {row["policy"] for row in results["summary"]} == {"linucb", "linear_thompson", "epsilon_greedy", "uniform"}
    assert results["offline"]["logging"] == "uniform" and "truth" in results["offline"]["policies"][1]
    assert (out / "curves.csv").read_text().startswith("policy,seed,round,cumulative_reward,cumulative_regret,version")
    page = (out / "report.html").read_text()
    assert "Off-policy estimates against the truth" in page
    again = tmp_path / "again.html"
    assert CliRunner().invoke(main, ["report", "--simulation", str(out / "results.json"), "-o", str(again)]).exit_code == 0
    assert again.read_text() == page


def test_a_scenario_runs_against_a_live_service_over_http(service, small_document):
    import threading

    from werkzeug.serving import make_server

    from decide.client import Client
    from simulations.runner import run_http
    from simulations.scenario import parse_scenario

    small_document["delivery"] = {"delay": 0.01}
    scenario = parse_scenario(small_document).select(rounds=40)
    server = make_server("127.0.0.1", 0, service.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = Client(f"http://127.0.0.1:{server.server_port}")
    try:
        result = run_http(scenario, client, loop_prefix="t-")
        again = run_http(scenario.select(["uniform"]), client, loop_prefix="t-")
    finally:
        client.close()
        server.shutdown()
        thread.join()
    assert result.mode == "http" and [trace.rounds for trace in result.traces] == [40, 40]
    assert all(0 < p <= 1 for trace in result.traces for p in trace.propensities)
    loops = {loop["name"] for loop in service.client.get("/loops").json["loops"]}
    assert {"t-small-uniform-0", "t-small-linucb-0"} <= loops
    assert again.traces[0].rounds == 40, "a rerun resets the loop it made before"
    service.advance(5)
    service.learn_all()
    with service.app.extensions["decide"].sessions() as session:
        from decide.evaluation.logs import read_archive

        archived = read_archive(session, "t-small-uniform-0")
    assert len(archived) == 80 and sum(e.reason == "observed" for e in archived) == 80
