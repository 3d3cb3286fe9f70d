"""Every model of the store, loaded, verified, and looked up by ``(name, version)``.

The registry's whole state is one immutable :class:`_Snapshot`; a change builds a new snapshot and swaps
the reference under a lock, so readers never lock and never see half an update. A version is opened and
verified *before* the swap, beside whatever is serving, and a request keeps the runtime it looked up:
that is what a hot reload needs. A version that fails is not served, its reason is logged and kept for
``/readyz``, and the other models (or the version already serving) carry on.

Which version serves: a pinned one, else the highest *promoted* version (one whose manifest does not say
``"promoted": false``). When that one fails verification, the next promoted version that passes serves
instead (``fallback``; off: the model fails, as a strict operator may want), and the status reports the
refused version, why, and how to recover. The default model is fixed when the store is first loaded.
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
from typing import TYPE_CHECKING

from service.bundle import BundleError, is_valid_name, is_valid_version, list_models, promoted_versions
from service.engine.loading import open_model
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest, NotFound, Unavailable, safe_text
from service.observability import load_metrics, metrics

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

logger = logging.getLogger(__name__)


class ModelState(str, Enum):
    loading = "loading"
    ready = "ready"
    failed = "failed"
    evicted = "evicted"  # in the store, not in memory (a model budget): loaded on its next request


class NotLoaded(Unavailable):
    """The model is evicted (or not loaded yet) under the model budget: load it, then look it up again."""


@dataclass(frozen=True)
class ModelStatus:
    """Where one configured model stands; ``version`` is the one serving (or the one that failed)."""

    name: str
    state: ModelState
    version: int | None = None
    reason: str | None = None
    pinned: bool = False
    load_seconds: float | None = None
    failed_version: int | None = None  # a newer version refused while this one serves (or fails)


@dataclass(frozen=True)
class _Snapshot:
    runtimes: Mapping[str, Mapping[int, ModelRuntime]] = field(default_factory=dict)
    active: Mapping[str, int] = field(default_factory=dict)  # the version answering requests without one
    statuses: Mapping[str, ModelStatus] = field(default_factory=dict)


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a name too long for the file system
        return False


@dataclass(frozen=True)
class LoadOutcome:
    """What a load attempt did: ``status`` is the model's status afterwards (the old version may still be
    serving), ``version`` the version that was tried, ``reason`` why it was refused (None if it loaded)."""

    status: ModelStatus
    version: int | None
    reason: str | None = None
    missing: bool = False  # the model or version is not in the store at all

    @property
    def loaded(self) -> bool:
        return self.reason is None


class Registry:
    def __init__(
        self,
        store: Path,
        pinned: Mapping[str, int] | None = None,
        default_model: str | None = None,
        intra_op_threads: int = 1,
        fallback: bool = True,
        public_key: Ed25519PublicKey | None = None,
        max_loaded: int = 0,
    ) -> None:
        self.store = Path(store)
        # At most this many models in memory (0: every model); the least recently used unpinned, non-default
        # one is evicted when another must load. Loads on demand: ensure_loaded().
        self.max_loaded = max_loaded
        self._last_used: dict[str, float] = {}  # written by lookups without a lock (one dict store each)
        self.public_key = public_key  # set: every bundle must be signed with its private key
        self.fallback = fallback
        self._start_default: str | None = None  # the default model chosen when the store was first loaded
        self.unloaded: frozenset[str] = frozenset()  # unloaded by an admin: the store poller leaves them be
        self.pinned: Mapping[str, int] = MappingProxyType(dict(pinned or {}))  # replaced, never mutated
        self._configured_default = default_model
        self.intra_op_threads = intra_op_threads
        self._snapshot = _Snapshot()
        # Versions a model's rollout needs loaded beside the serving one (aliases, a shadow): kept by loads.
        self._held: dict[str, frozenset[int]] = {}
        self._write_lock = threading.Lock()  # held for a swap only; lookups never lock
        # One load at a time (admin calls, the store poller): an older load finishing last must not win.
        self._load_lock = threading.Lock()
        metrics.track_models(self.statuses)  # model_ready{model,version,state}, read at scrape time

    # -- loading -------------------------------------------------------------------------------------

    def load_all(self) -> None:
        """Load every model of the store: the pinned version, else the highest."""
        names = list(list_models(self.store))
        if not names:
            logger.error("model store %s holds no model bundle", self.store)
        for name in names:
            self._set_status(ModelStatus(name, ModelState.loading, pinned=name in self.pinned))
        eager = self._loaded_at_start(names)
        for name in names:
            if name in eager:
                self.reload(name, self.pinned.get(name), kind="initial")
            else:
                self._set_status(ModelStatus(name, ModelState.evicted, reason=_NOT_YET, pinned=False))
        if self._configured_default is not None:
            logger.info(
                "default model: %s (set by --default-model or LSTM_SERVICE_DEFAULT_MODEL)",
                self._configured_default,
            )
        elif names:
            self._start_default = names[0]
            logger.warning(
                "default model: %s, the first of the store's models alphabetically (no "
                "LSTM_SERVICE_DEFAULT_MODEL); it stays so until a restart, which may pick another if models "
                "are added: set LSTM_SERVICE_DEFAULT_MODEL to choose it",
                names[0],
            )

    def _loaded_at_start(self, names: list[str]) -> set[str]:
        """Every model without a budget; with one, the pinned models and the default, then the others by
        name while the budget lasts (the rest load on their first request)."""
        if self.max_loaded <= 0:
            return set(names)
        default = self._configured_default or (names[0] if names else None)
        kept = [name for name in names if name in self.pinned or name == default]
        for name in names:
            if len(kept) >= self.max_loaded:
                break
            if name not in kept:
                kept.append(name)
        return set(kept)

    def ensure_loaded(self, name: str) -> ModelRuntime | None:
        """Load an evicted model (its pinned version, else the one that would serve), evicting the least
        recently used others over the budget; the runtime serving it afterwards (None if it failed), which
        the request that waited uses even if another load evicts the model again meanwhile. Blocking: run
        it in a thread."""
        with self._load_lock:
            status = self._snapshot.statuses.get(name)
            if status is None:
                raise NotFound(self._unknown_model_message(name))
            if status.state is ModelState.evicted:
                self._last_used[name] = time.monotonic()
                self._load_locked(name, self.pinned.get(name), None, "lazy")
            snapshot = self._snapshot
            active = snapshot.active.get(name)
            runtime = None if active is None else snapshot.runtimes[name][active]
        held = self._held.get(name)
        if runtime is not None and held and not held <= self.loaded_versions(name):
            self.hold(name, set(held))  # the versions its rollout names come back with the model
        return runtime

    def _evict_over_budget(self, keep: str) -> None:
        """With the load lock held: evict least recently used models until the budget holds."""
        if self.max_loaded <= 0:
            return
        while True:
            snapshot = self._snapshot
            loaded = [name for name in snapshot.runtimes if snapshot.runtimes[name]]
            if len(loaded) <= self.max_loaded:
                return
            protected = {keep, self.default_model, *self.pinned}
            candidates = [name for name in loaded if name not in protected]
            if not candidates:
                return  # everything loaded is pinned or the default: the budget gives way
            victim = min(candidates, key=lambda name: self._last_used.get(name, 0.0))
            with self._write_lock:
                old = self._snapshot
                status = ModelStatus(victim, ModelState.evicted, None, _EVICTED.format(self.max_loaded))
                self._snapshot = _Snapshot(
                    MappingProxyType({key: value for key, value in old.runtimes.items() if key != victim}),
                    MappingProxyType({key: value for key, value in old.active.items() if key != victim}),
                    MappingProxyType({**old.statuses, victim: status}),
                )
            metrics.set_serving(victim, None, old.active.get(victim))
            load_metrics.observe_eviction(victim)
            logger.info("model %s evicted: the least recently used of %d loaded", victim, len(loaded))

    def reload(
        self, name: str, version: int | None = None, *, pin: bool | None = None, kind: str = "reload"
    ) -> LoadOutcome:
        """Open and verify ``name`` (default: its highest version) beside what serves, then swap it in;
        say whether the version loaded and why not.

        On failure the version already serving (if any) keeps serving; the reason is logged and recorded.
        ``pin``: True pins the version once it serves, False unpins the model, None leaves the pin as it is.
        """
        with self._load_lock:
            return self._load_locked(name, version, pin, kind)

    def reload_if_newer(self, name: str, version: int) -> LoadOutcome | None:
        """The store poller's load: a served, unpinned model's newer ``version``, or a model the store gained
        since (not one an admin unloaded), checked under the load lock (an admin call may have pinned or
        unloaded it meanwhile)."""
        with self._load_lock:
            snapshot = self._snapshot
            known = name in snapshot.statuses
            if name in self.pinned or (not known and name in self.unloaded):
                return None
            if self.max_loaded > 0 and not known:  # a new model under a budget: loaded on first use
                self._set_status(ModelStatus(name, ModelState.evicted, reason=_NOT_YET))
                return None
            if known and snapshot.statuses[name].state is ModelState.evicted:
                return None  # not in memory: its next load takes the newest version anyway
            active = snapshot.active.get(name)
            if known and active is not None and version <= active:
                return None
            return self._load_locked(name, version if known else None, None, "reload")

    def _load_locked(self, name: str, version: int | None, pin: bool | None, kind: str) -> LoadOutcome:
        if version is not None:
            return self._load_version(name, version, pin, kind)
        try:
            candidates = promoted_versions(self.store, name)
        except BundleError as error:  # an invalid name
            return self._record_failure(name, None, str(error), kind, True)
        if not candidates:
            return self._record_failure(name, None, "no version of this model in the store", kind, True)
        refused: list[tuple[int, str]] = []
        for candidate in candidates if self.fallback else candidates[:1]:
            outcome = self._load_version(name, candidate, pin, kind, refused[0] if refused else None)
            if outcome.loaded:
                return outcome
            refused.append((candidate, outcome.reason or ""))
        return self._report_newest(name, outcome, refused)

    def _report_newest(self, name: str, last: LoadOutcome, refused: list[tuple[int, str]]) -> LoadOutcome:
        """When no version passes, the status names the newest one's fault first (not the oldest's)."""
        if len(refused) < 2:
            return last
        newest, cause = refused[0]
        older = "; ".join(f"version {version}: {reason}" for version, reason in refused[1:])
        reason = f"{cause} (no older version passes either: {older})"
        with self._write_lock:
            old = self._snapshot
            status = old.statuses.get(name)
            if status is None or status.state is not ModelState.failed:
                return last
            status = replace(status, version=newest, reason=reason)
            self._snapshot = _Snapshot(
                old.runtimes, old.active, MappingProxyType({**old.statuses, name: status})
            )
        return LoadOutcome(status, newest, reason, last.missing)

    def _load_version(
        self, name: str, version: int, pin: bool | None, kind: str, refused: tuple[int, str] | None = None
    ) -> LoadOutcome:
        """Open, verify and swap in one version; ``refused`` is a newer version that failed before it."""
        if not (is_valid_name(name) and is_valid_version(version)):  # never a path outside the store
            invalid = "invalid model name or version"
            logger.error("refused to load model %.80r version %.20r: %s", name, version, invalid)
            return LoadOutcome(ModelStatus(name, ModelState.failed, None, invalid), None, invalid, True)
        if not _is_folder(self.store / name / str(version)):
            return self._record_failure(name, version, "no such version in the store", kind, True)
        started = time.perf_counter()
        try:
            runtime = open_model(self.store / name / str(version), self.intra_op_threads, self.public_key)
        except BundleError as error:
            return self._record_failure(name, version, str(error), kind, False, time.perf_counter() - started)
        except Exception as error:  # onnxruntime refusing a graph raises its own exception types
            logger.exception("model %s version %s could not be opened", name, version)
            why = f"onnxruntime could not load model.onnx ({type(error).__name__})"
            return self._record_failure(name, version, why, kind, False, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        pins = dict(self.pinned)
        if pin is True:
            pins[name] = version
        elif pin is False:
            pins.pop(name, None)
        reason: str | None = None
        failed: int | None = None
        if refused is not None:
            failed, cause = refused
            reason = f"version {failed} failed verification: {cause}; serving version {version} instead. " + (
                _recovery(name, failed, version)
            )
            logger.error("model %s: %s", name, reason)
        status = ModelStatus(name, ModelState.ready, version, reason, name in pins, round(seconds, 3), failed)
        with self._write_lock:
            old = self._snapshot
            held = self._held.get(name, frozenset())
            kept = {v: r for v, r in old.runtimes.get(name, {}).items() if v in held and v != version}
            runtimes = {**old.runtimes, name: MappingProxyType({**kept, version: runtime})}
            self._snapshot = _Snapshot(
                MappingProxyType(runtimes),
                MappingProxyType({**old.active, name: version}),
                MappingProxyType({**old.statuses, name: status}),
            )
            self.pinned = MappingProxyType(pins)
            self.unloaded = self.unloaded - {name}
        previous = old.active.get(name)
        self._last_used.setdefault(name, time.monotonic())
        self._evict_over_budget(keep=name)
        metrics.observe_model_load(name, version, kind, True, seconds)
        metrics.set_serving(name, version, previous)
        logger.info(
            "model %s version %d %s: %d labels, vocabulary %d, verified in %.3f s",
            name,
            version,
            "ready" if previous is None else f"now serving (was version {previous})",
            len(runtime.labels),
            runtime.tokenizer.vocab_size,
            seconds,
        )
        return LoadOutcome(status, version)

    def _record_failure(
        self,
        name: str,
        version: int | None,
        reason: str,
        kind: str,
        missing: bool = False,
        seconds: float | None = None,
    ) -> LoadOutcome:
        reason = safe_text(reason.replace(str(self.store), "<model_store>"))
        logger.error("model %s%s is not served: %s", name, _version(version), reason)
        metrics.observe_model_load(name, version, kind, False, seconds)
        with self._write_lock:
            old = self._snapshot
            if name in old.active:  # keep the version that works; report why the new one did not load
                serving = old.active[name]
                text = f"{_version(version).strip() or 'the model'} was not loaded: {reason}"
                refused = None if missing else version
                if refused is not None:
                    text += f"; version {serving} keeps serving. " + _recovery(name, refused, serving)
                status = replace(old.statuses[name], reason=text, failed_version=refused)
            else:
                status = ModelStatus(name, ModelState.failed, version, reason, name in self.pinned)
            if name in old.statuses:  # a model nobody served before is not added by a failed load
                self._snapshot = _Snapshot(
                    old.runtimes, old.active, MappingProxyType({**old.statuses, name: status})
                )
        return LoadOutcome(status, version, reason, missing)

    def hold(self, name: str, versions: set[int]) -> dict[int, str]:
        """Keep ``versions`` of a loaded model in memory beside the serving one (a rollout's aliases and
        shadow): open and verify those not loaded yet, drop the held ones no longer asked for. Returns the
        versions that could not be loaded, with why. A model not in memory is left alone."""
        refused: dict[int, str] = {}
        with self._load_lock:
            self._held[name] = frozenset(versions)
            snapshot = self._snapshot
            if name not in snapshot.runtimes or name not in snapshot.active:
                return dict.fromkeys(versions, "the model is not loaded")
            opened: dict[int, ModelRuntime] = {}
            for version in sorted(versions - set(snapshot.runtimes[name])):
                if not (is_valid_version(version) and _is_folder(self.store / name / str(version))):
                    refused[version] = "no such version in the store"
                    continue
                try:
                    opened[version] = open_model(
                        self.store / name / str(version), self.intra_op_threads, self.public_key
                    )
                except Exception as error:  # BundleError, or onnxruntime refusing the graph
                    refused[version] = safe_text(str(error).replace(str(self.store), "<model_store>"))
                    logger.error(
                        "model %s version %d could not be held for its rollout: %s",
                        name,
                        version,
                        refused[version],
                    )
            with self._write_lock:
                old = self._snapshot
                active = old.active[name]
                kept = {v: r for v, r in old.runtimes[name].items() if v == active or v in versions}
                runtimes = {**old.runtimes, name: MappingProxyType({**kept, **opened})}
                self._snapshot = _Snapshot(MappingProxyType(runtimes), old.active, old.statuses)
        for version in sorted(opened):
            logger.info("model %s version %d loaded beside version %d for its rollout", name, version, active)
        return refused

    def loaded_versions(self, name: str) -> set[int]:
        return set(self._snapshot.runtimes.get(name, {}))

    def unload(self, name: str) -> ModelStatus:
        """Stop serving ``name``: it leaves every listing and lookup (404) until it is loaded again."""
        with self._load_lock, self._write_lock:
            old = self._snapshot
            status = old.statuses.get(name)
            if status is None:
                raise NotFound(self._unknown_model_message(name))
            if name == self._configured_default:
                raise InvalidRequest(
                    f"model {name} is the default model (LSTM_SERVICE_DEFAULT_MODEL); it cannot be unloaded"
                )
            self._snapshot = _Snapshot(
                MappingProxyType({key: value for key, value in old.runtimes.items() if key != name}),
                MappingProxyType({key: value for key, value in old.active.items() if key != name}),
                MappingProxyType({key: value for key, value in old.statuses.items() if key != name}),
            )
            self.pinned = MappingProxyType({key: value for key, value in self.pinned.items() if key != name})
            self.unloaded = self.unloaded | {name}
        metrics.set_serving(name, None, old.active.get(name))
        logger.info("model %s unloaded (was%s)", name, _version(old.active.get(name)) or " not serving")
        return status

    @property
    def serving_versions(self) -> Mapping[str, int]:
        """The version each model answers with when a request names none."""
        return self._snapshot.active

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
        """LSTM_SERVICE_DEFAULT_MODEL, else the first model alphabetically when the store was first loaded
        (a model added later never takes its place), else the first one now."""
        if self._configured_default is not None:
            return self._configured_default
        statuses = self._snapshot.statuses
        if self._start_default in statuses:
            return self._start_default
        return min(statuses, default=None)

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
        """True when at least one model is configured and every one is loaded and verified (or evicted
        under the model budget: it loads on its next request)."""
        statuses = self._snapshot.statuses
        return bool(statuses) and all(status.state in _SERVABLE for status in statuses.values())

    def is_ready(self, policy: str = "all") -> bool:
        """Readiness under a policy: every model ready ("all", as :attr:`ready`), at least one ("any"), or
        the default model ("default"). Draining is the caller's business."""
        statuses = self._snapshot.statuses
        if policy == "any":
            return any(status.state is ModelState.ready for status in statuses.values())
        if policy == "default":
            default = statuses.get(self.default_model or "")
            return default is not None and default.state is ModelState.ready
        return self.ready

    def serves(self, runtime: ModelRuntime) -> bool:
        """Is this very runtime still loaded (not replaced by a reload, not unloaded)?"""
        return self._snapshot.runtimes.get(runtime.name, {}).get(runtime.version) is runtime

    def get(self, name: str | None = None, version: int | None = None) -> ModelRuntime:
        """The runtime for ``name`` (None: the default model) at ``version`` (None: the one serving)."""
        snapshot = self._snapshot
        name = name if name is not None else self.default_model
        if name is None:
            raise Unavailable("no model is configured")
        status = snapshot.statuses.get(name)
        if status is None:
            raise NotFound(self._unknown_model_message(name))
        self._last_used[name] = time.monotonic()
        versions = snapshot.runtimes.get(name, {})
        if not versions and status.state is ModelState.evicted:
            raise NotLoaded(f"model {name} is not loaded: {status.reason}")
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


_SERVABLE = (ModelState.ready, ModelState.evicted)
_NOT_YET = "not loaded yet: loaded on its first request (LSTM_SERVICE_MAX_LOADED_MODELS)"
_EVICTED = (
    "evicted, the least recently used of {} loaded models (LSTM_SERVICE_MAX_LOADED_MODELS); loaded again on "
    "its next request"
)


def _recovery(name: str, failed: int, serving: int) -> str:
    return (
        f"To recover: fix or replace <model_store>/{name}/{failed}, remove it, or pin the version that "
        f"works (LSTM_SERVICE_PINNED={name}={serving}, or POST /admin/models/{name}/load "
        f'{{"version": {serving}}})'
    )


def _version(version: int | None) -> str:
    """``" version N"``, or nothing when there is no version to name: never Python's None in a message."""
    return "" if version is None else f" version {version}"
