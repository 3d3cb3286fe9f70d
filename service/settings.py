"""Service settings: environment variables ``LSTM_SERVICE_*`` (and CLI flags, which override them).

Validators refuse a configuration that cannot work (no store, no model in it, a default or pinned model
that is not there, a bad port, an empty API key or admin token) with a message that says how to fix it, so
the service fails at start and not at the first request. :func:`describe_error` names the variable, the
flag and the rejected value of each error; :func:`startup_notes` lists what the start-up log should say
(whether authentication is on, ``LSTM_SERVICE_*`` variables that no setting reads).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.bundle import DEFAULT_MODEL_STORE, BundleError, is_valid_name, list_models, load_public_key
from service.cpu_limit import available_cpus
from service.units import MIB

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ENV_PREFIX = "LSTM_SERVICE_"
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s,]+")  # scheme://host[:port], nothing after


def parse_pinned(value: object) -> object:
    """``"news-topic=1, review-sentiment-zh=2"`` → ``{"news-topic": 1, "review-sentiment-zh": 2}``."""
    if not isinstance(value, str):
        return value
    pinned: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, separator, version = entry.partition("=")
        if not separator or not name.strip() or not version.strip():
            raise ValueError(f"pinned entry {entry!r} must look like name=version, e.g. news-topic=1")
        pinned[name.strip()] = version.strip()
    return pinned


def default_workers() -> int:
    """One worker per CPU this process may use (its affinity mask, capped by its cgroup's CPU quota: a
    container's ``--cpus``, a Kubernetes CPU limit; :func:`service.cpu_limit.available_cpus`).

    Each worker runs onnxruntime with one intra-op thread: one thread is fastest at batch 1 and, with a
    worker per CPU, every CPU already works at any load; two threads per call only pay from batch ~8 and
    would then compete with the other workers (measured with bench/).
    """
    return min(64, available_cpus())


class Settings(BaseSettings):
    """Everything the service can be told; every field is also a ``serve`` flag (``--model-store``...)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    model_store: Path = Field(
        DEFAULT_MODEL_STORE, description="Folder holding <name>/<version>/ model bundles."
    )
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on (0.0.0.0 for all).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        description="Server processes, each with its own models; default: the CPUs this process may use.",
    )
    default_model: str | None = Field(
        None,
        description="Model for requests that name none; default: the first model alphabetically at start "
        "(set it, so that a model added to the store never takes its place).",
    )
    pinned: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="Versions to serve instead of the highest promoted one, e.g. "
        "'news-topic=1,review-sentiment-zh=2'.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as JSON.")
    max_body_bytes: int = Field(MIB, ge=1, description="Largest request body accepted (413 above).")
    max_texts: int = Field(256, ge=1, description="Most texts (or tokens on /embed) in one request (422).")
    max_vector_texts: int = Field(
        16, ge=1, description="Most texts per request on /embed and /hidden-states (a vector per token)."
    )
    max_text_chars: int = Field(20_000, ge=1, description="Longest text in characters (422 above).")
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="A request still not answered after this long gets 504."
    )
    max_head_bytes: int = Field(
        64 << 10, ge=1024, description="Largest request head (request line and headers) in bytes (431 above)."
    )
    max_headers: int = Field(100, ge=1, description="Most headers in one request (431 above).")
    head_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request head not received within this long gets 408 and the connection closes.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A request body not received within this long of its head gets 408 and the connection "
        "closes.",
    )
    intra_op_threads: int = Field(1, ge=1, description="onnxruntime threads per inference call.")
    inference_threads: int = Field(
        2, ge=1, description="Inference calls that may run at once (threads off the event loop)."
    )

    batching: bool = Field(
        True, description="Group concurrent /classify texts into one model call (dynamic micro-batching)."
    )
    max_batch_size: int = Field(32, ge=1, le=1024, description="Most texts in one batched model call.")
    max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="How long a batch may wait to fill under concurrent load (ms)."
    )
    max_queued: int = Field(
        1024, ge=1, description="Texts that may wait for the model; past this, requests get 429 at once."
    )
    max_batch_tokens: int = Field(
        2048,
        ge=1,
        description="Most padded tokens (texts x longest) in one batched call; bounds the memory ORT keeps.",
    )
    max_explain_tokens: int = Field(
        256,
        ge=1,
        le=4096,
        description="Most tokens /explain explains in one text (it runs T + 1 sequences of T tokens, and T "
        "prefixes for a trajectory); longer texts get 422 unless the request sends truncate.",
    )

    drain_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="On SIGTERM, keep answering this long with /readyz at 503 (draining) before closing "
        "the listener; requests in flight then get up to request_timeout_seconds to finish.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for the /admin routes (load, unload, pin); unset: those routes answer 404.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="If set, inference and /models routes need 'Authorization: Bearer <key>' or "
        "'X-API-Key: <key>' (health, /metrics and the docs stay open).",
    )
    reload_interval_seconds: float = Field(
        0.0,
        ge=0,
        description="Poll the store this often: load newer promoted versions of served, unpinned models and "
        "models the store gained (0: off).",
    )
    rollout_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="How often each worker looks for a changed rollout file (aliases, canary weights, "
        "shadow) "
        "in the store: a promotion or a rollback reaches every worker and replica within this time.",
    )
    shadow_queue: int = Field(
        256,
        ge=1,
        description="Requests waiting for their shadow run; past it (or while the primary traffic keeps the "
        "model busy for 2 s) shadow copies are shed and counted.",
    )
    readiness: Literal["all", "any", "default"] = Field(
        "all",
        description="When /readyz says 200: 'all' models ready, 'any' one model ready, or the 'default' "
        "model ready (a failed bundle then leaves the others serving).",
    )
    fallback: bool = Field(
        True,
        description="When the newest version of a model fails verification, serve the newest one that passes "
        "and report the refused one on /models/{name}, /readyz and /metrics; false: the model fails (and "
        "readiness with it).",
    )
    bundle_public_key: Path | None = Field(
        None,
        description="PEM file of an Ed25519 public key: serve only bundles whose manifest is signed with its "
        "private key (lstm-train --sign-key); unset: signatures are not checked.",
    )
    max_vector_bytes: int = Field(
        96 * MIB,
        ge=MIB,
        description="Bytes of /embed and /hidden-states answers one worker may build at once (estimated "
        "from the request before tokenizing); past it, requests wait their turn (see max_vector_waiting).",
    )
    max_vector_waiting: int = Field(
        8,
        ge=0,
        description="Vector requests that may wait, first come first served, for the vector budget; past "
        "it, or when the expected wait outlasts the request's deadline, 429 with the expected wait as "
        "Retry-After.",
    )
    grpc_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port of the Open Inference Protocol over gRPC (GRPCInferenceService, the gRPC "
        "health service and server reflection), on the same host and in the same process as HTTP (every "
        "worker shares it); unset: no gRPC. Needs the grpc extra.",
    )
    grpc_max_message_bytes: int = Field(
        4 * MIB,
        ge=1024,
        description="Largest gRPC message received or sent (RESOURCE_EXHAUSTED above).",
    )
    tracing: bool = Field(
        False,
        description="Trace requests with OpenTelemetry (needs the tracing extra): a span per request, its "
        "steps and each micro-batch, exported over OTLP; the standard OTEL_* variables set the endpoint, "
        "protocol, sampler and service name (docs/tracing.md).",
    )
    prediction_log: str | None = Field(
        None,
        description="Log every answered classification to this sink (see docs/learning.md): "
        "'sqlite:///data/predictions.db', 'postgresql://user@host/db' or 'jsonl:///data/log/'; unset: off.",
    )
    prediction_log_text: Literal["full", "hash", "redacted"] = Field(
        "full",
        description="What the log keeps of each text: 'full', only its SHA-256 ('hash'), or the text with "
        "e-mail addresses and digits masked ('redacted'); the SHA-256 is always kept.",
    )
    prediction_log_sample: float = Field(
        1.0, gt=0, le=1, description="Share of answered requests the prediction log records (1: all)."
    )
    prediction_log_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models the prediction log records, comma separated (empty: every model).",
    )
    prediction_log_buffer: int = Field(
        10_000,
        ge=1,
        description="Records held in memory for the prediction log's writer; past it (the sink slow or "
        "down) new records are dropped and counted.",
    )
    prediction_log_retention_days: float = Field(
        0, ge=0, description="Prune logged predictions older than this, in the background (0: keep all)."
    )
    prediction_log_max_rows: int = Field(
        0, ge=0, description="Keep at most this many logged predictions, the newest (0: no bound)."
    )

    api_key_min_length: int = Field(
        16,
        ge=1,
        description="Shortest API key accepted (also for each of extra_api_keys); a shorter one is refused "
        "at start.",
    )
    extra_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description="More API keys accepted beside api_key, comma-separated, for rotation: serve the new "
        "key as api_key and the old one here until every client has moved (needs api_key).",
    )
    metrics_access: Literal["open", "api-key", "admin", "off"] = Field(
        "open",
        description="Who may read /metrics: anyone, holders of an API key, of the admin token, or nobody "
        "(404).",
    )
    docs_access: Literal["open", "api-key", "admin", "off"] = Field(
        "open",
        description="Who may read /docs and /openapi.json: anyone, holders of an API key, of the admin "
        "token (a browser then needs a proxy that adds the header), or nobody (404).",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Origins whose pages may call the service from a browser, comma-separated "
        "(e.g. 'https://app.example.com', or '*' for any); empty: no CORS headers.",
    )

    reload_settle_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="With reload_interval_seconds: a new version folder is loaded only once its files looked "
        "the same at two polls and none changed for this long, so a folder still being copied in is waited "
        "for (one WARNING), not refused (0: load at once).",
    )

    max_loaded_models: int = Field(
        0,
        ge=0,
        description="Most models in memory at once (0: every model of the store, loaded at start). With a "
        "budget, the pinned and default models load at start and stay; the others load on their first "
        "request (which waits for it within its deadline) and the least recently used is evicted when "
        "another must load.",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("prediction_log_models", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("prediction_log")
    @classmethod
    def _log_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite:///", "postgresql://", "postgresql+", "jsonl://")
        ):
            raise ValueError(
                f"prediction log {value!r} is not a sink URL; use sqlite:///path.db, "
                "postgresql://user@host/db or jsonl:///folder/"
            )
        return value

    @field_validator("pinned", mode="before")
    @classmethod
    def _parse_pinned(cls, value: object) -> object:
        return parse_pinned(value)

    @field_validator("default_model", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_token", "api_key", mode="before")
    @classmethod
    def _secret_not_blank(cls, value: object) -> object:
        # An empty secret is refused, not taken for "unset": a Secret or variable left empty by mistake
        # would otherwise turn authentication off without a word.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            raise ValueError("is set but empty; set a non-empty value, or unset the variable to turn it off")
        return value

    @field_validator("extra_api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return tuple(filter(None, (part.strip() for part in value.split(","))))
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; write scheme://host[:port] without a path or a trailing "
                    "slash (e.g. https://app.example.com), or '*' for any"
                )
        return origins

    @field_validator("model_store")
    @classmethod
    def _store_exists(cls, store: Path) -> Path:
        if not store.is_dir():
            raise ValueError(
                f"model store {store} is not a folder; point LSTM_SERVICE_MODEL_STORE (or --model-store) "
                "at a store, or train a model first with `lstm-train train`"
            )
        return store.resolve()

    @field_validator("bundle_public_key")
    @classmethod
    def _public_key_loads(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                load_public_key(path)
            except BundleError as error:
                raise ValueError(str(error)) from None
        return path

    @field_validator("tracing")
    @classmethod
    def _tracing_installed(cls, tracing: bool) -> bool:
        if tracing and not _installed("opentelemetry.sdk.trace.export"):
            raise ValueError(
                "needs the OpenTelemetry SDK: pip install 'lstm-service[tracing]', or unset the variable"
            )
        return tracing

    def public_key(self) -> Ed25519PublicKey | None:
        """The key bundles must be signed with (None: signatures are not checked)."""
        return None if self.bundle_public_key is None else load_public_key(self.bundle_public_key)

    @model_validator(mode="after")
    def _models_exist(self) -> Settings:
        available = list_models(self.model_store)
        if not available:
            raise ValueError(
                f"model store {self.model_store} holds no model bundle (<name>/<version>/); "
                "train one with `lstm-train train` or point --model-store at another store"
            )
        names = ", ".join(available)
        if self.default_model is not None and self.default_model not in available:
            raise ValueError(
                f"{ENV_PREFIX}DEFAULT_MODEL={self.default_model!r}: default model {self.default_model!r} "
                f"is not in the store (it holds: {names})"
            )
        for name, version in self.pinned.items():
            if not is_valid_name(name) or name not in available:
                raise ValueError(
                    f"{ENV_PREFIX}PINNED: pinned model {name!r} is not in the store (it holds: {names})"
                )
            if version not in available[name]:
                raise ValueError(
                    f"{ENV_PREFIX}PINNED: pinned version {name}={version} is not in the store "
                    f"(versions: {', '.join(map(str, available[name]))})"
                )
        return self

    @model_validator(mode="after")
    def _access_can_work(self) -> Settings:
        for key in self.api_keys():
            if len(key.get_secret_value()) < self.api_key_min_length:
                raise ValueError(
                    f"an API key (LSTM_SERVICE_API_KEY or LSTM_SERVICE_EXTRA_API_KEYS) is shorter than "
                    f"{self.api_key_min_length} characters (LSTM_SERVICE_API_KEY_MIN_LENGTH); use a long "
                    "random one, e.g. `openssl rand -hex 24`"
                )
        if self.extra_api_keys and self.api_key is None:
            raise ValueError(
                "LSTM_SERVICE_EXTRA_API_KEYS is set without LSTM_SERVICE_API_KEY; set the key too"
            )
        for field in ("metrics_access", "docs_access"):
            access = getattr(self, field)
            if (access == "api-key" and self.api_key is None) or (
                access == "admin" and self.admin_token is None
            ):
                needed = "LSTM_SERVICE_API_KEY" if access == "api-key" else "LSTM_SERVICE_ADMIN_TOKEN"
                raise ValueError(
                    f"{variable_name(field)}={access!r} needs {needed}; set it, or choose 'open' or 'off'"
                )
        return self

    def api_keys(self) -> tuple[SecretStr, ...]:
        """Every API key accepted: the key, then the extra ones (empty when no key is configured)."""
        return () if self.api_key is None else (self.api_key, *self.extra_api_keys)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


SECRET_FIELDS = frozenset({"api_key", "admin_token", "extra_api_keys"})


def variable_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def describe_error(error: ValidationError) -> str:
    """One line per error, naming the variable, the flag and the rejected value (secrets are not shown).

    ``LSTM_SERVICE_WORKERS (--workers) = '0': Input should be greater than or equal to 1``
    """
    lines = []
    for detail in error.errors():
        message = str(detail["msg"]).removeprefix("Value error, ")
        field = str(detail["loc"][0]) if detail["loc"] else ""
        if field not in Settings.model_fields:
            lines.append(f"  {message}")
            continue
        where = f"{variable_name(field)} (--{field.replace('_', '-')})"
        shown = "(hidden)" if field in SECRET_FIELDS else repr(_as_text(detail.get("input")))
        lines.append(f"  {where} = {shown}: {message}")
    return "\n".join(lines)


def _as_text(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``LSTM_SERVICE_*`` variable that no setting reads, naming the closest one."""
    environ = os.environ if environ is None else environ
    known = sorted(field.upper() for field in Settings.model_fields)
    warnings = []
    for variable in sorted(environ):
        upper = variable.upper()  # pydantic-settings reads variables case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper.removeprefix(ENV_PREFIX) in known:
            continue
        # compared without the shared prefix, which would make every name look close
        closest = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
        hint = (
            f"; did you mean {ENV_PREFIX}{closest[0]}?"
            if closest
            else f"; the known ones start with {ENV_PREFIX}"
        )
        warnings.append(f"{variable} is not a setting and is ignored{hint}")
    return warnings


def startup_notes(settings: Settings, environ: Mapping[str, str] | None = None) -> list[tuple[int, str]]:
    """``(level, message)`` pairs for the start-up log: authentication for inference and admin, and the
    ``LSTM_SERVICE_*`` variables that no setting reads."""
    inference = (
        "on (LSTM_SERVICE_API_KEY)" if settings.api_key is not None else "OFF (LSTM_SERVICE_API_KEY unset)"
    )
    admin = (
        "on (LSTM_SERVICE_ADMIN_TOKEN)"
        if settings.admin_token is not None
        else "off: /admin answers 404 (LSTM_SERVICE_ADMIN_TOKEN unset)"
    )
    if len(settings.api_keys()) > 1:
        inference += f", {len(settings.api_keys())} keys accepted (LSTM_SERVICE_EXTRA_API_KEYS)"
    cors = ", ".join(settings.cors_origins) or "off"
    operator = f"/metrics {settings.metrics_access}; docs {settings.docs_access}; CORS {cors}"
    notes = [(logging.INFO, f"authentication: inference and /models {inference}; admin {admin}; {operator}")]
    notes += [(logging.WARNING, warning) for warning in unknown_variables(environ)]
    return notes


def log_startup_notes(settings: Settings, logger: logging.Logger | None = None) -> None:
    logger = logger or logging.getLogger(__name__)
    for level, message in startup_notes(settings):
        logger.log(level, message)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once per process."""
    return Settings()
