"""The ``decide`` command against a real database: migrate, manage loops, and the first steps of a newcomer."""

from __future__ import annotations

import importlib.metadata
import json
import socket

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from decide import features
from decide.cli import demo as demo_commands
from decide.cli import main
from decide.cli import worker as worker_commands
from decide.cli.serve import missing_kernels_note
from decide.client import ApiError, Client
from decide.policies import distributions
from tests.conftest import POSTGRES_URL


def run(*arguments: str) -> str:
    result = CliRunner().invoke(main, list(arguments), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_migrate_then_manage_loops(database_url):
    assert "up to date" in run("migrate", "--database-url", database_url)
    assert "up to date" in run("migrate", "--database-url", database_url), "migrating twice is harmless"
    db = ("--database-url", database_url)
    assert json.loads(run("loops", "list", *db)) == {"default": 1}
    created = json.loads(run("loops", "create", "offers", "--set", "policy=linucb", "--set", "rewardWaitTime=30", *db))
    assert created["config"]["policy"] == "linucb" and created["config"]["rewardWaitTime"] == 30
    configured = json.loads(run("loops", "configure", "offers", "--set", "explorationFloor=0.1", *db))
    assert configured["version"] == 2 and configured["note"] == "configured"
    restarted = json.loads(run("loops", "configure", "offers", "--set", "featureDimension=64", *db))
    assert "learning restarted" in restarted["note"]
    assert json.loads(run("loops", "rollback", "offers", "1", *db))["note"] == "rollback to 1"
    assert json.loads(run("loops", "reset", "offers", *db))["note"] == "reset"
    assert [v["version"] for v in json.loads(run("loops", "versions", "offers", *db))] == [5, 4, 3, 2, 1]
    assert json.loads(run("loops", "show", "offers", *db))["version"] == 5


def test_cli_errors_are_messages_not_tracebacks(database_url):
    run("migrate", "--database-url", database_url)
    missing = CliRunner().invoke(main, ["loops", "show", "nope", "--database-url", database_url])
    assert missing.exit_code == 1 and "no loop named 'nope'" in missing.output
    invalid = CliRunner().invoke(main, ["loops", "configure", "default", "--set", "discount=2", "--database-url", database_url])
    assert invalid.exit_code == 2 and "discount must be in" in invalid.output


def test_loop_names_duplicates_and_deletion(database_url):
    db = ["--database-url", database_url]
    run("migrate", *db)
    bad_name = CliRunner().invoke(main, ["loops", "create", "bad/name", *db])
    assert bad_name.exit_code == 2 and "letters, digits" in bad_name.output
    run("loops", "create", "offers", *db)
    again = CliRunner().invoke(main, ["loops", "create", "offers", *db])
    assert again.exit_code == 1 and "already exists" in again.output
    bad_setting = CliRunner().invoke(main, ["loops", "create", "other", "--set", "policy=nope", *db])
    assert bad_setting.exit_code == 2 and "policy must be one of" in bad_setting.output
    assert "deleted loop 'offers'" in run("loops", "delete", "offers", "--yes", *db)
    assert json.loads(run("loops", "list", *db)) == {"default": 1}


def test_bad_environment_settings_are_reported_plainly(database_url, monkeypatch):
    monkeypatch.setenv("DECIDE_PARTITIONS", "zero")
    result = CliRunner().invoke(main, ["migrate", "--database-url", database_url])
    assert result.exit_code == 1 and "DECIDE_PARTITIONS must be a whole number" in result.output


def test_serve_says_when_the_compiled_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(features, "COMPILED", True)
    monkeypatch.setattr(distributions, "COMPILED", True)
    assert missing_kernels_note() is None
    monkeypatch.setattr(features, "COMPILED", False)
    assert "featurization kernel is not built" in missing_kernels_note()
    monkeypatch.setattr(distributions, "COMPILED", False)
    assert "featurization and Thompson sampling kernels are not built" in missing_kernels_note()


def test_version_comes_from_the_installed_package():
    assert run("--version").strip() == f"decide, version {importlib.metadata.version('decide')}"


@pytest.mark.parametrize("command", [["loops", "list"], ["loops", "show", "default"], ["models", "list"], ["evaluate", "--loop", "default"],
                                     ["report", "--loop", "default"], ["worker"], ["models", "serve"]])
def test_commands_on_a_missing_database_say_where_they_looked_and_create_nothing(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DECIDE_DATABASE_URL", raising=False)
    missing = CliRunner().invoke(main, command)
    assert missing.exit_code == 1 and missing.output.count("\n") == 1, missing.output
    assert str(tmp_path / "decide.db") in missing.output
    assert all(hint in missing.output for hint in ("--database-url", "DECIDE_DATABASE_URL", "decide migrate"))
    assert not (tmp_path / "decide.db").exists(), "looking for a database never creates one"
    (tmp_path / "decide.db").touch()
    empty = CliRunner().invoke(main, command)
    assert empty.exit_code == 1 and "has no decide tables" in empty.output and "decide migrate" in empty.output, empty.output


def test_worker_says_what_it_works_on_when_it_starts(database_url, monkeypatch):
    run("migrate", "--database-url", database_url)
    monkeypatch.setattr(worker_commands, "stop_requested", lambda: lambda: True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = run("worker", "--database-url", database_url, "--metrics-port", str(port))
    assert started.startswith("decide worker learns from database ")
    assert "event log embedded (4 partitions)" in started and f"metrics on http://127.0.0.1:{port}/metrics" in started
    if POSTGRES_URL and database_url == POSTGRES_URL and make_url(POSTGRES_URL).password:
        assert make_url(POSTGRES_URL).password not in started


class FlaskClient(Client):
    """The demo's HTTP client, answered by an app in this process."""

    def __init__(self, service) -> None:
        self.service = service

    def request(self, method: str, path: str, body=None):
        answer = self.service.client.open(path, method=method, json=body)
        if answer.status_code >= 400:
            raise ApiError(answer.status_code, answer.json)
        return answer.json

    def close(self) -> None:
        pass


def test_demo_says_whether_it_created_its_loop_or_continues_one(service, monkeypatch):
    monkeypatch.setattr(demo_commands, "Client", lambda url: FlaskClient(service))
    first = run("demo", "--rounds", "2", "--report-every", "1")
    assert "created loop 'demo': nothing learned yet" in first
    service.advance(10)
    service.learn_all()
    again = run("demo", "--rounds", "1", "--report-every", "1")
    assert "continuing loop 'demo' at version 2, which has learned from 2 examples" in again
    assert "decide loops reset demo" in again


def test_loop_settings_read_the_same_whatever_number_was_given(database_url):
    db = ("--database-url", database_url)
    run("migrate", *db)
    created = json.loads(run("loops", "create", "offers", "--set", "rewardWaitTime=60", *db))
    default = json.loads(run("loops", "show", "default", *db))
    assert created["config"]["rewardWaitTime"] == 60.0 and type(created["config"]["rewardWaitTime"]) is float
    assert all(type(default["config"][name]) is type(created["config"][name]) for name in default["config"])
