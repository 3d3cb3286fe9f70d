"""The rollout's parts alone: the split's hash, the statistics, the file's checks and history, a router
over a real registry."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support.stores import add_version

from service.engine.registry import Registry
from service.errors import Conflict, InvalidRequest, NotFound
from service.rollout import changes, evidence, state
from service.rollout.routing import BUCKETS, Router, bucket

ACTOR = changes.Actor("tester", "because")


@pytest.fixture
def store(store_copy: Path) -> Path:
    add_version(store_copy, "tiny-en", 2)
    add_version(store_copy, "tiny-en", 3)
    return store_copy


def test_the_split_hash_is_even_and_stable() -> None:
    points = [bucket(f"k{index}") for index in range(20_000)]
    assert all(0 <= point < BUCKETS for point in points)
    for low in range(0, BUCKETS, BUCKETS // 10):  # every tenth of the range gets 8-12 % of the keys
        share = sum(1 for point in points if low <= point < low + BUCKETS // 10) / len(points)
        assert 0.08 < share < 0.12, (low, share)
    assert bucket("same") == bucket("same") and bucket("same") != bucket("other")


def test_mcnemar_and_the_two_proportion_test_give_known_values() -> None:
    assert evidence.mcnemar_p(0, 0) == 1.0
    assert evidence.mcnemar_p(5, 0) == pytest.approx(1 / 32)  # five of five one way
    assert evidence.mcnemar_p(3, 2) == pytest.approx(16 / 32)  # P(X >= 3), n = 5
    assert evidence.mcnemar_p(0, 5) == 1.0
    assert evidence.two_proportion_p(90, 100, 60, 100) < 1e-5
    assert evidence.two_proportion_p(60, 100, 90, 100) > 0.99
    assert evidence.two_proportion_p(5, 10, 5, 10) == pytest.approx(0.5)


def _answers(version: int, labels: list[str]) -> list[evidence.Answer]:
    return [
        evidence.Answer(version, f"t{index}", (label,), 1.0 + index) for index, label in enumerate(labels)
    ]


def test_a_comparison_counts_agreement_confusion_and_the_paired_discordant_texts() -> None:
    truth = ["a"] * 20 + ["b"] * 20
    current = truth[:]  # always right
    candidate = ["b"] * 20 + ["b"] * 20  # wrong on every "a"
    answers = _answers(1, current) + _answers(2, candidate)
    compared = evidence.compare("m", 1, 2, answers, {f"t{i}": [label] for i, label in enumerate(truth)})
    assert (compared.both, compared.agreed, compared.agreement) == (40, 20, 0.5)
    assert compared.confusion == {"a": {"b": 20}, "b": {"b": 20}}
    assert (compared.only_a_right, compared.only_b_right, compared.both_right) == (20, 0, 20)
    assert (compared.a.accuracy, compared.b.accuracy) == (1.0, 0.5)
    verdict = evidence.promotion_verdict(compared)
    assert verdict.refused
    assert "only 1 was right on 20, only 2 on 0" in verdict.statement
    assert "version 2 was right on 50.0 % (20/40) and version 1 on 100.0 % (40/40)" in verdict.statement
    assert not evidence.promotion_verdict(evidence.compare("m", 2, 1, answers, {})).refused  # no feedback


def test_the_latest_answer_of_a_version_counts_and_unpaired_evidence_uses_the_z_test() -> None:
    old = [evidence.Answer(1, "t0", ("x",), 5.0)]
    new = [evidence.Answer(1, "t0", ("a",), 7.0)]
    compared = evidence.compare("m", 1, 2, old + new, {"t0": ["a"]})
    assert compared.a.correct == 1 and compared.a.answers == 2 and compared.a.latency_p99_ms == 7.0
    right = _answers(1, ["a"] * 30)  # texts t0..t29
    wrong = [evidence.Answer(2, f"u{i}", ("b",), 1.0) for i in range(30)]  # other texts: nothing paired
    truths = {**{f"t{i}": ["a"] for i in range(30)}, **{f"u{i}": ["a"] for i in range(30)}}
    verdict = evidence.promotion_verdict(evidence.compare("m", 1, 2, right + wrong, truths))
    assert verdict.refused and "two-proportion z-test" in verdict.statement


def test_changes_check_everything_before_writing(store: Path) -> None:
    path = state.path_of(store, "tiny-en")
    changes.set_alias(store, "tiny-en", "canary", 2, ACTOR, weight=40)
    written = path.read_text()
    refusals = [
        (lambda: changes.set_alias(store, "tiny-en", "2fast", 2, ACTOR), InvalidRequest),
        (lambda: changes.set_alias(store, "tiny-en", "x" * 65, 2, ACTOR), InvalidRequest),
        (lambda: changes.set_alias(store, "tiny-en", "blue", 9, ACTOR), NotFound),
        (lambda: changes.set_alias(store, "tiny-en", "blue", 3, ACTOR, weight=61), InvalidRequest),
        (lambda: changes.set_alias(store, "tiny-en", "blue", 3, ACTOR, weight=math.nan), InvalidRequest),
        (lambda: changes.set_alias(store, "tiny-en", "canary", 2, ACTOR, weight=100.5), InvalidRequest),
        (lambda: changes.set_alias(store, "nope", "blue", 1, ACTOR), NotFound),
        (lambda: changes.set_shadow(store, "tiny-en", 3, -0.1, ACTOR), InvalidRequest),
        (lambda: changes.remove_alias(store, "tiny-en", "blue", ACTOR), NotFound),
        (lambda: changes.remove_shadow(store, "tiny-en", ACTOR), NotFound),
        (lambda: changes.rollback(store, "tiny-en", ACTOR), NotFound),
        (lambda: changes.resolve(store, "tiny-en", "nightly"), NotFound),
    ]
    for refuse, kind in refusals:
        with pytest.raises(kind):
            refuse()
        assert path.read_text() == written
    changes.set_alias(store, "tiny-en", "blue", 3, ACTOR, weight=60)  # 40 + 60 = 100 is allowed
    assert json.loads(path.read_text())["weights"] == {"blue": 60.0, "canary": 40.0}


def test_a_broken_candidate_bundle_is_refused(store: Path) -> None:
    (store / "tiny-en" / "3" / "labels.json").write_text('["food", "tech", "sport"]')
    with pytest.raises(InvalidRequest, match="not a valid bundle"):
        changes.set_alias(store, "tiny-en", "canary", 3, ACTOR)
    assert not state.path_of(store, "tiny-en").exists()


def test_rollback_undoes_the_last_move_of_the_alias_and_records_it(store: Path) -> None:
    changes.promote(store, "tiny-en", 2, ACTOR)  # stable was the store's highest (3), now 2
    changes.promote(store, "tiny-en", 1, ACTOR)
    back = changes.rollback(store, "tiny-en", ACTOR)
    assert back.rollout.aliases["stable"] == 2
    assert [(c.action, c.from_version, c.to_version) for c in back.rollout.history] == [
        ("promote", 3, 2),
        ("promote", 2, 1),
        ("rollback", 1, 2),
    ]
    changes.set_alias(store, "tiny-en", "canary", 3, ACTOR, weight=5)
    gone = changes.rollback(store, "tiny-en", ACTOR, alias="canary")  # the canary had no version before
    assert "canary" not in gone.rollout.aliases and "canary" not in gone.rollout.weights


class _Log:
    """The two queries a comparison makes, answered from lists (the SQL store's own tests cover SQL)."""

    def __init__(
        self, answers: list[tuple[int, str, list[str], float]], truths: dict[str, list[str]]
    ) -> None:
        self._answers, self._truths = answers, truths

    def answers(
        self, model: str, versions: list[int], since: float
    ) -> list[tuple[int, str, list[str], float]]:
        return [row for row in self._answers if row[0] in versions]

    def truths(self, model: str) -> dict[str, list[str]]:
        return self._truths


def test_a_promotion_refuted_by_the_feedback_writes_nothing_unless_forced(store: Path) -> None:
    changes.promote(store, "tiny-en", 2, ACTOR)
    path = state.path_of(store, "tiny-en")
    written = path.read_text()
    answers = [(2, f"t{i}", ["a"], 1.0) for i in range(20)] + [(3, f"t{i}", ["b"], 1.0) for i in range(20)]
    log = _Log(answers, {f"t{i}": ["a"] for i in range(20)})
    with pytest.raises(Conflict, match="McNemar"):
        changes.promote(store, "tiny-en", 3, ACTOR, log=log)  # type: ignore[arg-type]
    assert path.read_text() == written
    better = _Log(
        [(2, f"t{i}", ["b"], 1.0) for i in range(20)] + answers[20:], {f"t{i}": ["b"] for i in range(20)}
    )
    allowed = changes.promote(store, "tiny-en", 3, ACTOR, log=better)  # type: ignore[arg-type]
    assert allowed.rollout.aliases["stable"] == 3
    changes.rollback(store, "tiny-en", ACTOR)
    forced = changes.promote(store, "tiny-en", 3, ACTOR, log=log, force=True)  # type: ignore[arg-type]
    assert forced.rollout.aliases["stable"] == 3 and "McNemar" in (forced.evidence or "")


def test_an_unreadable_rollout_file_refuses_changes_and_keeps_the_routing(store: Path) -> None:
    registry = Registry(store, default_model="tiny-en", pinned={"tiny-en": 1})
    registry.load_all()
    router = Router(registry, store)
    changes.set_alias(store, "tiny-en", "canary", 2, ACTOR, weight=50)
    router.refresh()
    assert router.table("tiny-en").aliases == {"canary": 2}  # type: ignore[union-attr]
    assert registry.loaded_versions("tiny-en") == {1, 2}
    state.path_of(store, "tiny-en").write_text("{not json")
    router.refresh()
    assert router.table("tiny-en").aliases == {"canary": 2}  # type: ignore[union-attr]
    with pytest.raises(Exception, match="not a valid rollout file"):
        changes.set_alias(store, "tiny-en", "blue", 3, ACTOR)
    state.path_of(store, "tiny-en").unlink()
    router.refresh()
    assert router.table("tiny-en") is None
    assert registry.loaded_versions("tiny-en") == {1}  # the canary's version is let go


def test_a_router_routes_only_to_loaded_versions_and_says_why_not(store: Path) -> None:
    registry = Registry(store, default_model="tiny-en", pinned={"tiny-en": 1})
    registry.load_all()
    router = Router(registry, store)
    changes.set_alias(store, "tiny-en", "canary", 3, ACTOR, weight=100)
    (store / "tiny-en" / "3" / "model.onnx").write_bytes(b"not a graph")  # broken after the check
    router.refresh()
    table = router.table("tiny-en")
    assert table is not None and "canary" in table.failed and not table.weighted
    assert router.choose("tiny-en", None, ["x"], None) == (None, None)  # the broken canary takes nothing
    with pytest.raises(Exception, match="could not be loaded"):
        router.choose("tiny-en", "canary", ["x"], None)
    assert router.choose("tiny-en", 1, ["x"], None) == (1, None)


def test_an_evicted_model_comes_back_with_the_versions_its_rollout_names(store: Path) -> None:
    from dataclasses import replace

    from service.bundle import load_bundle, write_bundle

    zh = load_bundle(store / "tiny-zh" / "1")
    manifest = replace(zh.manifest, name="tiny-two") if hasattr(zh.manifest, "name") else zh.manifest
    write_bundle(store, "tiny-two", zh.model_path, zh.tokenizer, zh.labels, manifest, 1)
    registry = Registry(store, default_model="tiny-zh", max_loaded=2)
    registry.load_all()
    router = Router(registry, store)
    registry.ensure_loaded("tiny-en")
    changes.set_alias(store, "tiny-en", "canary", 2, ACTOR, weight=10)
    router.refresh()
    assert registry.loaded_versions("tiny-en") == {3, 2}  # the highest serves, the canary beside it
    registry.ensure_loaded("tiny-two")  # a budget of two models: tiny-en, the least recently used, goes
    assert registry.loaded_versions("tiny-en") == set()
    registry.ensure_loaded("tiny-en")
    assert registry.loaded_versions("tiny-en") == {3, 2}
    assert router.choose("tiny-en", "canary", ["x"], None) == (2, "canary")
