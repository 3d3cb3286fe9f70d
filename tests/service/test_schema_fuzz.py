"""Schema-driven fuzzing (schemathesis) of the in-process app: every operation of the OpenAPI document,
with data generated from it that fits (positive) and that does not (negative), must answer without a 5xx
and with a status code, content type, headers and body the document declares. The examples are bounded
and derandomized, so the run is short and a failure reproduces.

The admin routes are fuzzed too (with the admin token), on a private copy of the store. (schemathesis's
own pytest loader does not work with pytest 9, so each operation gets its hypothesis test here.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from service.api.app import create_app
from service.settings import Settings

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
OPERATIONS = [
    ("POST", "/classify"),
    ("POST", "/tokenize"),
    ("POST", "/embed"),
    ("POST", "/hidden-states"),
    ("POST", "/explain"),
    ("GET", "/models"),
    ("GET", "/models/{name}"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/admin/models/{name}/load"),
    ("POST", "/admin/models/{name}/unload"),
    ("GET", "/admin/models/{name}/rollout"),
    ("PUT", "/admin/models/{name}/aliases/{alias}"),
    ("DELETE", "/admin/models/{name}/aliases/{alias}"),
    ("PUT", "/admin/models/{name}/shadow"),
    ("DELETE", "/admin/models/{name}/shadow"),
    ("POST", "/admin/models/{name}/promote"),
    ("POST", "/admin/models/{name}/rollback"),
    ("GET", "/admin/models/{name}/compare"),
    ("POST", "/feedback"),
    ("GET", "/models/{name}/quality"),
    ("GET", "/labelling/queue"),
    ("GET", "/labelling/export"),
]
EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    store = Path(shutil.copytree(tiny_store, tmp_path_factory.mktemp("fuzz") / "store"))
    log = f"sqlite:///{tmp_path_factory.mktemp('fuzz-log') / 'predictions.db'}"  # the learning routes' store
    app = create_app(Settings(model_store=store, admin_token=ADMIN_TOKEN, max_texts=64, prediction_log=log))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    # The Open Inference Protocol and TEI operations are fuzzed in tests/protocols/test_protocol_fuzz.py.
    native = {
        (m, path)
        for m, path in documented
        if path != "/" and not path.startswith(("/v2", "/predict", "/info", "/tei/"))
    }

    assert native == set(OPERATIONS)


# Invalid input exists only for the POST operations (bodies, constrained model names); a GET takes no
# body and /models/{name} accepts any name (404 if unknown).
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or method in ("POST", "PUT")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g}" for m, p, g in CASES])
def test_the_operation_keeps_its_documented_promises(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        calls.append(response.status_code)

    check()
    assert calls and all(status < 500 for status in calls)
