"""Bad input on every route: a 4xx with the stable error body (or a valid answer where the input is valid),
never a 5xx, and the service keeps serving afterwards."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.native.schemas import ClassifyResponse, EmbedResponse, HiddenStatesResponse, TokenizeResponse
from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXT_ROUTES = ("/classify", "/tokenize", "/embed", "/hidden-states")
SCHEMAS = {
    "/classify": ClassifyResponse,
    "/tokenize": TokenizeResponse,
    "/embed": EmbedResponse,
    "/hidden-states": HiddenStatesResponse,
}
MODEL_RUNS = {"/classify", "/hidden-states"}  # routes that need at least one token per text

# (case id, raw body, expected status on every text route, the error message) -- a None message: any.
_MALFORMED: list[tuple[str, bytes, int, str | None]] = [
    ("truncated JSON", b'{"text": "goal', 422, "request body is not valid JSON"),
    (
        "not UTF-8",
        b'{"text": "\xff\xfe"}',
        422,
        "request body is not valid UTF-8: byte 10 is 0xff; send the JSON encoded as UTF-8",
    ),
    ("empty body", b"", 422, "body: Field required"),
    ("JSON null", b"null", 422, None),
    ("JSON array", b'["goal"]', 422, None),
    ("JSON string", b'"goal"', 422, None),
    (
        "lone surrogate",
        b'{"text": "a\\ud800b"}',
        422,
        ("text: Input should be a valid string, unable to parse raw data as a unicode string"),
    ),
    ("lone surrogate key", b'{"text": "a", "\\udfff": 1}', 422, None),
    ("NaN", b'{"text": "a", "version": NaN}', 422, None),
]

# (case id, JSON body, expected status, error message or None) for every text route.
_INVALID: list[tuple[str, Any, int, str | None]] = [
    ("no input", {}, 422, None),
    ("text null", {"text": None}, 422, None),
    ("text number", {"text": 5}, 422, "text: Input should be a valid string"),
    ("text object", {"text": {"a": 1}}, 422, "text: Input should be a valid string"),
    ("text empty", {"text": ""}, 422, "text: String should have at least 1 character"),
    ("texts empty", {"texts": []}, 422, None),
    ("texts string", {"texts": "goal"}, 422, "texts: Input should be a valid list"),
    ("texts with null", {"texts": ["goal", None]}, 422, "texts.1: Input should be a valid string"),
    ("texts with number", {"texts": [1]}, 422, "texts.0: Input should be a valid string"),
    ("text and texts", {"text": "a", "texts": ["b"]}, 422, None),
    ("unknown field", {"text": "a", "txt": "b"}, 422, "txt: Extra inputs are not permitted"),
    (
        "truncate as string",
        {"text": "a", "truncate": "yes"},
        422,
        "truncate: Input should be a valid boolean",
    ),
    (
        "version as string",
        {"text": "a", "version": "1"},
        422,
        "version: Input should be a valid integer, or an alias that begins with a letter",
    ),
    ("version zero", {"text": "a", "version": 0}, 422, None),
    ("version float", {"text": "a", "version": 1.5}, 422, None),
    (
        "version unknown",
        {"text": "a", "version": 99},
        404,
        "model tiny-en has no loaded version 99 (loaded: 1)",
    ),
    ("model number", {"text": "a", "model": 7}, 422, "model: Input should be a valid string"),
    ("model empty", {"text": "a", "model": ""}, 422, None),
    ("model ../", {"text": "a", "model": "../tiny-en"}, 422, None),
    ("model absolute path", {"text": "a", "model": "/etc/passwd"}, 422, None),
    (
        "model unknown",
        {"text": "a", "model": "ghost"},
        404,
        "unknown model 'ghost' (models: tiny-en, tiny-zh)",
    ),
    ("huge text", {"text": "g" * 20_001}, 422, "text: 20001 characters (at most 20000 per text)"),
    ("10,000 texts", {"texts": ["goal"] * 10_000}, 422, None),
]

# Odd but valid text: every route answers it (classify and hidden-states need a token, these all have one).
_ODD_TEXTS = {
    "NUL": "goal\u0000team",
    "control characters": "\u0007\u001b[31mgoal\u0008\u007f",
    "emoji": "goal 😀👍🏽🇫🇷",
    "right-to-left": "مرحبا بالعالم שלום",
    "combining marks": "ǵ́́́oal e\u0301\u0301\u0301",
    "zero-width": "go\u200bal\u200d\ufeff",
    "private use and noncharacters": "\ue000\uffff\U0010ffff",
    "chinese": "这个东西很好",
}


def _check_error(response: httpx.Response, status: int, message: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}
    expected_type = {404: "not_found", 413: "payload_too_large", 422: "validation"}[status]
    assert body["error_type"] == expected_type
    if message is not None:
        assert body["error"] == message
    assert response.headers["x-request-id"]


async def _still_serves(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", json={"text": "goal"})
    assert response.status_code == 200


@pytest.mark.parametrize("route", TEXT_ROUTES)
@pytest.mark.parametrize(
    ("body", "status", "message"), [case[1:] for case in _MALFORMED], ids=[case[0] for case in _MALFORMED]
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, route: str, body: bytes, status: int, message: str | None
) -> None:
    response = await client.post(route, content=body, headers={"Content-Type": "application/json"})

    _check_error(response, status, message)
    await _still_serves(client)


@pytest.mark.parametrize("route", TEXT_ROUTES)
@pytest.mark.parametrize(
    ("body", "status", "message"), [case[1:] for case in _INVALID], ids=[case[0] for case in _INVALID]
)
async def test_invalid_fields(
    client: httpx.AsyncClient, route: str, body: Any, status: int, message: str | None
) -> None:
    response = await client.post(route, json=body)

    _check_error(response, status, message)
    await _still_serves(client)


@pytest.mark.parametrize("route", TEXT_ROUTES)
@pytest.mark.parametrize("text", list(_ODD_TEXTS.values()), ids=list(_ODD_TEXTS))
async def test_odd_but_valid_text_gets_a_valid_answer(
    client: httpx.AsyncClient, route: str, text: str
) -> None:
    response = await client.post(route, json={"texts": [text, text]})

    assert response.status_code == 200, response.text
    SCHEMAS[route].model_validate(response.json())


@pytest.mark.parametrize("route", TEXT_ROUTES)
@pytest.mark.parametrize("text", [" ", "\t\n\u3000\u00a0 "], ids=["space", "unicode whitespace"])
async def test_whitespace_only_text(client: httpx.AsyncClient, route: str, text: str) -> None:
    response = await client.post(route, json={"text": text})

    if route in MODEL_RUNS:
        _check_error(response, 422, "text: no tokens (the text is empty or only whitespace)")
    else:
        assert response.status_code == 200
        assert response.json()["results"][0]["tokens"] == []


@pytest.mark.parametrize(
    ("route", "count", "limit"),
    [("/classify", 257, 256), ("/tokenize", 257, 256), ("/embed", 17, 16), ("/hidden-states", 17, 16)],
)
async def test_too_many_texts(client: httpx.AsyncClient, route: str, count: int, limit: int) -> None:
    response = await client.post(route, json={"texts": ["goal"] * count})

    _check_error(response, 422, f"too many texts: {count} (at most {limit} per request)")


@pytest.mark.parametrize("route", TEXT_ROUTES)
async def test_a_body_over_the_limit_is_refused_before_parsing(client: httpx.AsyncClient, route: str) -> None:
    response = await client.post(route, json={"text": "g" * (1 << 20)})

    _check_error(response, 413, "request body larger than 1048576 bytes (LSTM_SERVICE_MAX_BODY_BYTES)")
    await _still_serves(client)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_json_is_read_whatever_the_content_type_says(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = await client.post("/classify", content=json.dumps({"text": "goal"}).encode(), headers=headers)

    assert response.status_code == 200  # `curl -d` sends application/x-www-form-urlencoded


async def test_a_form_body_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", data={"text": "goal"})

    _check_error(response, 422, "request body is not valid JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"tokens": []},
        {"tokens": [""]},
        {"tokens": ["a"], "text": "a"},
        {"tokens": "goal"},
        {"tokens": ["goal"], "neighbors": 0},
        {"tokens": ["goal"], "neighbors": 101},
        {"tokens": ["goal"], "neighbors": "3"},
        {"tokens": ["goal"], "neighbors": True},
    ],
)
async def test_embed_specific_fields(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/embed", json=body)

    _check_error(response, 422, None)


@pytest.mark.parametrize("name", ["ghost", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "tiny-en%00", "a" * 300])
async def test_unknown_model_detail(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/models/{name}")

    _check_error(response, 404, None)
    await _still_serves(client)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/classify", 405),
        ("PUT", "/models", 405),
        ("POST", "/nowhere", 404),
        ("GET", "/../etc/passwd", 404),
    ],
)
async def test_unknown_routes_and_methods(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)

    assert response.status_code == status
    assert response.json()["error_type"] == {404: "not_found", 405: "method_not_allowed"}[status]


# -- a long list of nasty inputs on every route, counted ------------------------------------------------

ADMIN_ROUTES = ("/admin/models/tiny-en/load", "/admin/models/tiny-en/unload")
GET_ROUTES = ("/models", "/models/tiny-en", "/livez", "/readyz", "/health", "/metrics", "/openapi.json")
_NASTY_STRINGS = [
    "",
    " ",
    "\u0000",
    "goal\u0000",
    "\U0001f600\U0001f44d\U0001f3fd\U0001f1eb\U0001f1f7 emoji",
    "\ud800",  # lone surrogates: sent as JSON escapes (json.dumps below), refused by the parser
    "a\udfffb\ud83d",
    "\u202egoal\u202c مرحبا שלום",
    "e" + "\u0301" * 5_000,
    "\U0001f600" * 10_000,
    "\u200b\u200d\ufeff\u2028\u2029",
    "\\",
    '"',
    "../tiny-en",
    "..",
    "/etc/passwd",
    "tiny-en/../tiny-zh",
    "x" * 20_000,
    "goal " * 4_000,
    "x" * 20_001,
    "%00%2e%2e%2f",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "${jndi:ldap://x}",
]
_NASTY_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    2**64,
    1e308,
    [],
    {},
    [None],
    [[]],
    [1],
    {"a": 1},
    *_NASTY_STRINGS,
    [*_NASTY_STRINGS],
]
_FIELDS = ("text", "texts", "tokens", "model", "version", "truncate", "neighbors")
_RAW_BODIES = [
    b"",
    b"{",
    b'{"text": }',
    b'{"text": "goal"',
    b'{"text": "goal"}garbage',
    b'{"text": "goal"}{"text": "goal"}',
    b"nul",
    b"\x00\x00\x00",
    b"\xff\xfe\x00{",
    b'{"text": "\\ud800"}',
    b'{"text": "\\udfff\\ud800"}',
    b'{"texts": ["\\ud83d", "goal"]}',
    b'{"text": "goal", "text": 5}',
    b'{"text": "goal", "version": 1e999}',
    b'{"version": 123456789012345678901234567890}',
    b'{"text": "goal", "version": -0}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"text": "' + b"g" * ((1 << 20) + 10) + b'"}',  # 1 MB + of text: 413
    json.dumps({"texts": ["goal"] * 10_000}).encode(),
    json.dumps({"tokens": ["goal"] * 10_000}).encode(),
    '{"text": "\u0645\u0631\u062d\u0628\u0627"}'.encode("utf-16"),
]
_HEADERS = [
    {"Content-Type": "application/json"},
    {"Content-Type": "text/plain; charset=latin-1"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"Content-Encoding": "gzip"},
    {"X-Request-ID": "x" * 10_000},
    {"X-Request-ID": "\u00e9\u00e8\n"},
    {"Authorization": "Bearer " + "x" * 10_000},
    {"X-API-Key": ""},
    {"Accept": "text/html"},
]


def _nasty_requests(post_routes: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx options): raw bodies, every field set to every nasty value and odd headers on
    ``post_routes``; odd headers, paths and methods on every route."""
    requests: list[tuple[str, str, dict[str, Any]]] = []
    for path in post_routes:
        requests += [("POST", path, {"content": body}) for body in _RAW_BODIES]
        requests += [("POST", path, {"json": {field: value}}) for field in _FIELDS for value in _NASTY_VALUES]
        requests += [
            ("POST", path, {"json": {"text": "goal", field: value}})
            for field in ("model", "version", "truncate", "neighbors")
            for value in _NASTY_VALUES
        ]
        requests += [("POST", path, {"json": {"text": "goal"}, "headers": headers}) for headers in _HEADERS]
    for path in GET_ROUTES:
        requests += [("GET", path, {"headers": headers}) for headers in _HEADERS]
        requests += [("GET", path, {"params": {"model": "../x", "version": "\u0000"}, "content": b"{"})]
    names = ["..", "...", "%2e%2e", "tiny-en%00", "tiny-en%2F..", "\u00e9", "\U0001f600", "a" * 5_000, "-x"]
    requests += [("GET", f"/models/{name}", {}) for name in names]
    requests += [("POST", f"/admin/models/{name}/load", {}) for name in names]
    for method in ("PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"):
        requests += [(method, path, {}) for path in (*TEXT_ROUTES, *ADMIN_ROUTES, *GET_ROUTES)]
    return requests


@pytest.fixture(scope="module")
async def admin_client(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory, start_app: Any) -> Any:
    """An app with the admin routes on (a private store: the nasty requests may unload a model)."""
    store = Path(shutil.copytree(tiny_store, tmp_path_factory.mktemp("nasty") / "store"))
    async with start_app(Settings(model_store=store, admin_token="nasty-admin-token")) as client:
        yield client


async def test_a_long_list_of_nasty_inputs_never_gets_a_5xx(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    tried, server_errors, statuses = 0, [], Counter[int]()
    admin = {"Authorization": "Bearer nasty-admin-token"}
    for app, routes, extra_headers in ((client, TEXT_ROUTES, {}), (admin_client, ADMIN_ROUTES, admin)):
        for method, path, options in _nasty_requests(routes):
            headers = {**extra_headers, **options.pop("headers", {})}
            encoded = {name: value.encode("latin-1", "replace") for name, value in headers.items()}
            if "json" in options:  # ASCII-escaped, so that lone surrogates travel as "\ud800"
                options = {**options, "content": json.dumps(options.pop("json")).encode()}
            response = await app.request(method, path, headers=encoded, **options)
            tried += 1
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append((method, path, response.status_code, response.text[:200]))
            elif response.status_code >= 400 and method != "HEAD":
                assert set(response.json()) >= {"error", "error_type"}, (method, path, response.text[:200])
        await _still_serves(app)

    print(f"nasty inputs: {tried} requests tried, {len(server_errors)} answered 5xx")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    assert server_errors == []
