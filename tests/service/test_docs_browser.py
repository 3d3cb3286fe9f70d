"""/docs renders in a real headless Chromium that can reach no host but the service: Swagger UI's script,
stylesheet and icon come from the service itself, not from a CDN.

Needs ``chromium`` and ``chromedriver`` (``tests/inspector/install-chromium.sh``) and Selenium (the dev
group); skips, saying which is missing, where they are not."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.live_server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tiny_store: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer.start(tiny_store, tmp_path / "server.log", flags=["--workers", "1"])
    try:
        yield live
    finally:
        live.kill()


@pytest.fixture
def offline_browser():  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev group)")
    from selenium.webdriver.chrome.service import Service

    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(
            "no headless browser here: needs chromium and chromedriver (tests/inspector/install-chromium.sh)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800"):
        options.add_argument(argument)
    # No name resolves but the loopback address: a page that needs a CDN stays blank.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_docs_render_with_no_network_but_the_service(server: LiveServer, offline_browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    offline_browser.get(f"http://127.0.0.1:{server.port}/docs")
    deadline = time.monotonic() + 30
    operations: list = []
    while time.monotonic() < deadline and not operations:
        operations = offline_browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")
        time.sleep(0.2)
    title = offline_browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    paths = {
        element.text for element in offline_browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert title.startswith("lstm-service") and len(operations) > 5
    assert "/classify" in paths and not [path for path in paths if path.startswith("/admin")]
    errors = [entry for entry in offline_browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
