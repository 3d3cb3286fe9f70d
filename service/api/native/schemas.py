"""The native wire format: request and response models, in ``<Verb>Request`` / ``<Verb>Response`` families.

Requests are strict (no silent coercion: ``"truncate": "yes"`` is refused) and forbid unknown fields, so a
typo is a 422 and not an ignored option. Limits that come from the settings (texts per request, characters
per text) are checked after parsing, in :mod:`service.engine.preprocess`. Responses are built as plain
data and serialised by orjson; these models document them (OpenAPI) and the tests validate every answer
against them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from service.api.common import ErrorResponse, ModelName, VersionOrAlias, integral_float_as_int
from service.bundle import MAX_VERSION
from service.engine.registry import ModelState

# Strings holding a lone surrogate (valid JSON escapes, invalid Unicode) are refused by pydantic itself.
Text = Annotated[str, Field(min_length=1)]
# A text the model runs on needs a token, i.e. a character that is not whitespace. Documented only (the
# route's check says which text has no token); Python's ``\S`` is what the tokenizer splits on.
TokenText = Annotated[str, Field(min_length=1, json_schema_extra={"pattern": r"\S"})]
# The pattern is documented in the schema and checked by the validator, whose message is friendlier.


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    @field_validator("version", "neighbors", "top_k", mode="before", check_fields=False)
    @classmethod
    def _integral(cls, value: object) -> object:
        return integral_float_as_int(value)


class TextsRequest(_Request):
    """Fields every text route takes; exactly one of the ``_inputs`` fields must be sent."""

    _inputs: ClassVar[tuple[str, ...]] = ("text", "texts")

    text: Text | None = Field(None, description="One text. Send either `text` or `texts`.")
    texts: list[Text] | None = Field(
        None,
        min_length=1,
        description="Several texts, answered in the same order (at most LSTM_SERVICE_MAX_TEXTS).",
    )
    model: ModelName | None = Field(None, description="Model name; default: the service's default model.")
    version: VersionOrAlias | None = Field(
        None,
        description="Model version, by number or by alias (stable, canary...); default: the version serving "
        "(or the canary split of the model's rollout).",
    )
    truncate: bool = Field(
        True,
        description="Texts with more tokens than the model's max_length are cut to it (true) "
        "or refused with 422 (false).",
    )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Document "exactly one of the inputs, not null" (``oneOf``), so that generated clients and
        schema-driven fuzzers know what the validator below enforces."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["oneOf"] = [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in cls._inputs
        ]
        return schema

    @model_validator(mode="after")
    def _exactly_one_input(self) -> TextsRequest:
        sent = [name for name in self._inputs if getattr(self, name) is not None]
        if len(sent) != 1:
            choices = " or ".join(f"'{name}'" for name in self._inputs)
            raise ValueError(f"send exactly one of {choices}")
        return self

    @property
    def items(self) -> list[str]:
        """The texts of the request, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])

    @property
    def locations(self) -> list[str]:
        """Where each text sits in the request, for error messages (``text`` or ``texts.3``)."""
        return (
            ["text"]
            if self.text is not None
            else [f"texts.{index}" for index in range(len(self.texts or []))]
        )


class ModelResponse(BaseModel):
    model: str = Field(description="The model that answered.")
    version: int = Field(description="The version of that model that answered.")
    alias: str | None = Field(
        None,
        description="The alias that chose that version (a canary split or a named alias); absent if none.",
    )


# -- /classify --------------------------------------------------------------------------------------


class ModelTextsRequest(TextsRequest):
    """Texts the model itself runs on: each needs a token (a character that is not whitespace)."""

    text: TokenText | None = Field(None, description="One text. Send either `text` or `texts`.")
    texts: list[TokenText] | None = Field(
        None,
        min_length=1,
        description="Several texts, answered in the same order (at most LSTM_SERVICE_MAX_TEXTS).",
    )


class ClassifyRequest(ModelTextsRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Shares rose after the results."}]})

    unk_ratio: bool = Field(
        False,
        description="Also give each text's share of tokens the vocabulary does not hold (<unk>), the figure "
        "/metrics tracks for input drift (lstm_service_unknown_token_ratio).",
    )
    top_k: int | None = Field(
        None,
        ge=1,
        description="Return only the k best labels in `scores` (and `logits`), best first. "
        "Default: every label, in label order.",
    )
    raw_scores: bool = Field(
        False,
        description="Also return each label's logit (the graph's raw output, before softmax or sigmoid "
        "and before any calibration temperature).",
    )
    abstain_below: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Single-label models: when the best probability is below this, `label` is null "
        "(the scores are still returned). Multi-label models decide per label by their thresholds and "
        "refuse this option.",
    )


class ClassifyResult(BaseModel):
    label: str | None = Field(
        description="The most probable label; null when its score is below `abstain_below`, or for a "
        "multi-label model when no label reaches its threshold."
    )
    score: float = Field(description="The best score.")
    scores: dict[str, float] = Field(
        description="Every label's score in label order (or the `top_k` best, best first): the softmax "
        "probability (single-label, divided by the model's calibration temperature first), or each "
        "label's own sigmoid (multi-label; they need not sum to 1)."
    )
    labels: list[str] | None = Field(
        None,
        description="Multi-label models: the labels whose score reaches their threshold, best first "
        "(possibly none). Absent for single-label models.",
    )
    logits: dict[str, float] | None = Field(
        None, description="Each label's logit, in the order of `scores` (only with `raw_scores`)."
    )
    truncated: bool = Field(description="True if the text was cut to the model's max_length.")
    unk_ratio: float | None = Field(
        None, description="Share of the text's tokens that are <unk> (only when the request asked for it)."
    )


class ClassifyResponse(ModelResponse):
    results: list[ClassifyResult] = Field(description="One result per text, in request order.")


# -- /tokenize --------------------------------------------------------------------------------------


class TokenizeRequest(TextsRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Don't panic!"}]})


class Token(BaseModel):
    id: int = Field(description="Vocabulary id (1 = <unk>).")
    text: str = Field(description="The token as it appears in the input (text[start:stop]).")
    start: int = Field(description="Offset of its first character in the input (code points).")
    stop: int = Field(description="Offset just past its last character (exclusive).")
    unk: bool = Field(description="True if the token is not in the vocabulary.")


class TokenizeResult(BaseModel):
    tokens: list[Token] = Field(description="The tokens the model sees, after truncation.")
    truncated: bool = Field(description="True if tokens past the model's max_length were dropped.")
    num_tokens: int = Field(description="Tokens the model sees.")
    num_tokens_before_truncation: int = Field(description="Tokens in the whole text.")


class TokenizeResponse(ModelResponse):
    results: list[TokenizeResult] = Field(description="One result per text, in request order.")


# -- /embed -----------------------------------------------------------------------------------------


class EmbedRequest(TextsRequest):
    """A text's tokens, or a list of vocabulary tokens, and optionally their nearest neighbours."""

    _inputs: ClassVar[tuple[str, ...]] = ("text", "texts", "tokens")
    model_config = ConfigDict(json_schema_extra={"examples": [{"tokens": ["market"], "neighbors": 5}]})

    texts: list[Text] | None = Field(
        None,
        min_length=1,
        description="Several texts, answered in order (at most LSTM_SERVICE_MAX_VECTOR_TEXTS).",
    )
    tokens: list[Text] | None = Field(
        None,
        min_length=1,
        description="Tokens to look up in the vocabulary as they are (lower-cased if the tokenizer is); "
        "answered as one result. Send `text`, `texts` or `tokens`.",
    )
    neighbors: int | None = Field(
        None, ge=1, le=100, description="Also give each token's k nearest vocabulary entries (cosine)."
    )

    @property
    def items(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else super().items

    @property
    def locations(self) -> list[str]:
        if self.tokens is not None:
            return [f"tokens.{index}" for index in range(len(self.tokens))]
        return super().locations


class Neighbor(BaseModel):
    id: int = Field(description="Vocabulary id.")
    token: str = Field(description="The vocabulary entry.")
    similarity: float = Field(description="Cosine similarity to the token's vector.")


class EmbeddedToken(BaseModel):
    id: int = Field(description="Vocabulary id (1 = <unk>: the vector is the <unk> vector).")
    text: str = Field(description="The token as sent or as it appears in the text.")
    unk: bool = Field(description="True if the token is not in the vocabulary.")
    start: int | None = Field(description="Offset in the text (null for `tokens` input).")
    stop: int | None = Field(description="End offset in the text, exclusive (null for `tokens` input).")
    vector: list[float] = Field(description="The embedding row the model uses for this id.")
    neighbors: list[Neighbor] | None = Field(description="Nearest vocabulary entries, best first, if asked.")


class EmbedResult(BaseModel):
    tokens: list[EmbeddedToken] = Field(description="One entry per token.")
    truncated: bool = Field(description="True if the text was cut to the model's max_length.")


class EmbedResponse(ModelResponse):
    embedding_dim: int = Field(description="Length of every vector.")
    results: list[EmbedResult] = Field(description="One result per text (one in all for `tokens`).")


# -- /hidden-states ---------------------------------------------------------------------------------


class HiddenStatesRequest(ModelTextsRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Shares rose."}]})

    texts: list[TokenText] | None = Field(  # the same field, with this route's own limit
        None,
        min_length=1,
        description="Several texts, answered in order (at most LSTM_SERVICE_MAX_VECTOR_TEXTS).",
    )


class HiddenStatesResult(BaseModel):
    tokens: list[Token] = Field(description="The tokens the model saw; row i of hidden_states is token i.")
    hidden_states: list[list[float]] = Field(
        description="[num_tokens][hidden_dim * directions]: the top layer's output at each step "
        "(forward direction first, then backward)."
    )
    h_n: list[list[float]] = Field(
        description="[num_layers * directions][hidden_dim]: final hidden state; row = layer * directions + "
        "direction (direction 0 forward, 1 backward)."
    )
    c_n: list[list[float]] | None = Field(
        description="[num_layers * directions][hidden_dim]: final cell state; null for GRU and RNN cells, "
        "which have none."
    )
    truncated: bool = Field(description="True if the text was cut to the model's max_length.")


class HiddenStatesResponse(ModelResponse):
    cell: str = Field(description="The recurrent cell: lstm, gru or rnn (tanh).")
    num_layers: int = Field(description="Stacked recurrent layers.")
    directions: int = Field(description="2 for a bidirectional model, else 1.")
    hidden_dim: int = Field(description="Hidden units per direction.")
    results: list[HiddenStatesResult] = Field(description="One result per text, in request order.")


# -- /models ----------------------------------------------------------------------------------------


class TokenizerInfo(BaseModel):
    mode: str = Field(description="word, char or char-bigram.")
    lowercase: bool = Field(description="Whether tokens are lower-cased before the vocabulary lookup.")
    max_length: int = Field(description="Tokens per text the model sees; longer texts are truncated.")
    vocab_size: int = Field(description="Vocabulary entries, <pad> and <unk> included.")


class ModelSummary(BaseModel):
    name: str = Field(description="Model name.")
    state: ModelState = Field(
        description="ready, loading, failed, or evicted (under the model budget: loaded on its next request)."
    )
    version: int | None = Field(description="The version serving (or the one that failed to load).")
    reason: str | None = Field(description="Why the model is not ready, or why a newer version was refused.")
    default: bool = Field(description="True for the model used when a request names none.")
    pinned: bool = Field(description="True if the version was pinned by LSTM_SERVICE_PINNED.")
    task: str | None = Field(
        description="single-label (one softmax over the labels) or multi-label (one sigmoid per label, "
        "each decided by its threshold)."
    )
    labels: list[str] | None = Field(description="Class names, in score order.")


class ModelListResponse(BaseModel):
    default_model: str | None = Field(description="The model used when a request names none.")
    models: list[ModelSummary] = Field(description="Every model of the store, by name.")


class ModelDetailResponse(ModelSummary):
    versions: list[int] = Field(description="Versions present in the store.")
    rollout: dict[str, Any] | None = Field(
        None,
        description="Aliases, canary weights, the shadow version and every change (who, when, from, to, "
        "why); see docs/rollout.md.",
    )
    tokenizer: TokenizerInfo | None = Field(description="Tokenizer settings (not the vocabulary).")
    dimensions: dict[str, Any] | None = Field(
        description="Architecture: embedding_dim, hidden_dim, layers..."
    )
    parameters: dict[str, Any] | None = Field(description="Parameter counts, total and per layer.")
    metrics: dict[str, Any] | None = Field(description="The evaluation report from training.")
    training: dict[str, Any] | None = Field(description="How the model was trained (command, data, seed).")
    libraries: dict[str, Any] | None = Field(description="Library versions at training time.")
    parity: dict[str, Any] | None = Field(description="torch vs onnxruntime agreement measured at export.")
    checksums: dict[str, str] | None = Field(description="sha256 of each bundle file, verified at load.")
    created_at: str | None = Field(description="When the bundle was written.")
    thresholds: dict[str, float] | None = Field(
        None, description="Multi-label models: each label's decision threshold, tuned on dev at training."
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description="Single-label models: the temperature T the served probabilities use "
        "(softmax(logits / T)), fitted on dev, with the expected calibration error before and after on "
        "test; null when not calibrated.",
    )
    drift: dict[str, Any] | None = Field(
        None,
        description="The training split's unknown-token ratio and tokens per text (p10, p50, p90, p99, mean, "
        "max), to compare served inputs with; null for bundles that did not record it.",
    )


# -- health -----------------------------------------------------------------------------------------


class LivenessResponse(BaseModel):
    status: Literal["alive"] = Field(description="The process answers.")


class ModelHealth(BaseModel):
    state: ModelState = Field(
        description="ready, loading, failed, or evicted (under the model budget: loaded on its next request)."
    )
    version: int | None = Field(description="The version serving, or the one that failed.")
    reason: str | None = Field(
        description="Why it is not ready, or why a newer version was refused and how to recover."
    )
    failed_version: int | None = Field(
        None, description="A newer version refused while an older one serves (absent when none)."
    )


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready", "draining"] = Field(
        description="ready when every model is loaded and verified; draining once the server got SIGTERM "
        "(it still answers requests for LSTM_SERVICE_DRAIN_SECONDS, then stops)."
    )
    models: dict[str, ModelHealth] = Field(description="Every configured model.")


class NotReadyResponse(ReadinessResponse, ErrorResponse):
    """503 from /readyz: the readiness report and the standard error fields."""


# -- /admin -----------------------------------------------------------------------------------------


class LoadModelRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 2}, {}]})

    version: int | None = Field(
        None,
        ge=1,
        le=MAX_VERSION,
        description="Version to load and pin (the store poller leaves a pinned model alone); "
        "omit it to load the highest version and unpin the model.",
    )


class AdminModelResponse(BaseModel):
    model: str = Field(description="The model.")
    state: Literal["ready", "loading", "failed", "unloaded"] = Field(description="Its state now.")
    version: int | None = Field(description="The version serving now (the one unloaded, for unload).")
    pinned: bool = Field(description="True if the poller must leave this version alone.")
    reason: str | None = Field(description="Why an earlier load attempt was refused, if one was.")
    load_seconds: float | None = Field(description="Time to open and verify the version that serves.")
    workers: dict[str, Any] | None = Field(
        None,
        description="In how many of the server's workers the change took effect: applied, of, and a note "
        "while some have yet to apply it.",
    )


class LoadFailedResponse(ErrorResponse):
    """422 from a load: an invalid request, or a refused bundle (then with the model fields); whatever
    served before still serves."""

    model: str | None = Field(None, description="The model (absent when the request itself was invalid).")
    version: int | None = Field(None, description="The version that was refused.")
    serving_version: int | None = Field(None, description="The version still serving (null if none).")
    workers: dict[str, Any] | None = Field(None, description="As for a load that took effect.")


# -- /explain ---------------------------------------------------------------------------------------


class ExplainRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"text": "The striker scored twice in the cup final", "trajectory": True}]
        }
    )

    text: TokenText = Field(description="The text to explain.")
    model: ModelName | None = Field(None, description="Model name; default: the service's default model.")
    version: VersionOrAlias | None = Field(
        None,
        description="Model version, by number or by alias (stable, canary...); default: the version serving "
        "(or the canary split of the model's rollout).",
    )
    label: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None,
        description="The label to explain (404 if the model has no such label); default: the predicted "
        "label (multi-label: every label over its threshold).",
    )
    method: Literal["occlusion"] = Field(
        "occlusion",
        description="occlusion: each token in turn replaced by <unk> (exact, forward passes only).",
    )
    trajectory: bool = Field(False, description="Also the probabilities after every prefix of the text.")
    truncate: bool = Field(
        False,
        description="Texts with more tokens than LSTM_SERVICE_MAX_EXPLAIN_TOKENS (or the model's max_length) "
        "are explained on their first tokens (true) or refused with 422 (false).",
    )


class ExplainedToken(Token):
    attribution: float = Field(
        description="p(label | text) - p(label | text with this token replaced by <unk>): positive when the "
        "token pushes towards `label` (0 for a token that is already <unk>)."
    )
    attributions: dict[str, float] = Field(description="The same for every explained label.")


class TrajectoryFlip(BaseModel):
    index: int = Field(description="The token (0-based) after which the decision changed.")
    before: list[str] = Field(description="The predicted label(s) before it.")
    after: list[str] = Field(description="The predicted label(s) from it on.")


class ExplainTrajectory(BaseModel):
    scores: dict[str, list[float]] = Field(
        description="Per label, its probability after each prefix (entry t: tokens 0..t), one per token."
    )
    decision_point: int = Field(
        description="The token (0-based) after which the predicted label no longer changes."
    )
    flips: list[TrajectoryFlip] = Field(description="Every change of the predicted label(s), in order.")


class ExplainResponse(ModelResponse):
    method: Literal["occlusion"] = Field(description="How the attributions were computed.")
    label: str = Field(description="The label `attribution` is for.")
    labels: list[str] = Field(description="Every explained label (several for a multi-label prediction).")
    score: float = Field(description="The probability of `label` for the whole (explained) text.")
    scores: dict[str, float] = Field(description="Every label's probability for the whole (explained) text.")
    tokens: list[ExplainedToken] = Field(description="The explained tokens, as /tokenize gives them.")
    truncated: bool = Field(description="True if only the first tokens were explained.")
    num_tokens: int = Field(description="Tokens explained.")
    num_tokens_before_truncation: int = Field(description="Tokens in the whole text.")
    trajectory: ExplainTrajectory | None = Field(description="Present when the request asked for it.")


# -- /admin/models/{name}: rollout ------------------------------------------------------------------


class _RolloutRequest(_Request):
    why: Annotated[str, Field(max_length=500)] | None = Field(
        None, description="Why the change is made (kept in the model's history)."
    )
    by: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None,
        description="Who makes it (kept in the history); default: the admin API and the caller's address.",
    )


class AliasRequest(_RolloutRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 3, "weight": 10}]})

    version: int = Field(ge=1, le=MAX_VERSION, description="The version the alias points at.")
    weight: float | None = Field(
        None,
        description="Share of the requests that name no version this alias answers, in percent (0-100; "
        "all weights of a model add up to at most 100); omitted: left as it is (none for a new alias).",
    )


class ShadowRequest(_RolloutRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 3, "percent": 100}]})

    version: int = Field(ge=1, le=MAX_VERSION, description="The version that shadows the model's traffic.")
    percent: float = Field(100.0, description="Share of the answered requests copied to it (0-100).")


class PromoteRequest(_RolloutRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 3}]})

    version: VersionOrAlias = Field(description="The version to promote, by number or by alias (canary).")
    alias: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        "stable", description="The alias it becomes (stable: the version answering unpinned traffic)."
    )
    force: bool = Field(False, description="Promote even when the feedback shows it significantly worse.")


class RollbackRequest(_RolloutRequest):
    alias: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        "stable", description="The alias whose last change is undone."
    )


class RolloutResponse(BaseModel):
    model: str = Field(description="The model.")
    message: str | None = Field(None, description="What the change did.")
    rollout: dict[str, Any] = Field(
        description="The model's rollout now: revision, aliases, weights, shadow, history, and not_served "
        "(aliases whose version could not be loaded, with why)."
    )
    workers: dict[str, Any] | None = Field(
        None, description="In how many of the server's workers the change took effect (applied, of)."
    )
