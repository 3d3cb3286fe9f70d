"""The labelling page in a real headless Chromium against a real server with the prediction log on and an
API key: the key flow, one key per label (and skip), feedback stored, a hostile text shown as text.

Needs Debian's ``chromium`` and ``chromium-driver`` (tests/inspector/install-chromium.sh, which .ci/run
calls) and Selenium; skips, saying which is missing, where they are not."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from support.live_server import LiveServer
from support.stores import copy_store

KEY = "label-page-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
XSS = "<img src=x onerror=alert(1)> the match"
TEXTS = [XSS, "stocks and the phone", "a plain text about food"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_labelling_with_keys_in_the_page(browser: Any, tiny_store: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    env = {"LSTM_SERVICE_API_KEY": KEY, "LSTM_SERVICE_PREDICTION_LOG": f"sqlite:///{tmp_path / 'log.db'}"}
    store = copy_store(tiny_store, tmp_path / "store")
    server = LiveServer.start(store, tmp_path / "server.log", ["--workers", "1"], env)
    try:
        reply = server.call("POST", "/classify", {"texts": TEXTS, "model": "tiny-en"}, headers=AUTH)
        assert reply.status == 200
        labels = server.call("GET", "/models/tiny-en", headers=AUTH).body["labels"]
        wait = WebDriverWait(browser, 60)

        browser.get(f"http://127.0.0.1:{server.port}/label?model=tiny-en")
        wait.until(lambda page: "API key" in page.find_element(By.ID, "status").text)  # 401 without the key
        assert browser.find_element(By.ID, "api-key-box").get_attribute("open") is not None
        browser.find_element(By.ID, "api-key").send_keys(KEY, Keys.TAB)
        wait.until(lambda page: page.find_element(By.ID, "text").text)

        body = browser.find_element(By.TAG_NAME, "body")
        chosen: dict[str, str] = {}
        first = browser.find_element(By.ID, "text").text
        body.send_keys("1")  # the first label
        chosen[first] = labels[0]
        wait.until(lambda page: page.find_element(By.TAG_NAME, "body").get_attribute("data-labelled") == "1")
        skipped = browser.find_element(By.ID, "text").text
        body.send_keys("s")
        wait.until(lambda page: page.find_element(By.ID, "text").text != skipped)
        third = browser.find_element(By.ID, "text").text
        body.send_keys("2")
        chosen[third] = labels[1]
        wait.until(lambda page: page.find_element(By.TAG_NAME, "body").get_attribute("data-labelled") == "2")
        wait.until(lambda page: "Nothing left" in page.find_element(By.ID, "status").text)

        assert sorted([first, skipped, third]) == sorted(TEXTS)  # the hostile one shown as its own text
        assert browser.find_elements(By.CSS_SELECTOR, "img, [onerror]") == []
        assert not [
            e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]
        ]

        export = server.call("GET", "/labelling/export?model=tiny-en", headers=AUTH)
        assert export.status == 200
        rows = {row["text"]: row["label"] for row in csv.DictReader(io.StringIO(export.body))}
        assert rows == chosen
        page = server.call("GET", "/label")
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        server.kill()
