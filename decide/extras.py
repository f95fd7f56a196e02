"""Optional dependencies: the base install runs only the embedded default, the rest come with an extra.

``pip install decide`` carries what SQLite and the embedded event log need.
PostgreSQL (``postgres``), Kafka (``kafka``) and HTML reports (``report``)
each need a library that only its extra installs; the code that needs one
imports it through ``require``, so a missing one says which extra to install
instead of failing with a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from decide.errors import Unavailable


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise Unavailable naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise
        raise Unavailable(
            f"{module} is not installed", fix=f"install decide's {extra!r} extra: pip install 'decide[{extra}]'"
        ) from error
