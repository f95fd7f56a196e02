"""Loading models: a model that cannot load says why; scikit-learn and ONNX models.

The adapters' tests need the ``sklearn`` and ``onnx`` extras (and ``onnx`` itself, a
test dependency, to build a model). Without them they skip, unless
``DECIDE_REQUIRE_ADAPTERS=1`` (as in CI), where a missing library fails the run.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from decide.serving.backend import EXIT_LOAD, spawn
from decide.serving.protocol import socket_path
from decide.serving.spec import ModelSpec
from tests.serving.conftest import model_environment


def required(module: str):
    """``module``, imported; skipped without it, or failed when the adapters are required."""
    if os.environ.get("DECIDE_REQUIRE_ADAPTERS") == "1":
        try:
            return importlib.import_module(module)
        except ImportError as error:
            pytest.fail(f"DECIDE_REQUIRE_ADAPTERS=1 but {module} is missing ({error}); pip install -e '.[test,sklearn,onnx]'")
    return pytest.importorskip(module)


def test_a_model_that_cannot_be_loaded_ends_its_backend_with_the_reason(backend_dir):
    spec = ModelSpec(target="tests.serving.models:no_such_model")
    process = spawn("missing", 1, spec, socket_path(backend_dir, "missing", 0), model_environment())
    assert process.wait(timeout=30) == EXIT_LOAD


def test_a_pickled_sklearn_model_answers_with_the_method_asked_for(start_backend, tmp_path):
    required("sklearn")
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 2))
    model = LogisticRegression().fit(features, features[:, 0] > 0)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    backend = start_backend("sk", target=str(path), kind="sklearn", method="predict_proba", inputs=["a", "b"])
    calls = [backend.call([3.0, 0.0], budget=10.0), backend.call([-3.0, 0.0], budget=10.0)]
    (low, high), (high_again, low_again) = (call.wait(10.0)["y"] for call in calls)
    assert high > 0.9 and high_again > 0.9 and low < 0.1 and low_again < 0.1


def test_an_onnx_model_answers_from_its_first_output(start_backend, tmp_path):
    required("onnxruntime")
    onnx = required("onnx")
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [2.0, 3.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [weights],
    )
    path = tmp_path / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    backend = start_backend("ox", target=str(path), kind="onnx", inputs=["a", "b"])
    assert backend.call([1.0, 1.0], budget=10.0).wait(10.0)["y"] == [5.0]


def test_the_backend_needs_no_optional_dependency_for_numpy_models():
    script = "import sys, decide.serving.backend; sys.exit(any(m in sys.modules for m in ('sklearn', 'onnxruntime', 'flask', 'sqlalchemy')))"
    assert subprocess.run([sys.executable, "-c", script], env=model_environment()).returncode == 0
