"""decide.extras.require: an optional library, or an error that names the extra installing it."""

from __future__ import annotations

import sys

import pytest

from decide.errors import Unavailable
from decide.extras import require


def test_an_installed_module_is_returned() -> None:
    assert require("json", "report") is sys.modules["json"]


def test_a_missing_module_names_the_extra_that_installs_it() -> None:
    with pytest.raises(Unavailable) as raised:
        require("decide_no_such_library.sub", "postgres")
    assert raised.value.detail == "decide_no_such_library.sub is not installed"
    assert "pip install 'decide[postgres]'" in str(raised.value)
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_a_missing_dependency_of_an_installed_module_is_not_blamed_on_the_extra(tmp_path, monkeypatch) -> None:
    (tmp_path / "decide_broken_library.py").write_text("import decide_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="decide_missing_dependency"):
        require("decide_broken_library", "kafka")
    sys.modules.pop("decide_broken_library", None)
