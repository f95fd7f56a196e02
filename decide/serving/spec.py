"""What a registered model is: where its code is, how it is fed, batched, replicated and replaced.

One validated description is shared by the API, the CLI, the supervisor and the
backend processes (which receive it as JSON), so a setting means the same
everywhere. Field names are camelCase, like loop settings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ModelKind = Literal["python", "sklearn", "onnx"]

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class ModelSpec(BaseModel):
    """A model's settings; every field but ``target`` has a default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    kind: ModelKind = Field("python", description="`python` (numpy only), `sklearn` or `onnx` (optional extras).")
    target: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "Where the model is: an import path `package.module:attr` (python and sklearn), or a file: "
            "`.joblib`/`.pkl` (sklearn) or `.onnx` (onnx). The backend process imports or loads it, never the API."
        ),
    )
    method: str = Field(
        "predict",
        pattern=r"^[A-Za-z_]\w*$",
        description="The method called on an object target with the batch; a plain function target is called itself.",
    )
    inputs: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] | None = Field(
        None,
        max_length=65536,
        validate_default=True,
        description=(
            "Feature names (as flattened from `contextFeatures`, e.g. `user^age` or `user^tier=gold`) that make "
            "the model's numeric input row, in this order; absent features are 0. Without `inputs`, the model "
            "receives each request's `contextFeatures` as JSON."
        ),
    )
    replicas: int = Field(1, ge=1, le=64, description="Backend processes serving the model.")
    maxBatchSize: int = Field(64, ge=1, le=65536, description="The largest batch the backend forms.")
    maxWaitMs: float = Field(2.0, ge=0.0, le=1000.0, description="How long a lone request waits for others to batch with.")
    latencyObjectiveMs: float = Field(
        50.0, gt=0.0, le=60000.0, description="The latency the batch size adapts to keep requests under."
    )
    deadlineMs: float | None = Field(
        None, gt=0.0, le=60000.0, description="How long /rank waits for a prediction before falling back; default: the objective."
    )
    queueLimit: int = Field(1024, ge=1, le=1_000_000, description="Requests a replica queues before rejecting new ones.")
    fallback: ModelName | None = Field(
        None, description="A model asked when this one fails fast (rejects, errors or is down) and time is left."
    )
    default: Any = Field(None, description="The prediction answered when no model answers in time.")
    memoryLimitMb: int | None = Field(
        None, ge=64, le=1_048_576, description="Memory a replica may allocate beyond the loaded model before it is restarted."
    )
    hangTimeoutS: float = Field(10.0, gt=0.0, le=3600.0, description="A replica busy or silent this long is killed and restarted.")

    @field_validator("target")
    @classmethod
    def _target_fits_kind(cls, target: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind", "python")
        is_import = bool(IMPORT_PATH.match(target))
        if kind == "python" and not is_import:
            raise ValueError("the target of a python model must be an import path 'package.module:attr'")
        if kind == "sklearn" and not (is_import or target.endswith(PICKLE_SUFFIXES)):
            raise ValueError("the target of a sklearn model must be an import path or a .joblib/.pkl file")
        if kind == "onnx" and not target.endswith(".onnx"):
            raise ValueError("the target of an onnx model must be a .onnx file")
        return target

    @field_validator("inputs")
    @classmethod
    def _rows_for_array_models(cls, inputs: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = info.data.get("kind", "python")
        if kind != "python" and not inputs:
            raise ValueError(f"a {kind} model takes numeric rows: list the feature names that make a row")
        return inputs

    @property
    def deadline(self) -> float:
        """Seconds /rank waits for this model."""
        return (self.deadlineMs if self.deadlineMs is not None else self.latencyObjectiveMs) / 1000.0

    def changed(self, changes: dict[str, Any]) -> ModelSpec:
        """This spec with ``changes`` applied, validated as a whole."""
        return ModelSpec.model_validate(self.model_dump() | changes)
