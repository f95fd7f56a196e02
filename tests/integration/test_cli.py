"""The ``decide`` command against a real database: migrate and manage loops."""

from __future__ import annotations

import json

from click.testing import CliRunner

from decide import features
from decide.cli import main, missing_kernels_note
from decide.policies import distributions


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
