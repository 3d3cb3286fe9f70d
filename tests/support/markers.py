"""Each test's one kind marker (unit, api, e2e, train, container), from what the test really does.

A test marked by hand keeps its marker; the rest get one here, first match wins:

- ``container``  tests/container: builds and runs the image
- ``train``      tests/training, and any test that trains a bundle (``tiny_bundle``): needs torch
- ``e2e``        the test, or a fixture it uses, reaches :func:`support.live_server.launch` (the one door
                 through which the helpers start a real server process), found by following the names its
                 code uses through the functions and classes of tests/
- ``api``        the app in process over HTTP (the ``client`` or ``start_app`` fixture)
- ``unit``       everything else: functions and classes called directly

What the names cannot show (a launcher reached through ``getattr``) is caught when it happens: a test
marked ``unit`` or ``api`` that starts a server process fails, and so does one marked so by hand whose
code reaches :func:`launch`. tests/conftest.py installs the hooks below.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import live_server

KINDS = ("unit", "api", "e2e", "train", "container")
FOLDER_KINDS = {"container": "container", "training": "train"}
APP_FIXTURES = frozenset({"client", "start_app"})
SERVERLESS_KINDS = frozenset({"unit", "api"})
TESTS = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
NO_TORCH = "needs torch (the train extra: pip install -e '.[train]'); the serving extra alone has none"
MISMARKED = pytest.StashKey[str]()


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """A function's code and the code of the functions, lambdas and comprehensions written inside it."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _codes(constant)


def _written_in(value: object, folders: tuple[Path, ...]) -> bool:
    name = getattr(value, "__module__", None)
    module = value if isinstance(value, types.ModuleType) else sys.modules.get(name or "")
    source = getattr(module, "__file__", None)
    return source is not None and any(_resolved(source).is_relative_to(folder) for folder in folders)


@functools.cache
def _resolved(source: str) -> Path:
    return Path(source).resolve()


def _members(value: object) -> list[object]:
    """What a class, fixture or method wraps: the functions to follow into."""
    if isinstance(value, type):
        return [member for name, member in vars(value).items() if not name.startswith("__")]
    if isinstance(value, classmethod | staticmethod):
        return [value.__func__]
    if isinstance(value, property):
        return [value.fget]
    wrapped = getattr(value, "__wrapped__", None)  # functools.wraps, contextmanager
    return [wrapped] if wrapped is not None else []


def reaches_launch(value: object, folders: tuple[Path, ...] = (TESTS,), seen: set[int] | None = None) -> bool:
    """Whether ``value`` can call :func:`live_server.launch`, following the names its code uses into the
    functions and classes written under ``folders`` (tests/ and the test's own folder)."""
    seen = set() if seen is None else seen
    if value is live_server.launch:
        return True
    if id(value) in seen or not _written_in(value, folders):
        return False
    seen.add(id(value))
    if not isinstance(value, types.FunctionType):
        return any(reaches_launch(member, folders, seen) for member in _members(value))
    for code in _codes(value.__code__):
        for name in code.co_names:
            named = value.__globals__.get(name)
            modules = [named] if isinstance(named, types.ModuleType) else []
            with warnings.catch_warnings():  # a module's deprecated attributes warn when looked up
                warnings.simplefilter("ignore")
                found = [
                    getattr(module, attribute, None) for module in modules for attribute in code.co_names
                ]
            if any(reaches_launch(target, folders, seen) for target in (named, *found) if target is not None):
                return True
    enclosed = [_contents(cell) for cell in value.__closure__ or ()]
    return any(reaches_launch(target, folders, seen) for target in enclosed if target is not None)


def _contents(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # a variable of the enclosing function not assigned yet
        return None


def starts_a_server(item: pytest.Item) -> bool:
    """The test function, or a fixture it uses (directly or through other fixtures), reaches launch."""
    function = getattr(item, "function", None)
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    fixtures = [definition.func for chain in definitions.values() for definition in chain]
    folders = (TESTS, Path(str(item.path)).resolve().parent)
    return any(_reaches_cached(target, folders) for target in (function, *fixtures) if target is not None)


@functools.cache
def _reaches_cached(value: object, folders: tuple[Path, ...]) -> bool:
    return reaches_launch(value, folders)  # a fixture is asked about once, not once per test using it


def inferred_kind(item: pytest.Item) -> str:
    folder = Path(str(item.path)).parent.name
    fixtures = set(getattr(item, "fixturenames", ()))
    if folder in FOLDER_KINDS:
        return FOLDER_KINDS[folder]
    if "tiny_bundle" in fixtures:
        return "train"
    if starts_a_server(item):
        return "e2e"
    if fixtures & APP_FIXTURES:
        return "api"
    return "unit"


def _told(kind: str) -> str:
    return (
        f"this test starts a real server process (support.live_server.launch) but is marked {kind!r}; "
        "mark it e2e (pytestmark = pytest.mark.e2e), or use the in-process app (start_app) instead"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
        if not kinds:
            kinds = [inferred_kind(item)]
            item.add_marker(kinds[0])
        elif set(kinds) <= SERVERLESS_KINDS and starts_a_server(item):
            item.stash[MISMARKED] = _told(kinds[0])
        if "train" in kinds and not HAS_TORCH:
            item.add_marker(pytest.mark.skip(reason=NO_TORCH))


def _check_no_new_server(item: pytest.Item, launched_before: int) -> None:
    kinds = {kind for kind in KINDS if item.get_closest_marker(kind)}
    if len(live_server.LAUNCHED) > launched_before and kinds <= SERVERLESS_KINDS:
        pytest.fail(_told(", ".join(sorted(kinds)) or "unit"), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if MISMARKED in item.stash:
        pytest.fail(item.stash[MISMARKED], pytrace=False)
    launched_before = len(live_server.LAUNCHED)
    result = yield
    _check_no_new_server(item, launched_before)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    launched_before = len(live_server.LAUNCHED)
    result = yield
    _check_no_new_server(item, launched_before)
    return result
