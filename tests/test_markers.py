"""A test that starts a real server process cannot end up ``unit`` (or ``api``): support.markers finds it
from its code, and a test that slips past (or is marked so by hand) fails instead of running unnoticed."""

from __future__ import annotations

import textwrap

import pytest
from support import markers
from support.live_server import LAUNCHED, LiveServer, launch
from support.stores import copy_store

pytest_plugins = ("pytester",)

# The whole module is e2e: the last test really starts a server, inside a pytest run of its own.
pytestmark = pytest.mark.e2e

CONFTEST = (
    "from support.markers import pytest_collection_modifyitems, pytest_runtest_call, pytest_runtest_setup\n"
)
FOUND_FROM_THE_CODE = """
import pytest
from support.live_server import LiveServer
from support.stores import STORE, copy_store


def start(folder):  # a helper of the module: the tests below never name LiveServer
    return LiveServer.start(copy_store(STORE, folder / "store"), folder / "server.log")


@pytest.fixture
def server(tmp_path):
    live = start(tmp_path)
    yield live
    live.kill()


@pytest.fixture
def served_url(server):
    return f"http://127.0.0.1:{server.port}"


def test_through_a_helper(tmp_path):
    start(tmp_path).kill()


def test_through_a_fixture_of_a_fixture(served_url):
    assert served_url


def test_through_a_function_written_inside(tmp_path):
    later = lambda: start(tmp_path)
    assert later


def test_through_the_class_method_directly(tmp_path):
    LiveServer.start(tmp_path, tmp_path / "log").kill()


def test_nothing_of_the_kind(tmp_path):
    assert copy_store


def test_the_app_in_process(client):
    assert client
"""


def test_helpers_that_start_a_server_are_found_and_the_others_are_not() -> None:
    assert markers.reaches_launch(launch) and markers.reaches_launch(LiveServer)
    assert markers.reaches_launch(LiveServer.start.__func__)  # type: ignore[attr-defined]
    assert not markers.reaches_launch(copy_store)
    assert not markers.reaches_launch(LiveServer.call)


def test_tests_that_reach_the_launcher_are_e2e_however_indirectly(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST + "import pytest\n\n@pytest.fixture\ndef client():\n    return object()\n")
    pytester.makepyfile(test_found=FOUND_FROM_THE_CODE)

    items, _ = pytester.inline_genitems()

    kinds = {item.name: [m.name for m in item.iter_markers() if m.name in markers.KINDS] for item in items}
    assert kinds == {
        "test_through_a_helper": ["e2e"],
        "test_through_a_fixture_of_a_fixture": ["e2e"],
        "test_through_a_function_written_inside": ["e2e"],
        "test_through_the_class_method_directly": ["e2e"],
        "test_nothing_of_the_kind": ["unit"],
        "test_the_app_in_process": ["api"],
    }


def test_a_test_marked_unit_by_hand_that_reaches_the_launcher_fails_before_it_starts_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_by_hand=textwrap.dedent(
            """
            import pytest
            from support.live_server import LiveServer

            pytestmark = pytest.mark.unit


            def test_marked_unit(tmp_path):
                LiveServer.start(tmp_path, tmp_path / "server.log").kill()
            """
        )
    )

    launched = len(LAUNCHED)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    assert len(LAUNCHED) == launched  # refused at set-up: no server was started
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*starts a real server process*marked 'unit'*mark it e2e*"])


def test_a_server_started_where_the_names_cannot_show_it_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_hidden=textwrap.dedent(
            """
            import importlib

            from support.stores import STORE, copy_store


            def test_a_launcher_reached_through_getattr(tmp_path):
                module = importlib.import_module("support." + "live_server")
                starter = getattr(module, "Live" + "Server")
                starter.start(copy_store(STORE, tmp_path / "store"), tmp_path / "server.log").kill()
            """
        )
    )

    launched = len(LAUNCHED)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")

    assert len(LAUNCHED) == launched + 1  # the server really started (and was stopped) ...
    result.assert_outcomes(failed=1)  # ... and the test that started it unmarked failed for it
    result.stdout.fnmatch_lines(["*starts a real server process*marked 'unit'*"])
