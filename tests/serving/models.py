"""Models for the serving tests, which backend processes load by import path (``tests.serving.models:...``).

They take raw JSON inputs (no ``inputs`` in their spec) so a test can say what
each request should do: ``{"tag": t}`` answers ``t``; ``"sleep"`` makes the
batch take that long; ``"log"`` names a file to which every computed tag is
appended, which is how a test proves a request was never computed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def echo(batch: list[dict[str, Any]]) -> list[Any]:
    time.sleep(max(float(item.get("sleep", 0.0)) for item in batch))
    logs = {item["log"] for item in batch if "log" in item}
    for path in logs:
        with open(path, "a") as log:
            log.writelines(f"{item['tag']}\n" for item in batch if item.get("log") == path)
    return [item.get("tag") for item in batch]


def linear_cost(batch: list[Any]) -> list[int]:
    """Takes 2 ms plus 1 ms per input, like a model whose batch cost grows with its size."""
    time.sleep(0.002 + 0.001 * len(batch))
    return [len(batch)] * len(batch)


def misbehave(batch: list[Any]) -> list[str]:
    """Hangs on ``{"do": "hang"}``, fails on ``"fail"``, takes 1 GiB on ``"hog"``, else answers ``fine``.

    Inputs are rank contexts (lists of feature objects) or single objects.
    """
    kinds = {feature.get("do") for item in batch for feature in (item if isinstance(item, list) else [item])}
    if "hang" in kinds:
        time.sleep(3600)
    if "fail" in kinds:
        raise ValueError("asked to fail")
    if "hog" in kinds:
        hoard = [np.ones(2**25) for _ in range(4)]
        return [str(len(hoard))] * len(batch)
    return ["fine"] * len(batch)


def constant(batch: Any) -> list[str]:
    return ["backup"] * len(batch)
