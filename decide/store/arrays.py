"""Named numpy arrays as one binary blob that keeps each array's dtype and shape."""

from __future__ import annotations

import io

import numpy as np

from decide.policies.base import Arrays


def pack(arrays: Arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack(blob: bytes) -> Arrays:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
