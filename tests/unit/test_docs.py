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


def policy_section(policy: str) -> str:
    """The text describing ``policy``: from its own heading or bold name to the next policy's or heading."""
    starts = [marker for marker in (f"**`{policy}`**", f"### `{policy}`") if marker in CONFIGURATION]
    assert starts, f"docs/configuration.md does not describe the policy {policy}"
    rest = CONFIGURATION.split(starts[0], 1)[1]
    ends = [index for index in (rest.find("\n**`"), rest.find("\n#")) if index >= 0]
    return rest[: min(ends, default=len(rest))]


def documented_default(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize(
    ("policy", "parameter", "default"),
    [
        (name, parameter.name, parameter.default)
        for name, cls in POLICIES.items()
        for parameter in inspect.signature(cls).parameters.values()
        if parameter.name != "dimension"
    ],
)
def test_every_policy_parameter_is_documented_with_its_default_in_its_policys_table(policy: str, parameter: str, default: object) -> None:
    expected = "explorationFloor" if parameter == "floor" else documented_default(default)
    row = f"| `{parameter}` | `{expected}` |"
    assert row in policy_section(policy), f"the section on {policy} in docs/configuration.md has no row {row!r}"


@pytest.mark.parametrize("policy", [name for name, cls in POLICIES.items() if not set(inspect.signature(cls).parameters) - {"dimension"}])
def test_a_policy_without_parameters_documents_no_parameter_table(policy: str) -> None:
    assert "| Parameter |" not in policy_section(policy)
