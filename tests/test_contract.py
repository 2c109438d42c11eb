"""The SDK covers the server's API exactly: every route has an SDK method, every method a route.

The mapping below is written out by hand, on purpose: a route added to the server without an SDK
method (or the other way round) fails here until someone decides what it maps to. It is checked
against the real OpenAPI document of `create_app(...)` and the real attributes of `Client` and
`AsyncClient`, and each pair is checked to agree on the wire: the SDK method sends that HTTP
method to that path, its parameters are the route's path/query/header parameters and body fields,
and it reads the answer as the model the route documents.

- `stream_events` follows the WebSocket `/session/{session_id}/events`, which OpenAPI does not
  describe: it is mapped explicitly and checked against the app's WebSocket route instead.
- `call_tool` dispatches by name to the eight `POST /tools/{name}` routes (which also have a
  method each): it maps to all of them.
- `GET /metrics` has no SDK method, deliberately: it is the Prometheus text exposition for a
  scraper (Prometheus, an agent), not JSON for an API client, and carries nothing a voicebook
  client acts on. It is listed in `NOT_IN_SDK` so the exclusion is explicit.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIWebSocketRoute

from voicebook.config import Settings
from voicebook.sdk import AsyncClient, Client, endpoints
from voicebook.sdk.protocol import EventCursor, Wire
from voicebook.server.app import create_app

Route = tuple[str, str]

ROUTES: dict[Route, str] = {
    ("POST", "/session/start"): "start_session",
    ("POST", "/livekit/token"): "livekit_token",
    ("GET", "/session/{session_id}"): "get_session",
    ("GET", "/session/{session_id}/tools"): "session_tools",
    ("GET", "/session/{session_id}/events"): "session_events",
    ("POST", "/session/{session_id}/end"): "end_session",
    ("POST", "/session/{session_id}/caller"): "attest_caller",
    ("POST", "/tools/identify_user"): "identify_user",
    ("POST", "/tools/verify_caller"): "verify_caller",
    ("POST", "/tools/fetch_slots"): "fetch_slots",
    ("POST", "/tools/book_appointment"): "book_appointment",
    ("POST", "/tools/retrieve_appointments"): "retrieve_appointments",
    ("POST", "/tools/cancel_appointment"): "cancel_appointment",
    ("POST", "/tools/modify_appointment"): "modify_appointment",
    ("POST", "/tools/end_conversation"): "end_conversation",
    ("POST", "/agent/report"): "report",
    ("GET", "/business/appointments"): "business_appointments",
    ("GET", "/healthz"): "health",
    ("GET", "/readyz"): "ready",
}
"""(HTTP method, OpenAPI path) → the SDK method that calls it."""

WEBSOCKETS: dict[Route, str] = {("WEBSOCKET", "/session/{session_id}/events"): "stream_events"}
"""Routes OpenAPI does not describe → the SDK method that follows them."""

DISPATCH: dict[str, set[Route]] = {
    "call_tool": {route for route in ROUTES if route[1].startswith("/tools/")},
}
"""SDK methods that reach one of several routes, chosen by an argument."""

SOCKETS_NOT_IN_SDK: dict[str, str] = {
    "/console/api/try": "the console's Try-it conversation: the operator's own page, not a client",
}
"""WebSockets the SDK does not follow, each with its reason."""

NOT_IN_SDK: dict[Route, str] = {
    ("GET", "/metrics"): "Prometheus text exposition for scrapers, not a JSON API for clients",
}

LIFECYCLE = {Client: {"close"}, AsyncClient: {"aclose"}}
"""Public methods that are about the client object itself, not the server's API."""

SAMPLE_ARGS: dict[str, Any] = {
    "session_id": "sess-123",
    "phone": "+1 415 555 0123",
}
"""Values for the required parameters of the endpoint builders."""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db: Path = tmp_path_factory.mktemp("contract") / "contract.db"
    return create_app(Settings(database_url=f"sqlite:///{db}"))


@pytest.fixture(scope="module")
def openapi(app: Any) -> dict[str, Any]:
    return app.openapi()


def operations(openapi: dict[str, Any]) -> dict[Route, dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def sdk_methods(cls: type) -> set[str]:
    """The public methods of a client class that speak to the server."""
    names = {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value) and not isinstance(value, type)
    }
    return names - LIFECYCLE[cls]


def websocket_routes(routes: list[Any]) -> dict[str, APIWebSocketRoute]:
    """The app's WebSocket routes by path (FastAPI may nest included routers)."""
    found: dict[str, APIWebSocketRoute] = {}
    for route in routes:
        if isinstance(route, APIWebSocketRoute):
            found[route.path] = route
        nested = getattr(route, "original_router", None) or getattr(route, "app", None)
        if nested is not None and hasattr(nested, "routes"):
            found.update(websocket_routes(list(nested.routes)))
    return found


def path_pattern(template: str) -> re.Pattern[str]:
    """A regex for concrete paths of an OpenAPI template (`{name}` is one path segment)."""
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def build(name: str) -> Any:
    """The `Call` the SDK's `name` makes, with sample values for the required parameters."""
    builder = getattr(endpoints, name)
    args = {
        param: SAMPLE_ARGS[param]
        for param, spec in inspect.signature(builder).parameters.items()
        if spec.default is inspect.Parameter.empty
    }
    return builder(**args)


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    # An optional body (`Model | None`, e.g. POST /session/start) is `anyOf: [$ref, null]`.
    refs = [option for option in schema.get("anyOf", []) if "$ref" in option]
    if len(refs) == 1:
        schema = refs[0]
    ref = schema.get("$ref")
    if ref:
        return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def route_parameters(openapi: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """Path, query and header parameters plus body fields, in Python spelling."""
    names = {p["name"].lower().replace("-", "_") for p in operation.get("parameters", [])}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        names |= set(resolve(openapi, body["schema"]).get("properties", {}))
    return names


def schema_name(schema: dict[str, Any] | None) -> str | None:
    """`Model` for a $ref, `list[Model]` for an array of them."""
    if not schema:
        return None
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
        return f"list[{schema['items']['$ref'].rsplit('/', 1)[1]}]"
    return None


def annotation_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return f"list[{item.__name__}]"
    return annotation.__name__


# --- both directions ------------------------------------------------------------------------------


def test_every_openapi_route_has_an_sdk_method_or_a_stated_exclusion(
    openapi: dict[str, Any],
) -> None:
    actual = set(operations(openapi))
    assert actual, "the app documents no routes"
    without_method = sorted(actual - set(ROUTES) - set(NOT_IN_SDK))
    assert not without_method, (
        f"routes without an SDK method (add one, or to NOT_IN_SDK with a reason): {without_method}"
    )
    stale = sorted((set(ROUTES) | set(NOT_IN_SDK)) - actual)
    assert not stale, f"mapped routes the app no longer has: {stale}"
    assert not set(ROUTES) & set(NOT_IN_SDK)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_every_sdk_method_has_a_route(cls: type) -> None:
    mapped = set(ROUTES.values()) | set(WEBSOCKETS.values()) | set(DISPATCH)
    methods = sdk_methods(cls)
    assert methods, f"{cls.__name__} has no public methods"
    without_route = sorted(methods - mapped)
    assert not without_route, f"{cls.__name__} methods that map to no route: {without_route}"
    missing = sorted(mapped - methods)
    assert not missing, f"{cls.__name__} lacks the methods for: {missing}"


def test_the_two_clients_have_the_same_api() -> None:
    assert sdk_methods(Client) == sdk_methods(AsyncClient)
    for name in sdk_methods(Client):
        sync, aio = (
            inspect.signature(getattr(Client, name)),
            inspect.signature(getattr(AsyncClient, name)),
        )
        assert list(sync.parameters) == list(aio.parameters), name
        if name != "stream_events":
            assert sync.return_annotation == aio.return_annotation, name


def test_the_event_websocket_is_a_route_the_openapi_leaves_out(
    app: Any, openapi: dict[str, Any]
) -> None:
    sockets = websocket_routes(list(app.router.routes))
    for (_, path), name in WEBSOCKETS.items():
        assert path in sockets, f"{name}: no WebSocket route {path}; the app has {sorted(sockets)}"
        route_params = set(inspect.signature(sockets[path].endpoint).parameters) - {"websocket"}
        sdk = inspect.signature(getattr(Client, name)).parameters.values()
        # Keyword-only parameters are the client's own (e.g. resume_for), never sent.
        sdk_params = {p.name for p in sdk if p.kind != p.KEYWORD_ONLY} - {"self"}
        assert route_params == sdk_params, name
    # Every WebSocket is mapped: a new one needs a decision too.
    assert set(sockets) == {path for _, path in WEBSOCKETS} | set(SOCKETS_NOT_IN_SDK)


# --- each pair agrees on the wire -----------------------------------------------------------------


@pytest.mark.parametrize(("route", "name"), list(ROUTES.items()), ids=lambda v: str(v))
def test_the_sdk_method_calls_its_route(route: Route, name: str) -> None:
    method, template = route
    call = build(name)
    assert call.method == method, name
    assert path_pattern(template).match(call.path), f"{name} calls {call.path}, not {template}"


@pytest.mark.parametrize(("route", "name"), list(ROUTES.items()), ids=lambda v: str(v))
def test_the_sdk_parameters_are_the_routes_parameters(
    openapi: dict[str, Any], route: Route, name: str
) -> None:
    sdk = set(inspect.signature(getattr(endpoints, name)).parameters)
    assert sdk == route_parameters(openapi, operations(openapi)[route]), name


@pytest.mark.parametrize(("route", "name"), list(ROUTES.items()), ids=lambda v: str(v))
def test_the_sdk_reads_the_documented_answer(
    openapi: dict[str, Any], route: Route, name: str
) -> None:
    ok = operations(openapi)[route]["responses"]["200"]
    documented = schema_name(ok.get("content", {}).get("application/json", {}).get("schema"))
    returns = inspect.signature(getattr(Client, name)).return_annotation
    assert annotation_name(returns) == documented, name


@pytest.mark.parametrize("route", sorted(DISPATCH["call_tool"]))
def test_call_tool_reaches_every_tool_route(route: Route) -> None:
    tool = route[1].removeprefix("/tools/")
    call = endpoints.call_tool(tool, "sess-123", {})
    assert (call.method, call.path) == route


def test_stream_events_opens_the_event_websocket() -> None:
    (path,) = (path for _, path in WEBSOCKETS)
    url = EventCursor(Wire("http://voicebook.test", None), "sess-123", None).url()
    assert url.startswith("ws://voicebook.test/")
    ws_path = url.removeprefix("ws://voicebook.test").split("?", 1)[0]
    assert path_pattern(path).match(ws_path), url
