"""The inspector in a real headless Chromium against a real server over the default models.

Needs Debian's ``chromium`` and ``chromium-driver`` (``tests/inspector/install-chromium.sh``, which
``.ci/run`` calls) and Selenium (the dev group); skips, saying which is missing, where they are not.
Screenshots land in ``build/test-artifacts/`` (wide and phone width).
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest
from inspector_server import Server

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"
NEWS_TEXT = "The striker scored twice in the cup final"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _browser_paths() -> tuple[str, str]:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "no headless browser here: the inspector's browser test needs chromium and chromedriver "
            "(Debian: apt-get install chromium chromium-driver, or run tests/inspector/install-chromium.sh)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("inspector-server") / "server.log"
    running = Server.start(REPO / "model_store", log, env={"LSTM_SERVICE_DEFAULT_MODEL": "news-topic"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev group)")
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _explain_in_page(browser, server: Server, model: str, text: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{server.url}/inspect")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, f"#model option[value='{model}']"))
    Select(browser.find_element(By.ID, "model")).select_by_value(model)
    wait.until(lambda page: model in page.find_element(By.ID, "card-body").text)
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    before = browser.find_element(By.TAG_NAME, "body").get_attribute("data-explained")
    browser.find_element(By.ID, "explain").click()
    wait.until(lambda page: page.find_element(By.TAG_NAME, "body").get_attribute("data-explained") != before)


def _save_whole_page(browser, path: Path) -> None:  # type: ignore[no-untyped-def]
    """A screenshot of the whole page, not only the window (Chrome's DevTools protocol)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def _severe_console_messages(browser) -> list[str]:  # type: ignore[no-untyped-def]
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_inspector_shows_the_explanation_of_a_typed_text(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    _explain_in_page(browser, server, "news-topic", NEWS_TEXT)
    _, tokenized = server.call("POST", "/tokenize", {"model": "news-topic", "text": NEWS_TEXT})
    _, explained = server.call("POST", "/explain", {"model": "news-topic", "text": NEWS_TEXT})

    spans = browser.find_elements(By.CSS_SELECTOR, "#tokens .token")
    shown = [
        (span.text, int(span.get_attribute("data-start")), int(span.get_attribute("data-stop")))
        for span in spans
    ]
    expected = [(token["text"], token["start"], token["stop"]) for token in tokenized["results"][0]["tokens"]]
    assert shown == expected
    assert browser.find_element(By.ID, "tokens").text == NEWS_TEXT  # the original spacing and characters
    for span, token in zip(spans, explained["tokens"], strict=True):
        sign = "towards" if token["attribution"] > 0 else "away" if token["attribution"] < 0 else "neutral"
        assert sign in span.get_attribute("class").split(), (token["text"], token["attribution"])
    assert "sports" in browser.find_element(By.ID, "prediction").text

    lines = browser.find_elements(By.CSS_SELECTOR, "#trajectory-chart polyline")
    assert sorted(line.get_attribute("data-label") for line in lines) == sorted(explained["scores"])
    assert all(len(line.get_attribute("points").split()) == len(spans) for line in lines)
    cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap-chart rect.heat")
    assert len(cells) == len(spans) * 24
    card = browser.find_element(By.ID, "card-body").text
    assert "Test accuracy" in card and "baseline" in card and "4 × (input + hidden + 1) × hidden" in card
    assert "235520 = LSTM: per direction" in card  # the cell's arithmetic, written as recurrent_formula
    assert "p90 0.045" in card  # the training split's unknown-token ratio, from the manifest

    spans[6].click()  # "cup"
    neighbours = browser.find_elements(By.CSS_SELECTOR, "#neighbor-list li")
    deadline = time.monotonic() + 30
    while not neighbours and time.monotonic() < deadline:
        time.sleep(0.1)
        neighbours = browser.find_elements(By.CSS_SELECTOR, "#neighbor-list li")
    assert len(neighbours) == 8

    _save_whole_page(browser, ARTIFACTS / "inspector.png")
    assert _severe_console_messages(browser) == []


def test_a_hostile_text_stays_text(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    _explain_in_page(browser, server, "review-sentiment-zh", XSS)

    assert browser.find_element(By.ID, "tokens").text == XSS
    assert browser.find_elements(By.CSS_SELECTOR, "#tokens img, #tokens *[onerror]") == []
    _, tokenized = server.call("POST", "/tokenize", {"model": "review-sentiment-zh", "text": XSS})
    shown = [span.text for span in browser.find_elements(By.CSS_SELECTOR, "#tokens .token")]
    assert shown == [token["text"] for token in tokenized["results"][0]["tokens"]]
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert _severe_console_messages(browser) == []


def test_the_page_fits_a_phone(browser, server: Server) -> None:  # type: ignore[no-untyped-def]
    browser.set_window_size(390, 844)
    try:
        _explain_in_page(browser, server, "review-sentiment-zh", "质量很好，物流也快，非常满意")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        _save_whole_page(browser, ARTIFACTS / "inspector-phone.png")
    finally:
        browser.set_window_size(1280, 1800)
    assert overflow <= 0
    assert _severe_console_messages(browser) == []


def test_with_an_api_key_the_page_asks_for_it_and_then_works(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key = "inspector-test-key-0123456789"
    guarded = Server.start(REPO / "model_store", tmp_path / "server.log", env={"LSTM_SERVICE_API_KEY": key})
    try:
        browser.get(f"{guarded.url}/inspect")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda page: "API key" in page.find_element(By.ID, "status").text)
        assert browser.find_element(By.ID, "api-key-box").get_attribute("open") is not None
        assert browser.find_elements(By.CSS_SELECTOR, "#model option") == []

        browser.find_element(By.ID, "api-key").send_keys(key)  # no need to leave the field: typing lists them
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#model option[value='news-topic']"))
        box = browser.find_element(By.ID, "text")
        box.send_keys("The striker scored twice in the cup final")
        browser.find_element(By.ID, "explain").click()
        wait.until(lambda page: page.find_element(By.TAG_NAME, "body").get_attribute("data-explained"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#tokens .token")) > 0
        # the 401s before the key was typed are the only console errors
        assert all("401" in message for message in _severe_console_messages(browser))
    finally:
        guarded.stop()


def test_a_multi_label_explanation_says_which_label_the_colours_are_for(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil as files

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    store = tmp_path / "store"
    files.copytree(REPO / "tests" / "fixtures" / "shapes" / "tiny-tags", store / "tiny-tags")
    tags = Server.start(store, tmp_path / "server.log")
    try:
        _explain_in_page(browser, tags, "tiny-tags", "player team league match election vote")
        choice = Select(browser.find_element(By.ID, "shading-label"))
        labels = [option.get_attribute("value") for option in choice.options]
        assert len(labels) >= 2 and choice.first_selected_option.get_attribute("value") == labels[0]
        tokens = browser.find_element(By.ID, "tokens")
        assert tokens.get_attribute("data-label") == labels[0]

        def described(label: str) -> bool:
            spans = browser.find_elements(By.CSS_SELECTOR, "#tokens .token:not(.neutral)")
            return bool(spans) and all(label in span.get_attribute("aria-label") for span in spans)

        assert described(labels[0])
        before = [
            span.get_attribute("data-attribution")
            for span in browser.find_elements(By.CSS_SELECTOR, "#tokens .token")
        ]
        choice.select_by_value(labels[1])
        WebDriverWait(browser, 10).until(lambda page: tokens.get_attribute("data-label") == labels[1])
        after = [
            span.get_attribute("data-attribution")
            for span in browser.find_elements(By.CSS_SELECTOR, "#tokens .token")
        ]
        assert described(labels[1]) and after != before  # the colours follow the chosen label
        assert _severe_console_messages(browser) == []
    finally:
        tags.stop()


def _tiny_en_card(browser, store: Path, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """The inspector's model card for tiny-en, served from ``store`` by a server of its own."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    running = Server.start(store, tmp_path / "server.log", env={"LSTM_SERVICE_DEFAULT_MODEL": "tiny-en"})
    try:
        browser.get(f"{running.url}/inspect")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda page: "tiny-en" in page.find_element(By.ID, "card-body").text)
        return str(browser.find_element(By.ID, "card-body").text)
    finally:
        running.stop()


def test_the_model_card_shows_the_aliases_the_weights_and_the_last_change(  # type: ignore[no-untyped-def]
    browser, store_copy: Path, tmp_path: Path
) -> None:
    from support.stores import add_version

    from service.rollout import changes

    add_version(store_copy, "tiny-en", 2)
    add_version(store_copy, "tiny-en", 3)
    changes.promote(store_copy, "tiny-en", 2, changes.Actor("ana", "steady"))
    changes.set_alias(store_copy, "tiny-en", "canary", 3, changes.Actor("ana", XSS), weight=15)
    changes.set_shadow(store_copy, "tiny-en", 3, 50, changes.Actor("ana"))
    card = _tiny_en_card(browser, store_copy, tmp_path)
    assert "canary → 3 (15 %) · stable → 2" in card
    assert "last change: shadow" in card and "by ana" in card
    assert "version 3 on 50 % of requests" in card


def test_the_card_shows_the_recurrent_formula_of_a_bundle_written_before_other_cells(  # type: ignore[no-untyped-def]
    browser, store_copy: Path, tmp_path: Path
) -> None:
    from support.stores import rewrite_manifest

    def as_written_before(manifest: dict) -> None:  # no "cell"; the arithmetic under lstm_formula
        parameters = manifest["parameters"]
        del parameters["cell"]
        parameters["lstm_formula"] = parameters.pop("recurrent_formula")

    rewrite_manifest(store_copy / "tiny-en" / "1", as_written_before)
    card = _tiny_en_card(browser, store_copy, tmp_path)
    assert "1152 = LSTM: per direction and layer 4 × (input + hidden + 1) × hidden" in card
