"""Hostile and malformed /explain requests get a 4xx with the standard error body, never a 5xx."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.anyio, pytest.mark.api]

TEXT = "The striker scored twice in the cup final"

HOSTILE_BODIES = [
    {},
    {"text": ""},
    {"text": "   \n\t "},
    {"text": None},
    {"text": ["a", "b"]},
    {"texts": [TEXT]},
    {"text": TEXT, "label": "no-such-label"},
    {"text": TEXT, "label": ""},
    {"text": TEXT, "label": "x" * 10_000},
    {"text": TEXT, "label": 3},
    {"text": TEXT, "method": "gradient"},
    {"text": TEXT, "method": None},
    {"text": TEXT, "trajectory": "yes"},
    {"text": TEXT, "truncate": 1},
    {"text": TEXT, "model": "../../etc/passwd"},
    {"text": TEXT, "model": "no-such-model"},
    {"text": TEXT, "model": "news-topic", "version": 0},
    {"text": TEXT, "model": "news-topic", "version": 99},
    {"text": TEXT, "model": "news-topic", "version": 1e308},
    {"text": TEXT, "unexpected": True},
    {"text": "word " * 5_000, "model": "news-topic"},  # over the token budget, no truncate
    {"text": "字" * 30_000},  # over max_text_chars
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
async def test_hostile_bodies_get_a_4xx_with_the_error_body(
    default_client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await default_client.post("/explain", json=body)

    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) >= {"error", "error_type"}


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'{"text": "\\ud800"}', b'{"text": "a"' + b" " * 10, b"\xff\xfe"],
)
async def test_malformed_bodies_get_a_4xx(default_client: httpx.AsyncClient, raw: bytes) -> None:
    response = await default_client.post(
        "/explain", content=raw, headers={"Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500, response.text
    assert "error_type" in response.json()


async def test_a_lone_surrogate_in_the_label_is_a_4xx(default_client: httpx.AsyncClient) -> None:
    body = b'{"text": "good", "label": "\\udc80"}'
    response = await default_client.post("/explain", content=body)

    assert response.status_code == 422


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(min_size=0, max_size=200),
    label=st.one_of(st.none(), st.text(max_size=20)),
    trajectory=st.booleans(),
)
async def test_arbitrary_texts_and_labels_never_get_a_5xx(
    default_client: httpx.AsyncClient, text: str, label: str | None, trajectory: bool
) -> None:
    body: dict[str, object] = {"text": text, "trajectory": trajectory, "truncate": True}
    if label is not None:
        body["label"] = label
    response = await default_client.post("/explain", json=body)

    assert response.status_code in (200, 404, 422), response.text
