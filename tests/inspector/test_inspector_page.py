"""GET /inspect serves the page's three static files from the installed package, with a strict CSP."""

from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.api]

ASSETS = ("index.html", "inspector.css", "inspector.js")


def test_the_page_ships_inside_the_package_and_names_no_other_origin() -> None:
    folder = resources.files("service.api").joinpath("static", "inspector")
    for name in ASSETS:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert not re.search(
            r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://www.w3.org/2000/svg", "")
        )
    html = folder.joinpath("index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/inspect/inspector.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    assert "innerHTML" not in folder.joinpath("inspector.js").read_text(encoding="utf-8")


async def test_inspect_answers_the_page_with_a_content_security_policy(
    default_client: httpx.AsyncClient,
) -> None:
    response = await default_client.get("/inspect")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert "<title>Model inspector" in response.text
    for label_for in ("model", "text", "api-key"):
        assert f'<label for="{label_for}">' in response.text


@pytest.mark.parametrize(
    ("asset", "kind"), [("inspector.css", "text/css"), ("inspector.js", "text/javascript")]
)
async def test_the_assets_are_served_with_their_types(
    default_client: httpx.AsyncClient, asset: str, kind: str
) -> None:
    response = await default_client.get(f"/inspect/{asset}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("asset", ["index.html", "..%2fapp.py", "%2e%2e", "missing.js", "inspector.js%00"])
async def test_other_files_are_not_served(default_client: httpx.AsyncClient, asset: str) -> None:
    response = await default_client.get(f"/inspect/{asset}")

    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"
