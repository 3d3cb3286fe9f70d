"""Aliases, canary weights, shadow runs, promote and roll back through the real app (in process): what the
routes accept and refuse, what answers say, what the log and /models/{name} show."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.apps import ADMIN, ADMIN_TOKEN, parse_metrics, running_app, series
from support.data import tiny_examples
from support.stores import add_version

from service.rollout.state import ROLLOUT_FILE
from service.settings import Settings

pytestmark = pytest.mark.anyio


def _settings(store: Path, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        model_store=store,
        admin_token=ADMIN_TOKEN,
        default_model="tiny-en",
        prediction_log=f"sqlite:///{tmp_path / 'log.db'}",
        rollout_poll_seconds=0.2,
        **extra,
    )


@pytest.fixture
def two_versions(store_copy: Path) -> Path:
    add_version(store_copy, "tiny-en", 2)
    add_version(store_copy, "tiny-en", 3)
    return store_copy


def _file(store: Path) -> str | None:
    path = store / "tiny-en" / ROLLOUT_FILE
    return path.read_text() if path.exists() else None


async def test_a_named_alias_answers_with_its_version_and_says_so(two_versions: Path, tmp_path: Path) -> None:
    async with running_app(_settings(two_versions, tmp_path, pinned={"tiny-en": 1})) as client:
        set_alias = await client.put(
            "/admin/models/tiny-en/aliases/canary", json={"version": 2, "why": "try 2"}, headers=ADMIN
        )
        assert set_alias.status_code == 200, set_alias.text
        assert set_alias.json()["rollout"]["aliases"] == {"canary": 2}
        named = await client.post("/classify", json={"text": "pizza pasta", "version": "canary"})
        assert named.status_code == 200, named.text
        assert (named.json()["version"], named.json()["alias"]) == (2, "canary")
        assert named.headers["x-model-alias"] == "canary"
        assert named.headers["x-model-version"] == "2"
        by_number = await client.post("/classify", json={"text": "pizza pasta", "version": 3})
        assert by_number.status_code == 404  # 3 is in the store but no alias holds it: not loaded
        plain = await client.post("/classify", json={"text": "pizza pasta"})
        assert plain.json()["version"] == 1 and "alias" not in plain.json()  # no weight: no traffic
        oip = await client.post(
            "/v2/models/tiny-en/versions/canary/infer",
            json={"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["pizza"]}]},
        )
        assert oip.status_code == 200, oip.text
        assert oip.json()["model_version"] == "2"
        metadata = await client.get("/v2/models/tiny-en/versions/canary")
        assert metadata.status_code == 200 and metadata.json()["versions"] == ["2"], metadata.text
        ready = await client.get("/v2/models/tiny-en/versions/canary/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        stats = await client.get("/v2/models/tiny-en/versions/canary/stats")
        assert stats.json()["model_stats"][0]["version"] == "2"
        assert (await client.get("/v2/models/tiny-en/versions/beta/ready")).status_code == 404
        assert (await client.get("/v2/models/tiny-en/versions/1.5")).status_code == 422
        missing = await client.post("/classify", json={"text": "pizza", "version": "beta"})
        assert missing.status_code == 404
        assert "no alias 'beta'" in missing.json()["error"] and "canary" in missing.json()["error"]
        detail = (await client.get("/models/tiny-en")).json()["rollout"]
        assert detail["aliases"] == {"canary": 2}
        (change,) = detail["history"]
        assert (change["action"], change["alias"], change["from"], change["to"], change["why"]) == (
            "alias", "canary", None, 2, "try 2",
        )  # fmt: skip
        assert change["who"].startswith("admin API")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("PUT", "/admin/models/tiny-en/aliases/9lives", {"version": 2}, 422, "path.alias"),
        ("PUT", "/admin/models/tiny-en/aliases/canary", {"version": 7}, 404, "no version 7"),
        ("PUT", "/admin/models/tiny-en/aliases/canary", {"version": 2, "weight": 101}, 422, "0 to 100"),
        ("PUT", "/admin/models/tiny-en/aliases/canary", {"version": 2, "weight": -1}, 422, "0 to 100"),
        ("PUT", "/admin/models/tiny-en/aliases/blue", {"version": 3, "weight": 60}, 422, "over 100"),
        ("PUT", "/admin/models/tiny-en/aliases/stable", {"version": 2}, 422, "promotion"),
        ("PUT", "/admin/models/tiny-en/aliases/canary", {"version": "2"}, 422, "version"),
        ("PUT", "/admin/models/tiny-en/shadow", {"version": 2, "percent": 150}, 422, "0 to 100"),
        ("PUT", "/admin/models/nope/shadow", {"version": 2}, 404, "nope"),
        ("DELETE", "/admin/models/tiny-en/aliases/gone", None, 404, "no alias 'gone'"),
        ("POST", "/admin/models/tiny-en/promote", {"version": 9}, 404, "no version 9"),
        ("POST", "/admin/models/tiny-en/promote", {"version": "nightly"}, 404, "no alias 'nightly'"),
        ("POST", "/admin/models/tiny-en/rollback", {}, 404, "no change to roll back"),
    ],
)
async def test_bad_changes_are_refused_and_change_nothing(
    two_versions: Path, tmp_path: Path, method: str, path: str, body: object, status: int, words: str
) -> None:
    async with running_app(_settings(two_versions, tmp_path)) as client:
        first = await client.put(
            "/admin/models/tiny-en/aliases/green", json={"version": 2, "weight": 50}, headers=ADMIN
        )
        assert first.status_code == 200, first.text
        before = _file(two_versions)
        answer = await client.request(method, path, json=body, headers=ADMIN)
        assert answer.status_code == status, answer.text
        assert set(answer.json()) >= {"error", "error_type"}
        assert words in answer.json()["error"], answer.json()
        assert _file(two_versions) == before
        unauthorised = await client.request(method, path, json=body)
        assert unauthorised.status_code == 401


async def test_a_request_body_version_must_be_a_number_or_an_alias(
    two_versions: Path, tmp_path: Path
) -> None:
    async with running_app(_settings(two_versions, tmp_path)) as client:
        for version in ("1", "-x", "", True):
            answer = await client.post("/classify", json={"text": "pizza", "version": version})
            assert answer.status_code == 422, (version, answer.text)
            assert answer.json()["error"].startswith("version"), answer.json()


async def test_the_canary_split_follows_the_key_and_the_text(two_versions: Path, tmp_path: Path) -> None:
    async with running_app(_settings(two_versions, tmp_path)) as client:
        answer = await client.put(
            "/admin/models/tiny-en/aliases/canary", json={"version": 2, "weight": 30}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        versions = {}
        for index in range(400):
            reply = await client.post(
                "/classify", json={"text": "pizza pasta"}, headers={"X-Routing-Key": f"user-{index}"}
            )
            versions[index] = (reply.json()["version"], reply.json().get("alias"))
        canary = sum(1 for version, _ in versions.values() if version == 2)
        assert 80 <= canary <= 160, canary  # 30 % of 400 = 120; the exact share is tested on 10,000
        assert {alias for version, alias in versions.values() if version == 2} == {"canary"}
        assert {alias for version, alias in versions.values() if version != 2} == {None}
        for index in range(0, 400, 7):  # the same key, the same version
            reply = await client.post(
                "/classify", json={"text": "other text"}, headers={"X-Routing-Key": f"user-{index}"}
            )
            assert reply.json()["version"] == versions[index][0]
        texts = {}
        for text in ("soup", "goal", "chip", "match", "salad", "laptop"):
            first = (await client.post("/classify", json={"text": text})).json()["version"]
            again = (await client.post("/classify", json={"text": text})).json()["version"]
            assert first == again
            texts[text] = first
        metrics = parse_metrics((await client.get("/metrics")).text)
        assert (
            metrics[series("lstm_service_alias_requests_total", model="tiny-en", alias="canary", version="2")]
            >= canary
        )


async def test_promote_and_rollback_move_the_serving_version_and_are_recorded(
    two_versions: Path, tmp_path: Path
) -> None:
    async with running_app(_settings(two_versions, tmp_path, pinned={"tiny-en": 1})) as client:
        assert (await client.post("/classify", json={"text": "pizza"})).json()["version"] == 1
        promoted = await client.post(
            "/admin/models/tiny-en/promote", json={"version": 2, "why": "better", "by": "ana"}, headers=ADMIN
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["workers"]["applied"] == 1
        after = await client.post("/classify", json={"text": "pizza"})
        assert (after.json()["version"], after.json()["alias"]) == (2, "stable")
        rolled = await client.post("/admin/models/tiny-en/rollback", json={"by": "ana"}, headers=ADMIN)
        assert rolled.status_code == 200, rolled.text
        back = await client.post("/classify", json={"text": "pizza"})
        assert (back.json()["version"], back.json()["alias"]) == (1, "stable")
        history = (await client.get("/models/tiny-en")).json()["rollout"]["history"]
        assert [(c["action"], c["from"], c["to"], c["who"]) for c in history] == [
            ("promote", 1, 2, "ana"),
            ("rollback", 2, 1, "ana"),
        ]
        assert history[0]["why"] == "better"


async def test_shadow_answers_go_to_the_log_and_never_to_the_caller(
    two_versions: Path, tmp_path: Path
) -> None:
    import sqlite3

    settings = _settings(two_versions, tmp_path, pinned={"tiny-en": 1})
    async with running_app(settings) as client:
        answer = await client.put("/admin/models/tiny-en/shadow", json={"version": 3}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        texts = [text for text, _ in tiny_examples("en", per_label=4)]
        for text in texts:
            reply = await client.post("/classify", json={"text": text})
            assert reply.json()["version"] == 1 and "alias" not in reply.json()
        for _ in range(100):
            await asyncio.sleep(0.05)
            metrics = parse_metrics((await client.get("/metrics")).text)
            done = sum(
                metrics.get(
                    series("lstm_service_shadow_requests_total", model="tiny-en", version="3", outcome=o), 0
                )
                for o in ("agreed", "disagreed")
            )
            if done == len(texts):
                break
        assert done == len(texts)
    rows = (
        sqlite3.connect(tmp_path / "log.db")
        .execute("SELECT version, alias, request_id FROM predictions ORDER BY created")
        .fetchall()
    )
    primary = [row for row in rows if row[0] == 1]
    shadow = [row for row in rows if row[0] == 3]
    assert len(primary) == len(shadow) == len(texts)
    assert {row[1] for row in shadow} == {"shadow"}
    assert {row[2] for row in shadow} == {f"{row[2]}/shadow" for row in primary}
    assert json.loads(json.dumps([row[1] for row in primary])) == [None] * len(texts)


async def test_an_unreadable_rollout_file_is_reported_not_a_500(two_versions: Path, tmp_path: Path) -> None:
    async with running_app(_settings(two_versions, tmp_path)) as client:
        (two_versions / "tiny-en" / ROLLOUT_FILE).write_text("{not json")
        for path, headers in (("/admin/models/tiny-en/rollout", ADMIN), ("/models/tiny-en", {})):
            answer = await client.get(path, headers=headers)
            assert answer.status_code == 200, answer.text
            assert "not a valid rollout file" in answer.json()["rollout"]["error"]
            assert str(two_versions) not in answer.text  # the store's path is not shown
