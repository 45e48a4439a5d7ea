"""The OpenAPI document covers every route of the platform app, with the body of each."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.openapi import body_model, document, request_body
from cloudbank.platform.phone_auth import PhoneStartBody
from cloudbank.platform.validation import read_json

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def doc(api: Client) -> dict[str, Any]:
    resp = await api.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    return dict(await resp.json())


def _routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """Every (method, path, handler) of the app, read from the router independently of openapi.py."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        out.append((route.method.lower(), route.resource.canonical, route.handler))
    return out


async def test_every_route_is_in_the_document(api: Client, doc: dict[str, Any]) -> None:
    routes = _routes(api.app)
    assert len(routes) > 30  # identity, catalogue, phone, sessions, ACD, events, health, this one
    missing = [(m, p) for m, p, _ in routes if m not in doc["paths"].get(p, {})]
    assert missing == []
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(m, p) for m, p, _ in routes}  # and nothing made up


async def test_every_handler_that_reads_a_body_documents_it(api: Client, doc: dict[str, Any]) -> None:
    for method, path, handler in _routes(api.app):
        op = doc["paths"][path][method]
        reads_body = "read_json(" in inspect.getsource(handler)
        assert ("requestBody" in op) == reads_body, (method, path)
        if reads_body:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]


async def test_known_bodies_and_parameters(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    login = schemas["LoginBody"]
    assert login["required"] == ["username", "password"] and login["additionalProperties"] is False
    assert login["properties"]["username"] == {"type": "string", "maxLength": 64}
    push = schemas["PushBody"]
    assert push["properties"]["kind"]["enum"] == ["form", "document", "signature_request"]
    assert push["properties"]["fields"]["items"]["properties"]["kind"]["enum"][0] == "text"
    wrapup = doc["paths"]["/sessions/{session_id}/wrapup"]["post"]
    assert wrapup["parameters"][0]["name"] == "session_id" and wrapup["x-roles"] == ["teller"]
    assert "401" in wrapup["responses"] and "400" in wrapup["responses"]
    ws = doc["paths"]["/ws"]["get"]
    assert ws["x-websocket"] is True and "ping" in ws["x-client-messages"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert doc["paths"]["/phone/start"]["post"]["summary"].startswith("Send a one-time code")


def test_a_handler_can_name_its_body_and_a_route_without_one_has_none() -> None:
    @request_body(PhoneStartBody)
    async def indirect(request: web.Request) -> web.Response:
        return web.json_response({})

    async def direct(request: web.Request) -> web.Response:
        await read_json(request, PhoneStartBody)
        return web.json_response({})

    async def none(request: web.Request) -> web.Response:
        return web.json_response({})

    assert body_model(indirect) is PhoneStartBody
    assert body_model(direct) is PhoneStartBody
    assert body_model(none) is None


def test_a_new_route_appears_without_any_registration() -> None:
    app = web.Application()

    async def added_later(request: web.Request) -> web.Response:
        """A route someone adds tomorrow."""
        return web.json_response({})

    app.router.add_post("/later/{thing_id}", added_later)
    op = document(app)["paths"]["/later/{thing_id}"]["post"]
    assert op["summary"] == "A route someone adds tomorrow." and op["parameters"][0]["name"] == "thing_id"


async def test_the_addresses_cloudbank_up_prints_answer_with_where_to_go_next(aiohttp_client: Any,
                                                                          config: Config) -> None:
    """`/api/` and `/video/` are printed (and linked from the root page): they are not a 404."""
    from cloudbank.platform.server import build_root

    client = await aiohttp_client(build_root(config, ["platform", "video"]))
    api = await (await client.get("/api/")).json()
    assert api["openapi"] == "openapi.json"
    assert (await client.get(f"/api/{api['openapi']}")).status == 200
    video = await client.get("/video/")
    assert video.status == 200 and (await video.json())["signalling"] == "ws"
