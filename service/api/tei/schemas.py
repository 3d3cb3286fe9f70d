"""text-embeddings-inference's request and answer models for its classifier routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

# A text the model runs on needs a token: a character that is not whitespace (documented; the route's check
# names the text). TEI's batch form wraps each text in a list of one (a list of two would be a pair).
TeiText = Annotated[StrictStr, Field(min_length=1, json_schema_extra={"pattern": r"\S"})]
Inputs = (
    TeiText
    | Annotated[
        list[TeiText | Annotated[list[TeiText], Field(min_length=1, max_length=1)]], Field(min_length=1)
    ]
)


class PredictRequest(BaseModel):
    """TEI's ``PredictRequest``; keys it does not know are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    inputs: Inputs = Field(description='One text, a list of texts, or TEI\'s batch form [["text"], ...].')
    truncate: StrictBool | None = Field(
        None, description="Cut texts longer than the model's max_length (default: true, as /classify)."
    )
    raw_scores: StrictBool = Field(False, description="Answer the logits instead of the probabilities.")


class Prediction(BaseModel):
    label: str
    score: float
