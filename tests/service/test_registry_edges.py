"""What the registry tells an operator, compared whole: each status, each refusal, each log line and the
metrics of loads, reloads, failures, evictions, unloads and the versions a rollout holds (real bundles)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from support.stores import add_version, copy_store, rewrite_manifest

from service.bundle import load_private_key, load_public_key, sign_bundle, write_key_pair
from service.engine.registry import LoadOutcome, ModelState, ModelStatus, NotLoaded, Registry
from service.errors import InvalidRequest, NotFound, Unavailable

LOGGER = "service.engine.registry"
RECOVER = (
    "To recover: fix or replace <model_store>/{name}/{failed}, remove it, or pin the version that works "
    '(LSTM_SERVICE_PINNED={name}={serving}, or POST /admin/models/{name}/load {{"version": {serving}}})'
)
EVICTED = (
    "evicted, the least recently used of {} loaded models (LSTM_SERVICE_MAX_LOADED_MODELS); loaded again on "
    "its next request"
)
CHECKSUM = "checksum mismatch for model.onnx: the file was changed after the bundle was written"
NOT_YET = "not loaded yet: loaded on its first request (LSTM_SERVICE_MAX_LOADED_MODELS)"


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(record.levelname, record.getMessage()) for record in caplog.records if record.name == LOGGER]


def _ready_line(registry: Registry, name: str, labels: int, vocabulary: int, was: int | None = None) -> str:
    status = registry.status(name)
    how = "ready" if was is None else f"now serving (was version {was})"
    return (
        f"model {name} version {status.version} {how}: {labels} labels, vocabulary {vocabulary}, "
        f"verified in {status.load_seconds:.3f} s"
    )


def _loads(name: str, version: str, kind: str, outcome: str) -> float:
    labels = {"model": name, "version": version, "kind": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("lstm_service_model_loads_total", labels) or 0.0


def _serving(name: str, version: int) -> float | None:
    return REGISTRY.get_sample_value("lstm_service_model_serving", {"model": name, "version": str(version)})


def _evictions(name: str) -> float:
    return REGISTRY.get_sample_value("lstm_service_model_evictions_total", {"model": name}) or 0.0


def _load_time_count(name: str) -> float:
    return REGISTRY.get_sample_value("lstm_service_model_load_seconds_count", {"model": name}) or 0.0


def _copy_model(store: Path, source: str, name: str) -> None:
    """Every version of ``source`` again as the model ``name`` (its manifests say so)."""
    shutil.copytree(store / source, store / name)
    for bundle in (store / name).iterdir():
        rewrite_manifest(bundle, lambda manifest: manifest.update(name=name))


def _break(bundle: Path) -> None:
    onnx_file = bundle / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")


# -- loading at start ---------------------------------------------------------------------------------


def test_the_first_load_logs_each_model_and_the_default_it_chose(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = _loads("tiny-en", "1", "initial", "loaded"), _load_time_count("tiny-en")
    registry = Registry(store_copy)

    registry.load_all()

    assert _logged(caplog) == [
        ("INFO", _ready_line(registry, "tiny-en", 3, 55)),
        ("INFO", _ready_line(registry, "tiny-zh", 2, 56)),
        (
            "WARNING",
            "default model: tiny-en, the first of the store's models alphabetically (no "
            "LSTM_SERVICE_DEFAULT_MODEL); it stays so until a restart, which may pick another if models are "
            "added: set LSTM_SERVICE_DEFAULT_MODEL to choose it",
        ),
    ]
    seconds = {name: status.load_seconds for name, status in registry.statuses().items()}
    assert all(value is not None and value == round(value, 3) for value in seconds.values())  # ms
    assert registry.statuses() == {
        "tiny-en": ModelStatus("tiny-en", ModelState.ready, 1, None, False, seconds["tiny-en"], None),
        "tiny-zh": ModelStatus("tiny-zh", ModelState.ready, 1, None, False, seconds["tiny-zh"], None),
    }
    assert (_loads("tiny-en", "1", "initial", "loaded"), _load_time_count("tiny-en")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert _serving("tiny-en", 1) == 1.0
    assert registry.serving_versions == {"tiny-en": 1, "tiny-zh": 1}
    assert registry.ready and registry.is_ready("all") and registry.is_ready("any")
    assert registry.is_ready("default")
    # A model added to the store later does not take the default's place, even if it sorts first.
    _copy_model(store_copy, "tiny-en", "a-first")
    assert registry.reload_if_newer("a-first", 1) is not None
    assert registry.names == ["a-first", "tiny-en", "tiny-zh"]
    assert registry.default_model == "tiny-en"
    assert registry.get().name == "tiny-en"


def test_a_configured_default_is_logged_as_set_by_the_operator(
    tiny_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    registry = Registry(tiny_store, default_model="tiny-zh", pinned={"tiny-zh": 1})

    registry.load_all()

    assert _logged(caplog)[-1] == (
        "INFO",
        "default model: tiny-zh (set by --default-model or LSTM_SERVICE_DEFAULT_MODEL)",
    )
    assert registry.default_model == "tiny-zh"
    assert registry.status("tiny-zh").pinned and not registry.status("tiny-en").pinned
    assert registry.reload_if_newer("tiny-zh", 2) is None  # pinned: the poller leaves it be


def test_an_empty_store_is_logged_and_serves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    registry = Registry(tmp_path)

    registry.load_all()

    assert _logged(caplog) == [("ERROR", f"model store {tmp_path} holds no model bundle")]
    assert registry.names == [] and registry.default_model is None
    assert not registry.ready and not registry.is_ready("any") and not registry.is_ready("default")
    with pytest.raises(Unavailable) as caught:
        registry.get()
    assert caught.value.message == "no model is configured"
    with pytest.raises(NotFound) as caught:
        registry.get("ghost")
    assert caught.value.message == "unknown model 'ghost' (models: none)"


# -- reloads and failures ----------------------------------------------------------------------------


def test_a_newer_version_replaces_the_serving_one_in_logs_status_and_metrics(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    add_version(store_copy, "tiny-en", 2)
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = _loads("tiny-en", "2", "reload", "loaded")

    outcome = registry.reload_if_newer("tiny-en", 2)

    status = registry.status("tiny-en")
    assert outcome == LoadOutcome(status, 2)
    assert status == ModelStatus("tiny-en", ModelState.ready, 2, None, False, status.load_seconds, None)
    assert _logged(caplog) == [("INFO", _ready_line(registry, "tiny-en", 3, 55, was=1))]
    assert _loads("tiny-en", "2", "reload", "loaded") == before + 1
    assert (_serving("tiny-en", 2), _serving("tiny-en", 1)) == (1.0, None)
    assert registry.loaded_versions("tiny-en") == {2}  # nothing holds version 1: it is let go
    assert registry.reload_if_newer("tiny-en", 2) is None  # not newer than what serves
    assert registry.reload_if_newer("tiny-en", 1) is None


def test_a_refused_version_beside_a_serving_one_is_reported_whole(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    _break(add_version(store_copy, "tiny-en", 2))
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = _loads("tiny-en", "2", "reload", "failed"), _load_time_count("tiny-en")

    outcome = registry.reload("tiny-en", 2)

    status = registry.status("tiny-en")
    text = f"version 2 was not loaded: {CHECKSUM}; version 1 keeps serving. " + RECOVER.format(
        name="tiny-en", failed=2, serving=1
    )
    assert status == ModelStatus("tiny-en", ModelState.ready, 1, text, False, status.load_seconds, 2)
    assert outcome == LoadOutcome(status, 2, CHECKSUM, False)
    assert _logged(caplog) == [("ERROR", f"model tiny-en version 2 is not served: {CHECKSUM}")]
    assert (_loads("tiny-en", "2", "reload", "failed"), _load_time_count("tiny-en")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert registry.get("tiny-en").version == 1


def test_a_version_whose_path_is_too_long_for_the_file_system_is_not_in_the_store(
    tiny_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep = tmp_path
    while len(str(deep)) < 3800:
        deep = deep / ("d" * 200)
    # a store path of 4050 characters: its bundles' files fit PATH_MAX (4096), a 64-character name's do not
    store = copy_store(tiny_store, deep / ("s" * (4050 - len(str(deep)) - 1)))
    registry = Registry(store)
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    name = "m" * 64

    outcome = registry.reload(name, 1)

    why = "no such version in the store"
    assert outcome == LoadOutcome(ModelStatus(name, ModelState.failed, 1, why), 1, why, True)
    assert _logged(caplog) == [("ERROR", f"model {name} version 1 is not served: {why}")]
    assert registry.get("tiny-en").version == 1


def test_a_version_that_is_not_in_the_store_names_no_recovery(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = _loads("tiny-en", "9", "reload", "failed"), _load_time_count("tiny-en")

    outcome = registry.reload("tiny-en", 9)

    status = registry.status("tiny-en")
    text = "version 9 was not loaded: no such version in the store"
    assert status == ModelStatus("tiny-en", ModelState.ready, 1, text, False, status.load_seconds, None)
    assert outcome == LoadOutcome(status, 9, "no such version in the store", True)
    assert _logged(caplog) == [
        ("ERROR", "model tiny-en version 9 is not served: no such version in the store")
    ]
    assert (_loads("tiny-en", "9", "reload", "failed"), _load_time_count("tiny-en")) == (
        before[0] + 1,
        before[1],
    )


def test_a_model_without_any_version_is_not_added_and_is_logged_without_a_version(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    (store_copy / "empty").mkdir()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = _loads("empty", "none", "reload", "failed")

    outcome = registry.reload("empty")

    reason = "no version of this model in the store"
    assert outcome == LoadOutcome(ModelStatus("empty", ModelState.failed, None, reason), None, reason, True)
    assert _logged(caplog) == [("ERROR", f"model empty is not served: {reason}")]
    assert registry.names == ["tiny-en", "tiny-zh"]  # a model nobody served is not added by a failed load
    assert _loads("empty", "none", "reload", "failed") == before + 1


def test_a_reload_of_a_served_model_that_lost_every_version_keeps_it_serving(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    registry.get("tiny-zh")  # opened before its folder goes
    shutil.rmtree(store_copy / "tiny-zh" / "1")

    outcome = registry.reload("tiny-zh")

    status = registry.status("tiny-zh")
    text = "the model was not loaded: no version of this model in the store"
    assert status == ModelStatus("tiny-zh", ModelState.ready, 1, text, False, status.load_seconds, None)
    assert outcome.missing and outcome.reason == "no version of this model in the store"


def test_an_invalid_name_or_version_is_refused_before_the_store_is_read(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    outcome = registry.reload("tiny-en", 0)

    invalid = "invalid model name or version"
    assert outcome == LoadOutcome(
        ModelStatus("tiny-en", ModelState.failed, None, invalid), None, invalid, True
    )
    assert _logged(caplog) == [("ERROR", f"refused to load model 'tiny-en' version 0: {invalid}")]
    assert registry.status("tiny-en").reason is None  # the serving version's status is untouched

    # without a version: the store's listing refuses the name, logged and counted with its kind
    caplog.clear()
    name = "../tiny-en"
    before = _loads(name, "none", "reload", "failed")
    outcome = registry.reload(name)
    why = "invalid model name '../tiny-en': use letters, digits, '.', '_' or '-' (at most 64)"
    assert outcome == LoadOutcome(ModelStatus(name, ModelState.failed, None, why), None, why, True)
    assert _logged(caplog) == [("ERROR", f"model {name} is not served: {why}")]
    assert _loads(name, "none", "reload", "failed") == before + 1
    assert registry.names == ["tiny-en", "tiny-zh"]


def test_a_model_that_fails_without_fallback_names_its_newest_version(store_copy: Path) -> None:
    _break(add_version(store_copy, "tiny-en", 2))
    registry = Registry(store_copy, fallback=False)

    registry.load_all()

    assert registry.status("tiny-en") == ModelStatus("tiny-en", ModelState.failed, 2, CHECKSUM)
    with pytest.raises(Unavailable) as caught:
        registry.get("tiny-en")
    assert caught.value.message == f"model tiny-en is not available: {CHECKSUM}"
    assert not registry.ready and registry.is_ready("any") and not registry.is_ready("default")


def test_the_fallback_serves_the_older_version_and_says_how_to_recover(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _break(add_version(store_copy, "tiny-en", 2))
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    registry = Registry(store_copy, pinned={"tiny-zh": 1})

    registry.load_all()

    reason = f"version 2 failed verification: {CHECKSUM}; serving version 1 instead. " + RECOVER.format(
        name="tiny-en", failed=2, serving=1
    )
    status = registry.status("tiny-en")
    assert status == ModelStatus("tiny-en", ModelState.ready, 1, reason, False, status.load_seconds, 2)
    assert ("ERROR", f"model tiny-en: {reason}") in _logged(caplog)
    assert registry.ready


# -- pins --------------------------------------------------------------------------------------------


def test_a_pin_set_by_a_load_and_cleared_by_the_next(store_copy: Path) -> None:
    add_version(store_copy, "tiny-en", 2)
    registry = Registry(store_copy)
    registry.load_all()
    assert registry.status("tiny-en").version == 2

    assert registry.reload("tiny-en", 1, pin=True).status.pinned
    assert registry.pinned == {"tiny-en": 1}
    assert registry.reload_if_newer("tiny-en", 2) is None  # pinned: the poller leaves it be
    assert registry.reload("tiny-en", 1).status.pinned  # None leaves the pin as it is

    outcome = registry.reload("tiny-en", pin=False)
    assert (outcome.status.version, outcome.status.pinned, registry.pinned) == (2, False, {})


# -- unloading ---------------------------------------------------------------------------------------


def test_unloading_is_logged_and_refused_for_the_default_and_unknown_models(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _break(store_copy / "tiny-zh" / "1")
    registry = Registry(store_copy, default_model="tiny-en", pinned={"tiny-en": 1})
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    assert registry.unload("tiny-zh").state is ModelState.failed
    assert _logged(caplog) == [("INFO", "model tiny-zh unloaded (was not serving)")]
    with pytest.raises(InvalidRequest) as refused:
        registry.unload("tiny-en")
    assert refused.value.message == (
        "model tiny-en is the default model (LSTM_SERVICE_DEFAULT_MODEL); it cannot be unloaded"
    )
    with pytest.raises(NotFound) as unknown:
        registry.unload("tiny-zh")
    assert unknown.value.message == "unknown model 'tiny-zh' (models: tiny-en)"
    assert registry.reload_if_newer("tiny-zh", 1) is None  # unloaded by an admin: the poller leaves it be
    assert registry.names == ["tiny-en"]


def test_an_unloaded_model_leaves_lookups_metrics_and_pins(
    tiny_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(tiny_store, pinned={"tiny-zh": 1})
    registry.load_all()
    runtime = registry.get("tiny-zh")
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    status = registry.unload("tiny-zh")

    assert status == ModelStatus("tiny-zh", ModelState.ready, 1, None, True, status.load_seconds, None)
    assert _logged(caplog) == [("INFO", "model tiny-zh unloaded (was version 1)")]
    assert _serving("tiny-zh", 1) is None
    assert registry.pinned == {} and not registry.serves(runtime)
    assert registry.get("tiny-en").name == "tiny-en" and registry.serving_versions == {"tiny-en": 1}
    with pytest.raises(NotFound) as caught:
        registry.status("tiny-zh")
    assert caught.value.message == "unknown model 'tiny-zh' (models: tiny-en)"
    outcome = registry.reload("tiny-zh")  # loaded again by an admin: back, unpinned
    assert outcome.loaded and registry.names == ["tiny-en", "tiny-zh"] and not outcome.status.pinned


# -- lookups -----------------------------------------------------------------------------------------


def test_lookups_that_cannot_be_answered_say_why_whole(tiny_store: Path) -> None:
    registry = Registry(tiny_store)
    registry.load_all()

    with pytest.raises(NotFound) as unknown:
        registry.get("g" * 100)
    assert unknown.value.message == f"unknown model {'g' * 80!r} (models: tiny-en, tiny-zh)"
    with pytest.raises(NotFound) as version:
        registry.get("tiny-en", 2)
    assert version.value.message == "model tiny-en has no loaded version 2 (loaded: 1)"
    with pytest.raises(NotFound) as status:
        registry.status("ghost")
    assert status.value.message == "unknown model 'ghost' (models: tiny-en, tiny-zh)"
    with pytest.raises(NotFound) as lazy:
        registry.ensure_loaded("ghost")
    assert lazy.value.message == "unknown model 'ghost' (models: tiny-en, tiny-zh)"
    assert registry.serves(registry.get("tiny-zh", 1))


# -- the model budget --------------------------------------------------------------------------------


@pytest.fixture
def four_models(store_copy: Path) -> Path:
    """tiny-en, tiny-zh and two copies of tiny-en, ``a-copy`` and ``b-copy`` (sorted first)."""
    for name in ("a-copy", "b-copy"):
        _copy_model(store_copy, "tiny-en", name)
    return store_copy


def test_under_a_budget_the_default_loads_then_the_others_by_name(four_models: Path) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=2)

    registry.load_all()

    statuses = registry.statuses()
    assert {name: status.state for name, status in statuses.items()} == {
        "a-copy": ModelState.ready,
        "b-copy": ModelState.evicted,
        "tiny-en": ModelState.evicted,
        "tiny-zh": ModelState.ready,
    }
    assert statuses["b-copy"] == ModelStatus("b-copy", ModelState.evicted, None, NOT_YET)
    assert registry.ready and registry.is_ready("default") and registry.is_ready("any")
    with pytest.raises(NotLoaded) as caught:
        registry.get("b-copy")
    assert caught.value.message == f"model b-copy is not loaded: {NOT_YET}"


def test_without_a_configured_default_the_first_model_is_kept_under_a_budget(four_models: Path) -> None:
    registry = Registry(four_models, max_loaded=1, pinned={"tiny-zh": 1})

    registry.load_all()

    loaded = {name for name, status in registry.statuses().items() if status.state is ModelState.ready}
    assert loaded == {"a-copy", "tiny-zh"}  # the pinned model and the default: the budget gives way
    assert registry.ensure_loaded("b-copy") is not None
    assert registry.loaded_versions("a-copy") == {1} and registry.loaded_versions("tiny-zh") == {1}
    assert registry.status("tiny-en").state is ModelState.evicted


def test_an_eviction_is_logged_counted_and_explained(
    four_models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=2)
    registry.load_all()
    before = _evictions("a-copy"), _loads("b-copy", "1", "lazy", "loaded")
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    runtime = registry.ensure_loaded("b-copy")

    assert runtime is not None and runtime.name == "b-copy" and registry.get("b-copy") is runtime
    assert registry.status("a-copy") == ModelStatus("a-copy", ModelState.evicted, None, EVICTED.format(2))
    assert _logged(caplog) == [
        ("INFO", "model a-copy evicted: the least recently used of 3 loaded"),
        ("INFO", _ready_line(registry, "b-copy", 3, 55)),
    ]
    assert (_evictions("a-copy"), _loads("b-copy", "1", "lazy", "loaded")) == (before[0] + 1, before[1] + 1)
    assert _serving("a-copy", 1) is None and _serving("b-copy", 1) == 1.0
    assert registry.loaded_versions("a-copy") == set()
    assert registry.serving_versions == {"b-copy": 1, "tiny-zh": 1}
    with pytest.raises(NotLoaded) as caught:
        registry.get("a-copy")
    assert caught.value.message == f"model a-copy is not loaded: {EVICTED.format(2)}"
    assert registry.ensure_loaded("b-copy") is runtime  # already loaded: nothing changes
    assert registry.reload_if_newer("a-copy", 2) is None  # evicted: its next load takes the newest


def test_the_least_recently_used_goes_first_and_a_model_never_used_before_the_others(
    four_models: Path,
) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=3)
    registry.load_all()  # tiny-zh, a-copy, b-copy
    registry.get("a-copy")
    registry.get("b-copy")
    registry.get("a-copy")

    registry.ensure_loaded("tiny-en")

    assert registry.status("b-copy").state is ModelState.evicted
    assert registry.status("a-copy").state is ModelState.ready


def test_a_new_model_under_a_budget_waits_for_its_first_request(four_models: Path) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=1)
    registry.load_all()
    _copy_model(four_models, "tiny-zh", "c-new")

    assert registry.reload_if_newer("c-new", 1) is None

    assert registry.status("c-new") == ModelStatus("c-new", ModelState.evicted, None, NOT_YET)
    assert registry.ensure_loaded("c-new") is not None
    assert registry.status("c-new").state is ModelState.ready


def test_a_failed_lazy_load_answers_none_and_reports_the_fault(four_models: Path) -> None:
    _break(four_models / "b-copy" / "1")
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=2)
    registry.load_all()

    assert registry.ensure_loaded("b-copy") is None

    assert registry.status("b-copy") == ModelStatus("b-copy", ModelState.failed, 1, CHECKSUM)
    assert registry.status("a-copy").state is ModelState.ready  # a failed load evicts nothing


# -- versions held for a rollout ---------------------------------------------------------------------


def test_held_versions_stay_beside_the_serving_one_across_reloads(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_version(store_copy, "tiny-en", 2)
    registry = Registry(store_copy)
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    refused = registry.hold("tiny-en", {1, 7, 0})

    assert refused == {0: "no such version in the store", 7: "no such version in the store"}
    assert _logged(caplog) == [("INFO", "model tiny-en version 1 loaded beside version 2 for its rollout")]
    assert registry.loaded_versions("tiny-en") == {1, 2}
    held = registry.get("tiny-en", 1)
    assert registry.get("tiny-en").version == 2 and held.version == 1
    with pytest.raises(NotFound) as caught:
        registry.get("tiny-en", 7)
    assert caught.value.message == "model tiny-en has no loaded version 7 (loaded: 1, 2)"
    add_version(store_copy, "tiny-en", 3)
    assert registry.reload("tiny-en", 3).loaded
    assert registry.loaded_versions("tiny-en") == {1, 3}  # 2 was not held: let go; 1 still held
    assert registry.get("tiny-en", 1) is held
    assert registry.reload("tiny-en", 1).loaded  # the held version serves now
    assert registry.loaded_versions("tiny-en") == {1}

    assert registry.hold("tiny-en", set()) == {}
    assert registry.loaded_versions("tiny-en") == {1}  # the serving version is never dropped


def test_holding_nothing_more_drops_the_held_versions(store_copy: Path) -> None:
    add_version(store_copy, "tiny-en", 2)
    registry = Registry(store_copy)
    registry.load_all()
    registry.hold("tiny-en", {1})

    assert registry.hold("tiny-en", {2}) == {}

    assert registry.loaded_versions("tiny-en") == {2}


def test_a_held_version_that_fails_is_refused_with_its_reason(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_version(store_copy, "tiny-en", 2)
    _break(store_copy / "tiny-en" / "1")
    registry = Registry(store_copy)
    registry.load_all()
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()

    refused = registry.hold("tiny-en", {1})

    assert refused == {1: CHECKSUM}
    assert _logged(caplog) == [
        ("ERROR", f"model tiny-en version 1 could not be held for its rollout: {CHECKSUM}"),
    ]
    assert registry.loaded_versions("tiny-en") == {2}


def test_a_model_not_in_memory_holds_nothing_until_it_loads_again(four_models: Path) -> None:
    add_version(four_models, "a-copy", 2)
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=2)
    registry.load_all()  # tiny-zh and a-copy (version 2)
    assert registry.hold("a-copy", {1}) == {}
    assert registry.loaded_versions("a-copy") == {1, 2}
    registry.get("tiny-zh")
    registry.ensure_loaded("b-copy")  # a-copy is evicted, with its held version
    assert registry.loaded_versions("a-copy") == set()

    assert registry.hold("a-copy", {1}) == {1: "the model is not loaded"}
    assert registry.hold("ghost", {1, 2}) == {1: "the model is not loaded", 2: "the model is not loaded"}

    registry.get("tiny-zh")
    assert registry.ensure_loaded("a-copy") is not None
    assert registry.loaded_versions("a-copy") == {1, 2}  # the held version came back with the model


def test_a_failed_load_keeps_the_statuses_of_other_models(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    before = registry.statuses()
    _break(add_version(store_copy, "tiny-en", 2))

    registry.reload("tiny-en", 2)

    after = registry.statuses()
    assert after["tiny-zh"] == before["tiny-zh"]
    assert replace(after["tiny-en"], reason=None, failed_version=None) == before["tiny-en"]


def test_a_new_model_whose_newest_version_fails_falls_back_like_any_other(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    _copy_model(store_copy, "tiny-en", "a-first")
    _break(add_version(store_copy, "a-first", 2))

    outcome = registry.reload_if_newer("a-first", 2)

    assert outcome is not None and outcome.loaded and outcome.status.version == 1
    assert outcome.status.failed_version == 2


def test_with_both_versions_broken_the_newest_is_named_with_the_older_ones_fault(store_copy: Path) -> None:
    _break(add_version(store_copy, "tiny-en", 2))
    _break(store_copy / "tiny-en" / "1")
    registry = Registry(store_copy)
    registry.load_all()

    reason = f"{CHECKSUM} (no older version passes either: version 1: {CHECKSUM})"
    assert registry.status("tiny-en") == ModelStatus("tiny-en", ModelState.failed, 2, reason)
    outcome = registry.reload("tiny-en")
    assert outcome == LoadOutcome(ModelStatus("tiny-en", ModelState.failed, 2, reason), 2, reason, False)

    shutil.copytree(store_copy / "tiny-en" / "2", store_copy / "tiny-en" / "3")
    rewrite_manifest(store_copy / "tiny-en" / "3", lambda manifest: manifest.update(version=3))
    reason = f"{CHECKSUM} (no older version passes either: version 2: {CHECKSUM}; version 1: {CHECKSUM})"
    assert registry.reload("tiny-en").status == ModelStatus("tiny-en", ModelState.failed, 3, reason)


def test_when_every_version_fails_beside_a_serving_one_the_serving_one_stays_named(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    _break(add_version(store_copy, "tiny-en", 2))
    _break(store_copy / "tiny-en" / "1")  # on disk only: version 1 keeps serving from memory

    outcome = registry.reload("tiny-en")

    status = registry.status("tiny-en")
    text = f"version 1 was not loaded: {CHECKSUM}; version 1 keeps serving. " + RECOVER.format(
        name="tiny-en", failed=1, serving=1
    )
    assert status == ModelStatus("tiny-en", ModelState.ready, 1, text, False, status.load_seconds, 1)
    assert outcome == LoadOutcome(status, 1, CHECKSUM, False)


def test_a_failed_model_says_whether_it_is_pinned(store_copy: Path) -> None:
    _break(store_copy / "tiny-zh" / "1")
    _break(store_copy / "tiny-en" / "1")

    pinned = Registry(store_copy, pinned={"tiny-zh": 1})
    pinned.load_all()

    assert pinned.status("tiny-zh") == ModelStatus("tiny-zh", ModelState.failed, 1, CHECKSUM, True)
    assert pinned.status("tiny-en") == ModelStatus("tiny-en", ModelState.failed, 1, CHECKSUM, False)


def test_under_a_public_key_a_held_version_must_be_signed_and_reasons_hide_the_store(
    store_copy: Path,
) -> None:
    write_key_pair(store_copy.parent / "key.pem", store_copy.parent / "key.pub")
    private = load_private_key(store_copy.parent / "key.pem")
    for manifest in store_copy.glob("*/*/manifest.json"):
        sign_bundle(manifest.parent, private)
    add_version(store_copy, "tiny-en", 2)  # not signed
    registry = Registry(store_copy, public_key=load_public_key(store_copy.parent / "key.pub"), fallback=False)
    registry.load_all()
    unsigned = (
        "the bundle is not signed (no manifest.sig) and LSTM_SERVICE_BUNDLE_PUBLIC_KEY requires a signature: "
        "sign it with lstm-train's --sign-key"
    )
    assert registry.status("tiny-en") == ModelStatus("tiny-en", ModelState.failed, 2, unsigned)
    assert registry.reload("tiny-en", 1).loaded

    assert registry.hold("tiny-en", {2}) == {2: unsigned}

    unreadable = add_version(store_copy, "tiny-en", 3)
    (unreadable / "manifest.sig").mkdir()
    why = "manifest.sig cannot be read: [Errno 21] Is a directory: '<model_store>/tiny-en/3/manifest.sig'"
    assert registry.hold("tiny-en", {3}) == {3: why}
    assert registry.reload("tiny-en", 3).reason == why
    assert registry.loaded_versions("tiny-en") == {1}


def test_the_default_policy_is_ready_while_another_model_failed(store_copy: Path) -> None:
    _break(store_copy / "tiny-zh" / "1")
    registry = Registry(store_copy, default_model="tiny-en")
    registry.load_all()

    assert registry.is_ready("default") and registry.is_ready("any")
    assert not registry.is_ready("all") and not registry.is_ready()


def test_a_budget_of_one_evicts_the_other_model_when_a_third_loads(four_models: Path) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=1)
    registry.load_all()
    registry.ensure_loaded("a-copy")  # the default is never evicted: the budget gives way

    registry.ensure_loaded("b-copy")

    assert registry.status("a-copy") == ModelStatus("a-copy", ModelState.evicted, None, EVICTED.format(1))
    assert set(registry.serving_versions) == {"b-copy", "tiny-zh"}


# -- the figures of failed loads --------------------------------------------------------------------


def _load_time_sum(name: str) -> float:
    return REGISTRY.get_sample_value("lstm_service_model_load_seconds_sum", {"model": name}) or 0.0


def test_a_load_reports_the_seconds_it_took_not_more(store_copy: Path) -> None:
    registry = Registry(store_copy)
    started = time.perf_counter()
    registry.load_all()
    took = time.perf_counter() - started

    seconds = [status.load_seconds for status in registry.statuses().values()]
    assert all(value is not None and 0 <= value <= took + 0.001 for value in seconds), (seconds, took)


def test_a_refused_version_adds_the_seconds_its_check_took_to_the_load_time(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    _break(add_version(store_copy, "tiny-en", 2))
    before = _load_time_count("tiny-en"), _load_time_sum("tiny-en")

    started = time.perf_counter()
    registry.reload("tiny-en", 2)
    took = time.perf_counter() - started

    added = _load_time_sum("tiny-en") - before[1]
    assert _load_time_count("tiny-en") == before[0] + 1
    assert 0 <= added <= took, (added, took)


def test_a_graph_onnxruntime_refuses_is_named_logged_and_timed(
    store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    bundle = add_version(store_copy, "tiny-en", 2)
    (bundle / "model.onnx").write_bytes(b"not a graph at all")
    rewrite_manifest(bundle, refresh_checksums=True)  # the checksums pass: onnxruntime is what refuses
    caplog.set_level(logging.INFO, LOGGER)
    caplog.clear()
    before = (
        _loads("tiny-en", "2", "reload", "failed"),
        _load_time_count("tiny-en"),
        _load_time_sum("tiny-en"),
    )

    started = time.perf_counter()
    outcome = registry.reload("tiny-en", 2)
    took = time.perf_counter() - started

    why = "onnxruntime could not load model.onnx (InvalidProtobuf)"
    status = registry.status("tiny-en")
    text = f"version 2 was not loaded: {why}; version 1 keeps serving. " + RECOVER.format(
        name="tiny-en", failed=2, serving=1
    )
    assert status == ModelStatus("tiny-en", ModelState.ready, 1, text, False, status.load_seconds, 2)
    assert outcome == LoadOutcome(status, 2, why, False)
    assert _logged(caplog) == [
        ("ERROR", "model tiny-en version 2 could not be opened"),
        ("ERROR", f"model tiny-en version 2 is not served: {why}"),
    ]
    assert caplog.records[0].exc_info is not None  # the traceback is logged with it
    assert (_loads("tiny-en", "2", "reload", "failed"), _load_time_count("tiny-en")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert 0 <= _load_time_sum("tiny-en") - before[2] <= took
    assert registry.get("tiny-en").version == 1


def test_a_model_loaded_by_a_reload_counts_as_used_when_it_loaded(four_models: Path) -> None:
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=3)
    registry.load_all()  # tiny-zh, a-copy, b-copy
    registry.get("a-copy")
    registry.get("b-copy")
    _copy_model(four_models, "tiny-en", "c-copy")
    registry.reload("c-copy")  # loaded after b-copy's last use, and never looked up: a-copy goes
    assert registry.status("a-copy").state is ModelState.evicted

    registry.ensure_loaded("tiny-en")

    assert registry.status("b-copy").state is ModelState.evicted
    assert registry.status("c-copy").state is ModelState.ready


def test_a_registry_opens_its_models_with_one_thread_each_unless_told(tiny_store: Path) -> None:
    default, told = Registry(tiny_store), Registry(tiny_store, intra_op_threads=3)
    default.load_all()
    told.load_all()

    for registry, threads in ((default, 1), (told, 3)):
        for name in ("tiny-en", "tiny-zh"):
            options = registry.get(name).session.get_session_options()
            assert options.intra_op_num_threads == threads, (name, threads)


def test_while_the_store_loads_every_model_is_loading_with_its_pin(tiny_store: Path) -> None:
    registry = Registry(tiny_store, pinned={"tiny-zh": 1})
    seen: list[dict[str, ModelStatus]] = []
    load = registry.reload

    def reload_seen(name: str, *args: object, **kwargs: object) -> LoadOutcome:
        seen.append(registry.statuses())  # what /readyz and /models show while this model opens
        return load(name, *args, **kwargs)  # type: ignore[arg-type]

    registry.reload = reload_seen  # type: ignore[method-assign]
    registry.load_all()

    assert seen[0] == {
        "tiny-en": ModelStatus("tiny-en", ModelState.loading, pinned=False),
        "tiny-zh": ModelStatus("tiny-zh", ModelState.loading, pinned=True),
    }
    assert seen[1]["tiny-zh"] == ModelStatus("tiny-zh", ModelState.loading, pinned=True)
    assert seen[1]["tiny-en"].state is ModelState.ready


def test_a_budget_of_one_loads_only_the_default_at_start(four_models: Path) -> None:
    evicted = {name: _evictions(name) for name in ("a-copy", "b-copy", "tiny-en")}
    registry = Registry(four_models, default_model="tiny-zh", max_loaded=1)

    registry.load_all()

    assert registry.statuses() == {
        **{
            name: ModelStatus(name, ModelState.evicted, None, NOT_YET, False)
            for name in ("a-copy", "b-copy", "tiny-en")
        },
        "tiny-zh": ModelStatus(
            "tiny-zh", ModelState.ready, 1, None, False, registry.status("tiny-zh").load_seconds, None
        ),
    }
    assert {name: _evictions(name) for name in evicted} == evicted  # nothing was loaded to be evicted


def test_an_empty_store_under_a_budget_serves_nothing_without_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    registry = Registry(tmp_path, max_loaded=2)

    registry.load_all()

    assert registry.statuses() == {} and registry.default_model is None
    assert _logged(caplog) == [("ERROR", f"model store {tmp_path} holds no model bundle")]
