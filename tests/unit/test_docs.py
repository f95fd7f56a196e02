"""docs/configuration.md names every loop setting, deployment variable, policy and policy parameter."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from decide.config import LoopConfig, Settings
from decide.policies import POLICIES

CONFIGURATION = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [f.name for f in fields(LoopConfig)])
def test_every_loop_setting_is_documented(name: str) -> None:
    assert f"| `{name}` |" in CONFIGURATION, f"docs/configuration.md has no row for the loop setting {name}"


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_every_deployment_variable_is_documented(name: str) -> None:
    variable = f"DECIDE_{name.upper()}"
    assert f"| `{variable}` |" in CONFIGURATION, f"docs/configuration.md has no row for {variable}"


@pytest.mark.parametrize(
    ("policy", "parameter"),
    [
        (name, parameter)
        for name, cls in POLICIES.items()
        for parameter in inspect.signature(cls).parameters
        if parameter != "dimension"
    ],
)
def test_every_policy_parameter_is_documented(policy: str, parameter: str) -> None:
    section = CONFIGURATION.split(f"`{policy}`", 1)
    assert len(section) == 2, f"docs/configuration.md does not describe the policy {policy}"
    assert f"| `{parameter}` |" in CONFIGURATION, f"docs/configuration.md has no row for {policy}'s parameter {parameter}"
