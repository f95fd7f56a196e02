"""Request and response bodies of the HTTP API; the OpenAPI document is generated from them.

Field names follow the Azure Personalizer v1.0 contract (camelCase), so its
clients work unchanged; ``loop`` is decide's own optional addition.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_serializer,
    with_config,
)
from typing_extensions import NotRequired, TypedDict

from decide.loops import LoopName

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FeatureObjects = Annotated[Any, WithJsonSchema(TypeAdapter(list[dict[str, Any]] | dict[str, Any] | None).json_schema())]
"""Features as Personalizer sends them: a list of JSON objects, one object, or null.

Featurization checks them, down to every value, and names the path of a bad one
(``contextFeatures[0].x``); pydantic passes them through as parsed, which saves
rebuilding every nested container of a request (validating a 10-action rank:
22 -> 6 us)."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# A typed dict, not a model: validating plain dicts costs far less than building an
# object per candidate (a 10-action rank: 50 -> 27 us, parsed as parse_body does).
@with_config(ConfigDict(extra="forbid"))
class RankableAction(TypedDict):
    id: Identifier
    features: NotRequired[FeatureObjects]


class RankRequest(Body):
    contextFeatures: FeatureObjects = None
    actions: list[RankableAction] = Field(min_length=1)
    excludedActions: list[Identifier] | None = None
    eventId: Identifier | None = None
    deferActivation: bool | None = False
    loop: LoopName | None = None


class RankedAction(BaseModel):
    id: str
    probability: float


class ModelFallback(BaseModel):
    reason: str = Field(
        description="Why the chosen model did not answer: `deadline` (no answer in time), `rejected` (its queue was full), "
        "`error` (the model failed), `unavailable` (no replica up) or `unregistered` (no such model is registered)."
    )
    answeredBy: str | None = Field(
        description="The model whose prediction was answered instead, or null when it is the chosen model's configured `default`."
    )


class RankResponse(BaseModel):
    eventId: str
    rewardActionId: str
    ranking: list[RankedAction]
    policyVersion: int
    loop: str
    prediction: Any = Field(
        None,
        description="Only in a loop with `models`: the chosen model's prediction for `contextFeatures` "
        "(or, when `fallback` is present, the fallback's). See docs/models.md.",
    )
    fallback: ModelFallback | None = Field(
        None, description="Only in a loop with `models`, when the chosen model did not answer by its deadline: why, and who did."
    )

    @model_serializer(mode="wrap")
    def _model_fields_only_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Loops of plain actions answer exactly as Personalizer does: no `prediction`, no `fallback`."""
        data = handler(self)
        for name in ("prediction", "fallback"):
            if name not in self.model_fields_set:
                data.pop(name, None)
        return data


class RewardBody(Body):
    value: float


class RewardRequest(RewardBody):
    eventId: Identifier
    loop: LoopName | None = None


class ActivateRequest(Body):
    eventId: Identifier
    loop: LoopName | None = None


class CreateLoopRequest(Body):
    name: LoopName
    config: dict[str, Any] = Field(default_factory=dict)


class RollbackRequest(Body):
    version: int = Field(ge=1, le=2**31 - 1)


class Accepted(BaseModel):
    eventId: str
    status: str = "accepted"


class PolicyVersionInfo(BaseModel):
    version: int
    createdAt: float
    examplesLearned: int
    note: str
    config: dict[str, Any]


class LoopInfo(BaseModel):
    name: str
    currentVersion: int
    createdAt: float
    examplesLearned: int
    config: dict[str, Any]

