"""Every model of the store, loaded, verified, and looked up by ``(name, version)``.

The registry's whole state is one immutable :class:`_Snapshot`; a change builds a new snapshot and swaps
the reference under a lock, so readers never lock and never see half an update. A version is opened and
verified *before* the swap, beside whatever is serving, and a request keeps the runtime it looked up:
that is what a hot reload needs (issue 4). A version that fails is not served, its reason is logged and
kept for ``/readyz``, and the other models (or the version already serving) carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from service.bundle import BundleError, list_models, list_versions, load_bundle
from service.errors import NotFound, Unavailable, safe_text
from service.runtime import ModelRuntime
from service.verification import verify_golden

logger = logging.getLogger(__name__)


class ModelState(str, Enum):
    loading = "loading"
    ready = "ready"
    failed = "failed"


@dataclass(frozen=True)
class ModelStatus:
    """Where one configured model stands; ``version`` is the one serving (or the one that failed)."""

    name: str
    state: ModelState
    version: int | None = None
    reason: str | None = None
    pinned: bool = False
    load_seconds: float | None = None


@dataclass(frozen=True)
class _Snapshot:
    runtimes: Mapping[str, Mapping[int, ModelRuntime]] = field(default_factory=dict)
    active: Mapping[str, int] = field(default_factory=dict)  # the version answering requests without one
    statuses: Mapping[str, ModelStatus] = field(default_factory=dict)


def open_model(folder: Path, intra_op_threads: int = 1) -> ModelRuntime:
    """Read, check and verify one bundle; raise :class:`BundleError` (or ORT's error) if it must not serve."""
    runtime = ModelRuntime.open(load_bundle(folder), intra_op_threads)
    verify_golden(runtime)
    if runtime.tokenizer.mode == "word":
        _load_jieba()
    return runtime


def _load_jieba() -> None:
    """The word tokenizer segments Chinese with jieba, which reads its dictionary on first use (~1-2 s):
    do that at start-up rather than inside the first request that holds a Chinese character."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # else its own handler prints DEBUG lines to stderr
    jieba.initialize()


class Registry:
    def __init__(
        self,
        store: Path,
        pinned: Mapping[str, int] | None = None,
        default_model: str | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        self.store = Path(store)
        self.pinned = dict(pinned or {})
        self._configured_default = default_model
        self.intra_op_threads = intra_op_threads
        self._snapshot = _Snapshot()
        self._write_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------------------

    def load_all(self) -> None:
        """Load every model of the store: the pinned version, else the highest."""
        names = list(list_models(self.store))
        if not names:
            logger.error("model store %s holds no model bundle", self.store)
        for name in names:
            self._set_status(ModelStatus(name, ModelState.loading, pinned=name in self.pinned))
        for name in names:
            self.load(name, self.pinned.get(name))

    def load(self, name: str, version: int | None = None) -> ModelStatus:
        """Open and verify ``name`` (default: its highest version) beside what serves, then swap it in.

        On failure the version already serving (if any) keeps serving; the reason is logged and recorded.
        """
        version = version if version is not None else max(list_versions(self.store, name), default=None)
        if version is None:
            return self._record_failure(name, None, "no version of this model in the store")
        started = time.perf_counter()
        try:
            runtime = open_model(self.store / name / str(version), self.intra_op_threads)
        except BundleError as error:
            return self._record_failure(name, version, str(error))
        except Exception as error:  # onnxruntime refusing a graph raises its own exception types
            logger.exception("model %s version %s could not be opened", name, version)
            return self._record_failure(
                name, version, f"onnxruntime could not load model.onnx ({type(error).__name__})"
            )
        seconds = time.perf_counter() - started
        status = ModelStatus(name, ModelState.ready, version, None, name in self.pinned, round(seconds, 3))
        with self._write_lock:
            old = self._snapshot
            runtimes = {**old.runtimes, name: MappingProxyType({version: runtime})}
            self._snapshot = _Snapshot(
                MappingProxyType(runtimes),
                MappingProxyType({**old.active, name: version}),
                MappingProxyType({**old.statuses, name: status}),
            )
        logger.info(
            "model %s version %d ready: %d labels, vocabulary %d, verified in %.3f s",
            name,
            version,
            len(runtime.labels),
            runtime.tokenizer.vocab_size,
            seconds,
        )
        return status

    def _record_failure(self, name: str, version: int | None, reason: str) -> ModelStatus:
        reason = safe_text(reason.replace(str(self.store), "<model_store>"))
        logger.error("model %s version %s is not served: %s", name, version, reason)
        with self._write_lock:
            old = self._snapshot
            if name in old.active:  # keep the version that works; report why the new one did not load
                status = replace(old.statuses[name], reason=f"version {version} was not loaded: {reason}")
            else:
                status = ModelStatus(name, ModelState.failed, version, reason, name in self.pinned)
            self._snapshot = _Snapshot(
                old.runtimes, old.active, MappingProxyType({**old.statuses, name: status})
            )
        return status

    def _set_status(self, status: ModelStatus) -> None:
        with self._write_lock:
            old = self._snapshot
            self._snapshot = _Snapshot(
                old.runtimes, old.active, MappingProxyType({**old.statuses, status.name: status})
            )

    # -- lookups (lock-free: one read of the snapshot reference) --------------------------------------

    @property
    def names(self) -> list[str]:
        return sorted(self._snapshot.statuses)

    @property
    def default_model(self) -> str | None:
        if self._configured_default is not None:
            return self._configured_default
        names = self.names
        return names[0] if names else None

    def statuses(self) -> dict[str, ModelStatus]:
        snapshot = self._snapshot
        return {name: snapshot.statuses[name] for name in sorted(snapshot.statuses)}

    def status(self, name: str) -> ModelStatus:
        status = self._snapshot.statuses.get(name)
        if status is None:
            raise NotFound(self._unknown_model_message(name))
        return status

    @property
    def ready(self) -> bool:
        """True when at least one model is configured and every one is loaded and verified."""
        statuses = self._snapshot.statuses
        return bool(statuses) and all(status.state is ModelState.ready for status in statuses.values())

    def get(self, name: str | None = None, version: int | None = None) -> ModelRuntime:
        """The runtime for ``name`` (None: the default model) at ``version`` (None: the one serving)."""
        snapshot = self._snapshot
        name = name if name is not None else self.default_model
        if name is None:
            raise Unavailable("no model is configured")
        status = snapshot.statuses.get(name)
        if status is None:
            raise NotFound(self._unknown_model_message(name))
        versions = snapshot.runtimes.get(name, {})
        if not versions:
            raise Unavailable(f"model {name} is not available: {status.reason or status.state.value}")
        chosen = snapshot.active[name] if version is None else version
        runtime = versions.get(chosen)
        if runtime is None:
            loaded = ", ".join(map(str, sorted(versions)))
            raise NotFound(f"model {name} has no loaded version {chosen} (loaded: {loaded})")
        return runtime

    def _unknown_model_message(self, name: str) -> str:
        return f"unknown model {name[:80]!r} (models: {', '.join(self.names) or 'none'})"
