"""The platform client: REST calls and the events WebSocket, for kiosks (device token) and phones.

Every refusal becomes a `PlatformError` with the platform's status, code and message. The events
stream reconnects after a drop and resumes after the last event id it delivered, so nothing the
platform published in between is lost (the platform keeps one Redis stream per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import aiohttp

from cloudbank.kiosk_client.errors import PlatformError

log = logging.getLogger("cloudbank.kiosk_client.client")


@dataclass(frozen=True)
class Enrolment:
    device_id: str
    branch_id: str
    token: str


@dataclass(frozen=True)
class VideoGrant:
    """Where and how to join a call: the node's base URL, a join token, ICE servers."""

    url: str
    token: str
    ice_servers: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoGrant:
        return cls(str(body["url"]), str(body["token"]), list(body.get("ice_servers") or []))

    @property
    def ws_url(self) -> str:
        base = self.url if self.url.endswith("/") else self.url + "/"
        return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "ws?" + \
            urlencode({"token": self.token})


@dataclass(frozen=True)
class DeviceStatus:
    """What a kiosk reports in its heartbeat."""

    online: bool
    camera_ok: bool
    microphone_ok: bool
    peripherals_ok: bool
    app_version: str
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"online": self.online, "camera_ok": self.camera_ok, "microphone_ok": self.microphone_ok,
                "peripherals_ok": self.peripherals_ok, "app_version": self.app_version,
                "details": dict(self.details)}


def absolute_video(data: dict[str, Any], server: str) -> dict[str, Any]:
    """`data` with its `video.url` made absolute against the platform's address: a node that shares
    the platform's origin (`cloudbank up`) names itself by path, as a browser resolves it."""
    video = data.get("video")
    if isinstance(video, dict) and isinstance(video.get("url"), str):
        video["url"] = urljoin(server + "/", video["url"])
    return data


class PlatformClient:
    """REST + events client of the platform at `server` (e.g. http://127.0.0.1:8080)."""

    def __init__(self, server: str, token: str | None = None, *, timeout_s: float = 15.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        return f"{self.server}/api/{path.lstrip('/')}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call; returns the decoded JSON body or raises PlatformError."""
        return await self.request_url(method, self.url(path), body)

    async def request_url(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return (await self.exchange(method, url, body))[1]

    async def exchange(self, method: str, url: str, body: dict[str, Any] | None = None,
                       ) -> tuple[int, dict[str, Any]]:
        """(status, decoded JSON) of a successful call; PlatformError for a refusal."""
        try:
            async with self.http.request(method, url, json=body, headers=self._headers()) as resp:
                text = await resp.text()
                try:
                    data = json.loads(text) if text else {}
                except ValueError:
                    data = {"message": text[:200]}
                if resp.status >= 400:
                    raise PlatformError(resp.status, str(data.get("error", "error")),
                                        str(data.get("message", resp.reason)), data)
                return resp.status, absolute_video(data, self.server) if isinstance(data, dict) else {"value": data}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PlatformError(0, "unreachable", f"{method} {url} failed: {type(exc).__name__}: {exc}") from None

    # -- identity -------------------------------------------------------------------------------

    async def enrol(self, code: str, name: str) -> Enrolment:
        """Spend a one-time enrolment code; the client then acts as the device."""
        body = await self.request("POST", "devices/enrol", {"code": code, "name": name})
        self.token = str(body["token"])
        return Enrolment(str(body["device_id"]), str(body["branch_id"]), self.token)

    async def phone_start(self, phone: str) -> str:
        return str((await self.request("POST", "phone/start", {"phone": phone}))["challenge_id"])

    async def phone_verify(self, challenge_id: str, code: str) -> str:
        body = await self.request("POST", "phone/verify", {"challenge_id": challenge_id, "code": code})
        self.token = str(body["token"])
        return str(body["customer_id"])

    async def me(self) -> dict[str, Any]:
        return await self.request("GET", "me")

    async def heartbeat(self, status: DeviceStatus) -> None:
        await self.request("POST", "devices/heartbeat", status.to_json())

    # -- services and tickets -------------------------------------------------------------------

    async def services(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "services"))["services"])

    async def create_ticket(self, service: str) -> dict[str, Any]:
        # No priority class: a customer cannot claim one (staff set elderly or vip on the waiting ticket).
        return dict((await self.request("POST", "tickets", {"service": service}))["ticket"])

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        body = await self.request("GET", f"tickets/{quote(ticket_id, safe='')}")
        return dict(body.get("ticket", body))

    async def leave(self, ticket_id: str) -> None:
        await self.request("DELETE", f"tickets/{quote(ticket_id, safe='')}")

    async def request_callback(self, ticket_id: str, at: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {} if at is None else {"at": at}
        return await self.request("POST", f"tickets/{quote(ticket_id, safe='')}/callback", body)

    # -- sessions -------------------------------------------------------------------------------

    async def join_session(self, session_id: str) -> VideoGrant:
        """A fresh join token for the call (also used to rejoin after a drop)."""
        body = await self.request("POST", f"sessions/{quote(session_id, safe='')}/join")
        return VideoGrant.from_json(body["video"])

    async def respond(self, session_id: str, push_id: str, answer: str, **extra: Any) -> dict[str, Any]:
        """Answer a pushed form (`answer` e.g. "confirm"/"decline"; a signature goes in `extra`)."""
        return await self.request("POST", f"sessions/{quote(session_id, safe='')}/responses",
                                  {"push_id": push_id, "answer": answer, **extra})

    async def rate(self, session_id: str, score: int, comment: str = "") -> dict[str, Any]:
        """Rate the customer's call that ended: 1-5 and an optional comment, once."""
        body = await self.request("POST", f"sessions/{quote(session_id, safe='')}/rating",
                                  {"score": score, "comment": comment})
        return dict(body["rating"])

    async def send_id_card(self, session_id: str, image_data_url: str, side: str = "front") -> dict[str, Any]:
        """Send an ID-card image (a JPEG or PNG data URL) to the call's teller; returns `{id_card, new}`."""
        return await self.request("POST", f"sessions/{quote(session_id, safe='')}/id_card",
                                  {"image": image_data_url, "side": side})

    # -- events ---------------------------------------------------------------------------------

    def events(self, last_id: str = "", *, max_backoff_s: float = 5.0) -> EventStream:
        return EventStream(self, last_id, max_backoff_s)


class EventStream:
    """Async iterator over platform events; reconnects and resumes after the last delivered id.

    `connected` is set once the server said hello (its position in our stream is then fixed, so an
    action taken after that cannot produce an event we miss). Without a `last_id` the first
    connection starts at the stream's current end.

    A 401/403 at connect (revoked or expired token) ends the stream with PlatformError: retrying
    would not help. Network failures retry with capped exponential backoff.
    """

    def __init__(self, client: PlatformClient, last_id: str, max_backoff_s: float) -> None:
        self.client = client
        self.last_id = last_id
        self.max_backoff_s = max_backoff_s
        self.connects = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closed = False
        self.connected = asyncio.Event()

    def _ws_url(self) -> str:
        query: dict[str, str] = {"token": self.client.token or ""}
        if self.last_id:
            query["last_id"] = self.last_id
        base = self.client.url("ws").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}?{urlencode(query)}"

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        backoff = 0.2
        while True:
            try:
                ws = await self.client.http.ws_connect(self._ws_url(), heartbeat=20)
                self.connects += 1
                return ws
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (400, 401, 403, 404):
                    raise PlatformError(exc.status, "ws_refused",
                                        f"the events stream was refused ({exc.status} {exc.message})") from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.info("events: reconnecting after %s", type(exc).__name__)
            if self._closed:
                raise StopAsyncIteration
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff_s, backoff * 2)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while not self._closed:
            try:
                self._ws = await self._connect()
            except StopAsyncIteration:
                return
            try:
                async for msg in self._ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        event = json.loads(msg.data)
                    except ValueError:
                        continue
                    if not isinstance(event, dict):
                        continue
                    absolute_video(event, self.client.server)
                    if event.get("stream_id"):
                        self.last_id = str(event["stream_id"])
                    kind = event.get("type")
                    if kind == "hello":
                        # The server's position in our stream: from here on nothing is missed.
                        self.connected.set()
                        continue
                    if kind == "pong":
                        continue
                    # Errors (rate_limited, token_expired, ...) are delivered; a fatal one closes the
                    # socket and the reconnect then fails with PlatformError if the token is bad.
                    yield event
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await self._ws.close()
            if not self._closed:
                log.info("events: connection dropped; resuming after %s", self.last_id or "the start")

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def drop(self) -> None:
        """Close the current socket (the stream reconnects); used to test and to force a resume."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
