"""Wire models of the learning routes (``<Verb>Request`` / ``<Verb>Response``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from service.api.common import ModelName, integral_float_as_int

Label = Annotated[str, Field(min_length=1, max_length=256)]

_NULL: dict[str, Any] = {"type": "null"}
_SET: dict[str, Any] = {"not": {"type": "null"}}
# An entry names a logged answer (request_id) or a text and its model; and gives label or labels.
ENTRY_FORMS: list[dict[str, Any]] = [
    {
        "oneOf": [
            {"required": ["request_id"], "properties": {"request_id": _SET, "text": _NULL}},
            {"required": ["text", "model"], "properties": {"text": _SET, "model": _SET, "request_id": _NULL}},
        ]
    },
    {
        "oneOf": [
            {"required": ["label"], "properties": {"label": _SET, "labels": _NULL}},
            {"required": ["labels"], "properties": {"labels": _SET, "label": _NULL}},
        ]
    },
]


class FeedbackEntry(BaseModel):
    """The true label(s) of one logged answer (``request_id``, and ``item`` for the n-th text of a batch),
    or of a text for a model (``text`` and ``model``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    request_id: str | None = Field(
        None, min_length=1, max_length=128, description="The answer's X-Request-ID header."
    )
    item: int = Field(0, ge=0, le=100_000, description="Which text of the request (0: the first).")
    text: str | None = Field(
        None, min_length=1, max_length=100_000, description="A text, instead of a request id."
    )
    model: ModelName | None = Field(None, description="The model the text's label is for (with `text`).")
    label: Label | None = Field(None, description="The true label. Send `label` or `labels`.")
    labels: list[Label] | None = Field(
        None, max_length=256, description="The true labels of a multi-label model (may be empty)."
    )
    source: str | None = Field(None, max_length=256, description="Who or what says so (free text).")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document the two choices the validator enforces, so that clients and fuzzers know them."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["allOf"] = ENTRY_FORMS
        return schema

    @field_validator("item", mode="before")
    @classmethod
    def _integral(cls, value: object) -> object:
        return integral_float_as_int(value)

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackEntry:
        _check_entry(self)
        return self

    def true_labels(self) -> list[str]:
        return [self.label] if self.label is not None else list(self.labels or [])


class FeedbackRequest(FeedbackEntry):
    """One entry, or several under ``feedback`` (stored all or none)."""

    request_id: str | None = Field(
        None, min_length=1, max_length=128, description="The answer's X-Request-ID."
    )
    feedback: list[FeedbackEntry] | None = Field(None, min_length=1, max_length=1000, description="A batch.")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        single = {"allOf": ENTRY_FORMS, "properties": {"feedback": _NULL}}
        batch = {
            "required": ["feedback"],
            "properties": {
                "feedback": _SET,
                **dict.fromkeys(("request_id", "text", "model", "label", "labels"), _NULL),
            },
        }
        schema["oneOf"] = [single, batch]
        return schema

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        if self.feedback is not None:
            if any(v is not None for v in (self.request_id, self.text, self.label, self.labels, self.model)):
                raise ValueError("send one entry, or a batch under feedback, not both")
            return self
        _check_entry(self)
        return self

    def entries(self) -> list[FeedbackEntry]:
        return list(self.feedback) if self.feedback is not None else [self]


class FeedbackResponse(BaseModel):
    stored: int


class QualityResponse(BaseModel):
    model: str
    window_hours: float
    multi_label: bool
    versions: dict[str, dict[str, Any]] = Field(
        description="Per version: count, accuracy (subset accuracy for multi-label) and its 95 % Wilson "
        "interval, per_label precision/recall/support, confusion (single-label: true → answered → count) or "
        "micro_f1 (multi-label)."
    )


class QueueItem(BaseModel):
    request_id: str
    item: int
    text: str
    version: int
    scores: dict[str, float]
    labels: list[str]
    margin: float
    entropy: float
    seen: int = Field(description="How many logged answers had this text.")
    answers: list[str] = Field(description="The distinct answers the logged versions gave it.")


class QueueResponse(BaseModel):
    model: str
    labels: list[str]
    multi_label: bool
    strategy: Literal["margin", "entropy", "disagreement"]
    items: list[QueueItem]


def _check_entry(entry: FeedbackEntry) -> None:
    if (entry.request_id is None) == (entry.text is None):
        raise ValueError("send either request_id (of a logged answer) or text with model")
    if entry.text is not None and entry.model is None:
        raise ValueError("feedback on a text needs the model it is for")
    if (entry.label is None) == (entry.labels is None):
        raise ValueError("send either label or labels")
