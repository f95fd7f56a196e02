"""Turn a model's target into one batch function: inputs for a whole batch in, one prediction each out.

Only backend processes call this, so a model's import side effects, native
libraries and memory stay out of the API. A python target is an import path
to a function (called with the batch), a class (instantiated without
arguments) or an object (its ``method`` is called). sklearn and ONNX models
need the optional extras ``decide[sklearn]`` and ``decide[onnx]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from decide.serving.spec import PICKLE_SUFFIXES, ModelSpec

BatchFunction = Callable[[Any], Any]


class LoadError(RuntimeError):
    """The model cannot be loaded; the message says what to fix."""


def load(spec: ModelSpec) -> BatchFunction:
    if spec.kind == "onnx":
        return _onnx(spec.target)
    if spec.kind == "sklearn" and spec.target.endswith(PICKLE_SUFFIXES):
        return _bound(_unpickle(spec.target), spec.method, spec.target)
    return _bound(_import(spec.target), spec.method, spec.target)


def make_batch(spec: ModelSpec, inputs: Sequence[Any]) -> Any:
    """The argument the batch function gets: a float matrix for models with ``inputs``, else the list of inputs."""
    if spec.inputs is None:
        return list(inputs)
    dtype = np.float32 if spec.kind == "onnx" else np.float64
    return np.asarray(inputs, dtype=dtype).reshape(len(inputs), len(spec.inputs))


def predictions(output: Any, expected: int) -> list[Any]:
    """One JSON-ready prediction per input, or ValueError saying why the model's output is unusable."""
    if isinstance(output, np.ndarray):
        output = output.tolist()
    elif not isinstance(output, list):
        output = list(output)
    if len(output) != expected:
        raise ValueError(f"the model returned {len(output)} predictions for a batch of {expected} inputs")
    return [item.tolist() if isinstance(item, (np.ndarray, np.generic)) else item for item in output]


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise LoadError(f"cannot import '{module_name}' for target '{target}': {error}") from error
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError as error:
            raise LoadError(f"'{module_name}' has no attribute '{attribute}' (target '{target}')") from error
    return found


def _bound(found: Any, method: str, target: str) -> BatchFunction:
    if isinstance(found, type):
        found = found()
    bound = getattr(found, method, None)
    if callable(bound):
        return bound
    if callable(found):
        return found
    raise LoadError(f"'{target}' is neither callable nor has a '{method}' method")


def _unpickle(path: str) -> Any:
    try:
        import joblib
    except ImportError as error:
        raise LoadError("loading a pickled sklearn model needs the sklearn extra: pip install 'decide[sklearn]'") from error
    try:
        return joblib.load(path)
    except OSError as error:
        raise LoadError(f"cannot read '{path}': {error}") from error


def _onnx(path: str) -> BatchFunction:
    try:
        import onnxruntime
    except ImportError as error:
        raise LoadError("ONNX models need the onnx extra: pip install 'decide[onnx]'") from error
    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise LoadError(f"cannot load the ONNX model '{path}': {error}") from error
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> Any:
        return session.run(None, {input_name: batch})[0]

    return run
