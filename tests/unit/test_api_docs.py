"""docs/api.md is generated from the OpenAPI document; it must be what the generator renders now."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

from decide.api.openapi import document

ROOT = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date() -> None:
    rendered = generator().render(document())
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    if current != rendered:
        diff = "\n".join(
            list(difflib.unified_diff(current.splitlines(), rendered.splitlines(), "docs/api.md", "rendered", lineterm="", n=1))[:40]
        )
        pytest.fail(f"docs/api.md is out of date; regenerate it with `python scripts/api_docs.py`:\n{diff}")


def test_every_operation_and_schema_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    spec = document()
    for path, item in spec["paths"].items():
        for method in item:
            assert f"### {method.upper()} {path}\n" in text
    for name in spec["components"]["schemas"]:
        assert f"### {name}\n" in text


def test_an_undescribed_field_stops_the_generator() -> None:
    module = generator()
    spec = document()
    spec["components"]["schemas"]["RankRequest"]["properties"]["novel"] = {"type": "string"}
    with pytest.raises(module.Incomplete, match="RankRequest.novel"):
        module.render(spec)


def test_notes_for_an_operation_the_document_lost_stop_the_generator() -> None:
    module = generator()
    spec = document()
    del spec["paths"]["/loops/{name}/reset"]
    with pytest.raises(module.Incomplete, match="no longer has"):
        module.render(spec)
