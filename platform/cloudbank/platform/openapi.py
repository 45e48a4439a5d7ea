"""`GET /api/openapi.json`: the OpenAPI document of every route of the platform app (and, built the
same way, the media API's at `/media/api/openapi.json`).

Generated from the app's own route table, so a route cannot be left out: each handler's summary
is its docstring's first line, its request body the dataclass it passes to `read_json` (found in
its source, or named with `@request_body(Model)`), described by `validation.json_schema`; who may
call it (`security`, `x-roles`) the access table's (access.ROUTES). The
WebSocket routes are marked `x-websocket`, with the client messages they accept.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from cloudbank.platform import access
from cloudbank.platform.validation import json_schema

routes = web.RouteTableDef()
F = TypeVar("F", bound=Callable[..., Any])

_READ_JSON = re.compile(r"read_json\(\s*request\s*,\s*([A-Za-z_]\w*)\s*\)")
_ERRORS = {"400": "bad input: malformed JSON, unknown/missing fields, wrong types, too long",
           "401": "no token, or an expired, forged or revoked one", "403": "the token may not do this",
           "404": "unknown id (or someone else's)", "409": "not in a state that allows this",
           "413": "body too large", "415": "not application/json", "429": "rate limited"}


def request_body(model: type[Any]) -> Callable[[F], F]:
    """Name a handler's body model when it is not read with `read_json(request, Model)` directly."""
    def mark(handler: F) -> F:
        handler.openapi_body = model  # type: ignore[attr-defined]
        return handler
    return mark


def _source(handler: Any) -> str:
    try:
        return inspect.getsource(handler)
    except (OSError, TypeError):
        return ""


def body_model(handler: Any) -> type[Any] | None:
    """The dataclass a handler reads its JSON body into, if any."""
    explicit = getattr(handler, "openapi_body", None)
    if explicit is not None:
        return explicit if isinstance(explicit, type) else None
    match = _READ_JSON.search(_source(handler))
    if not match:
        return None
    model = getattr(inspect.getmodule(handler), match.group(1), None)
    return model if isinstance(model, type) and dataclasses.is_dataclass(model) else None


def _operation(method: str, path: str, handler: Any, schemas: dict[str, Any], base: str) -> dict[str, Any]:
    doc = inspect.getdoc(handler) or ""
    source = _source(handler)
    op: dict[str, Any] = {"operationId": f"{method.lower()}_{getattr(handler, '__name__', 'handler')}",
                          "summary": doc.splitlines()[0] if doc else f"{method} {path}",
                          "responses": {"200": {"description": "OK",
                                                "content": {"application/json": {"schema": {"type": "object"}}}}}}
    if doc:
        op["description"] = doc
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
              for name in re.findall(r"{(\w+)}", path)]
    rule = access.ROUTES.get((method, base + path))
    if rule is not None and not rule.open:  # who may call it: the access table
        op["security"] = [{"bearer": []}]
        op["x-roles"] = list(rule.roles)
        op["responses"].update({code: {"description": _ERRORS[code]} for code in ("401", "403")})
    model = body_model(handler)
    if model is not None:
        schemas[model.__name__] = json_schema(model)
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        op["responses"].update({code: {"description": _ERRORS[code]} for code in ("400", "413", "415")})
    if "WebSocketResponse" in source:
        from cloudbank.platform.events_api import CLIENT_MESSAGES

        op["x-websocket"] = True
        params.append({"name": "token", "in": "query", "required": True, "schema": {"type": "string"}})
        params.append({"name": "last_id", "in": "query", "required": False,
                       "schema": {"type": "string", "pattern": r"^\d+-\d+$"}})
        if getattr(handler, "__module__", "") == "cloudbank.platform.events_api":
            op["x-client-messages"] = {kind: json_schema(m) for kind, m in CLIENT_MESSAGES.items()}
        op["responses"]["101"] = {"description": "switching to the WebSocket"}
    if params:
        op["parameters"] = params
    return op


def document(app: web.Application, title: str = "cloudbank service platform", base: str = "/api",
             only: str = "/") -> dict[str, Any]:
    """The OpenAPI 3 document of `app`'s routes under `only` (paths relative to `base`, where the app
    is mounted; static folders are not routes of an API)."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue  # aiohttp adds HEAD beside every GET
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or "")
        if path.startswith(base + "/"):
            path = path[len(base):]  # mounted under `base` (cloudbank up): paths are relative to the server URL
        if not path.startswith(only):
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler, schemas, base)
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1",
                 "description": "Errors are {error, message, ...} with the status shown. See docs/protocol.md."},
        "servers": [{"url": base}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """Where a person who opens the API's address goes next: its description and health."""
    return web.json_response({"service": "cloudbank service platform API", "openapi": "openapi.json",
                              "healthz": "healthz", "protocol": "docs/protocol.md in the source"})


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """This document: every REST and WebSocket route of the platform API."""
    return web.json_response(document(request.app))
