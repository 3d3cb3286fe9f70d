"""The changes an operator makes to a model's rollout, shared by the ``lstm-service`` commands and the admin
routes: each checks its input (alias names, versions present in the store and valid as bundles, weights
from 0 to 100 that add up to at most 100) before anything is written, records who, when, from, to and
why, and writes the new rollout atomically (:func:`service.rollout.state.update`). A refused change
raises a :class:`~service.errors.ServiceError` and leaves the file as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from service.bundle import BundleError, is_valid_name, is_valid_version, list_versions, load_bundle
from service.bundle import promoted_versions as _promoted
from service.errors import Conflict, InvalidRequest, NotFound
from service.rollout import evidence
from service.rollout.state import STABLE, Change, Rollout, Shadow, check_alias, check_percent, read, update

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from service.predictions.sql import SqlStore


@dataclass(frozen=True)
class Outcome:
    rollout: Rollout
    message: str
    evidence: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who asks for a change and why (kept in the history)."""

    who: str
    why: str | None = None


def check_model(store: Path, name: str) -> list[int]:
    """The versions of ``name`` in the store (404 for a model it does not hold)."""
    versions = list_versions(store, name) if is_valid_name(name) else []
    if not versions:
        raise NotFound(f"model {name[:80]!r} is not in the store {store}")
    return versions


def check_version(store: Path, name: str, version: object, public_key: Ed25519PublicKey | None = None) -> int:
    """A version of ``name`` present in the store whose bundle is whole (checksums, signature)."""
    versions = check_model(store, name)
    if not is_valid_version(version):
        raise InvalidRequest(f"version must be a whole number from 1, not {version!r}")
    assert isinstance(version, int)
    if version not in versions:
        raise NotFound(
            f"{name} has no version {version} in the store (versions: {', '.join(map(str, versions))})"
        )
    try:
        load_bundle(Path(store) / name / str(version), public_key)
    except BundleError as error:
        raise InvalidRequest(f"{name} version {version} is not a valid bundle: {error}") from None
    return version


def default_version(store: Path, name: str) -> int | None:
    """The version that serves a model without a ``stable`` alias or a pin: its highest promoted one."""
    return next(iter(_promoted(store, name)), None)


def _change(actor: Actor, action: str, **fields: object) -> Change:
    return Change(time.time(), actor.who, action, why=actor.why, **fields)  # type: ignore[arg-type]


def set_alias(
    store: Path,
    name: str,
    alias: str,
    version: int,
    actor: Actor,
    *,
    weight: float | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Outcome:
    """Point ``alias`` at ``version`` (a weight: that share of unpinned traffic). ``stable`` is moved by
    :func:`promote`, which weighs the evidence."""
    check_alias(alias)
    if alias == STABLE:
        raise InvalidRequest(
            "the stable alias is moved by a promotion (lstm-service promote, "
            "POST /admin/models/{name}/promote), "
            "which checks the candidate against the logged feedback"
        )
    if weight is not None:
        check_percent(weight, "weight")
    check_version(store, name, version, public_key)

    def change(state: Rollout) -> Rollout:
        weights = dict(state.weights)
        if weight is not None:
            weights[alias] = weight
        total = sum(weights.values())
        if total > 100:
            others = ", ".join(f"{key} {value:g} %" for key, value in sorted(weights.items()) if key != alias)
            raise InvalidRequest(
                f"the weights would add up to {total:g} % (over 100): {alias} {weight:g} % beside {others}"
            )
        record = _change(
            actor, "alias", alias=alias, from_version=state.aliases.get(alias), to_version=version
        )
        return state.changed(
            record,
            aliases=MappingProxyType({**state.aliases, alias: version}),
            weights=MappingProxyType(weights),
        )

    rollout = update(store, name, change)
    share = f", {rollout.weights[alias]:g} % of unpinned traffic" if alias in rollout.weights else ""
    return Outcome(rollout, f"{name}: alias {alias} -> version {version}{share}")


def remove_alias(store: Path, name: str, alias: str, actor: Actor) -> Outcome:
    check_model(store, name)
    check_alias(alias)

    def change(state: Rollout) -> Rollout:
        if alias not in state.aliases:
            raise NotFound(
                f"{name} has no alias {alias!r} (aliases: {', '.join(sorted(state.aliases)) or 'none'})"
            )
        record = _change(actor, "unalias", alias=alias, from_version=state.aliases[alias])
        return state.changed(
            record,
            aliases=MappingProxyType({k: v for k, v in state.aliases.items() if k != alias}),
            weights=MappingProxyType({k: v for k, v in state.weights.items() if k != alias}),
        )

    return Outcome(update(store, name, change), f"{name}: alias {alias} removed")


def set_shadow(
    store: Path,
    name: str,
    version: int,
    percent: float,
    actor: Actor,
    public_key: Ed25519PublicKey | None = None,
) -> Outcome:
    check_percent(percent, "percent")
    check_version(store, name, version, public_key)

    def change(state: Rollout) -> Rollout:
        before = state.shadow.version if state.shadow is not None else None
        record = _change(actor, "shadow", from_version=before, to_version=version)
        return state.changed(record, shadow=Shadow(version, percent))

    return Outcome(
        update(store, name, change), f"{name}: version {version} shadows {percent:g} % of requests"
    )


def remove_shadow(store: Path, name: str, actor: Actor) -> Outcome:
    check_model(store, name)

    def change(state: Rollout) -> Rollout:
        if state.shadow is None:
            raise NotFound(f"{name} has no shadow version")
        return state.changed(_change(actor, "unshadow", from_version=state.shadow.version), shadow=None)

    return Outcome(update(store, name, change), f"{name}: shadow removed")


def compare(
    log: SqlStore, name: str, a: int, b: int, window_hours: float | None = None
) -> evidence.Comparison:
    since = 0.0 if window_hours is None else time.time() - window_hours * 3600
    answers = [
        evidence.Answer(v, sha, tuple(labels), ms) for v, sha, labels, ms in log.answers(name, [a, b], since)
    ]
    return evidence.compare(name, a, b, answers, log.truths(name), window_hours)


def resolve(store: Path, name: str, version: str | int) -> int:
    """A version named by number or by alias (CLI arguments and query parameters are text)."""
    if isinstance(version, int) or (isinstance(version, str) and version.isascii() and version.isdigit()):
        return int(version)
    check_alias(version)
    aliases = read(store, name).aliases
    if version not in aliases:
        raise NotFound(f"{name} has no alias {version!r} (aliases: {', '.join(sorted(aliases)) or 'none'})")
    return aliases[version]


def promote(
    store: Path,
    name: str,
    version: int,
    actor: Actor,
    *,
    alias: str = STABLE,
    force: bool = False,
    serving: int | None = None,
    log: SqlStore | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Outcome:
    """Point ``alias`` (``stable``: the version answering unpinned traffic) at ``version``, unless the
    logged feedback shows it significantly less accurate than the version it replaces
    (:func:`service.rollout.evidence.promotion_verdict`; ``force`` overrides). ``serving``: the version
    answering now when the alias does not exist yet (default: the store's highest promoted version, which
    is what serves unless a pin says otherwise)."""
    check_alias(alias)
    check_version(store, name, version, public_key)
    current = read(store, name).aliases.get(alias)
    if current is None and alias == STABLE:
        current = serving if serving is not None else default_version(store, name)
    statement: str | None = None
    if current is not None and current != version and log is not None:
        verdict = evidence.promotion_verdict(compare(log, name, current, version))
        statement = verdict.statement
        if verdict.refused and not force:
            raise Conflict(
                f"promotion of {name} version {version} to {alias} refused: it is significantly less "
                "accurate "
                f"than version {current} on the logged feedback: {statement}. Nothing changed; pass --force "
                '(or "force": true) to promote it anyway'
            )
    elif log is None:
        statement = "no prediction log with feedback to weigh"

    def change(state: Rollout) -> Rollout:
        before = state.aliases.get(alias, current)
        record = _change(
            actor, "promote", alias=alias, from_version=before, to_version=version, evidence=statement
        )
        return state.changed(record, aliases=MappingProxyType({**state.aliases, alias: version}))

    rollout = update(store, name, change)
    said = f"{name}: {alias} -> version {version} (was {current if current is not None else 'none'})"
    return Outcome(rollout, said + (f"; evidence: {statement}" if statement else ""), statement)


def rollback(store: Path, name: str, actor: Actor, *, alias: str = STABLE) -> Outcome:
    """Undo the last change of ``alias``: point it back at the version it had before (remove it if it
    had none, so the model's highest promoted version serves again)."""
    check_model(store, name)
    check_alias(alias)
    moves = ("alias", "promote", "rollback")

    def change(state: Rollout) -> Rollout:
        current = state.aliases.get(alias)
        last = next(
            (
                c
                for c in reversed(state.history)
                if c.alias == alias and c.action in moves and c.to_version == current
            ),
            None,
        )
        if current is None or last is None:
            raise NotFound(f"{name}: the alias {alias} has no change to roll back")
        target = last.from_version
        if target is not None and target not in list_versions(store, name):
            raise Conflict(
                f"{name}: version {target}, which {alias} pointed at before, is no longer in the store"
            )
        record = _change(actor, "rollback", alias=alias, from_version=current, to_version=target)
        aliases = {k: v for k, v in state.aliases.items() if k != alias}
        if target is not None:
            aliases[alias] = target
        weights = (
            state.weights if target is not None else {k: v for k, v in state.weights.items() if k != alias}
        )
        return state.changed(
            record, aliases=MappingProxyType(aliases), weights=MappingProxyType(dict(weights))
        )

    rollout = update(store, name, change)
    target = rollout.aliases.get(alias)
    said = f"version {target}" if target is not None else "removed (the highest promoted version serves)"
    return Outcome(rollout, f"{name}: {alias} rolled back: {said}")
