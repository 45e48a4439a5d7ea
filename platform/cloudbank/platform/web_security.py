"""What every reply and every WebSocket of every cloudbank app enforces, set once for all of them.

- **Headers on every reply** to a routed request: success, JSON refusal, aiohttp's own 404/405/500,
  static files, WebSocket upgrades and the root page. A Content-Security-Policy that runs no inline
  script and lets no page frame ours (`frame-ancestors 'none'`), nosniff, `Referrer-Policy:
  no-referrer` (media elements carry a token in their URL), a Permissions-Policy, HSTS when served
  over TLS, `Cache-Control: no-store` on JSON (tokens travel in it) unless the handler chose one,
  and a `Server` header that names no versions. They are set in `on_response_prepare`, which
  aiohttp runs for each response it sends, so no middleware order or escaping exception skips them.
- **Body limits**: a body declared longer than the app's limit is refused (413) before any handler
  runs, whether or not it would read it; a route that streams its body to disk under a limit of its
  own (`streams_body`) is the exception.
- **WebSocket origins**: a browser page of a foreign origin may not open our sockets (403 before the
  upgrade). Same-origin pages, the configured sites and clients that send no `Origin` (the SDK, the
  kiosk app) may.

The one exception: a request the HTTP parser rejects before routing (a malformed request line) gets
aiohttp's bare 400, with none of this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from cloudbank.platform.errors import Forbidden, TooLarge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER = "cloudbank"
HSTS = "max-age=31536000"
# Replies that are not pages (JSON, files, the root index): nothing may run, only our icon shows.
API_CSP = "; ".join(["default-src 'none'", "img-src 'self'", "base-uri 'none'", "form-action 'none'",
                     "frame-ancestors 'none'"])
NO_DEVICES = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
CAMERA_AND_MIC = "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()"


def page_csp(connect: str = "'self'", media: str = "'self' blob:") -> str:
    """A browser app's policy: only our own modules and styles run (no inline script or style, no
    eval, no third-party origin); `connect` and `media` are what differs between the apps."""
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # Snapshots and previews are same-origin URLs or blobs fetched with the token.
        "img-src 'self' data: blob:",
        f"media-src {media}",
        f"connect-src {connect}",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


@dataclass(frozen=True)
class Policy:
    csp: str = API_CSP
    permissions: str = NO_DEVICES
    # The public URL is https: HSTS even when a proxy in front terminates TLS.
    https: bool = False


POLICY = web.AppKey("web_policy", Policy)


def protect(app: web.Application, policy: Policy) -> None:
    """Every reply `app` sends carries `policy`'s headers (a sub-app's own policy wins inside it)."""
    app[POLICY] = policy
    app.on_response_prepare.append(_headers)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    # Each app on the request's path runs this; the innermost app's policy decides, so every run
    # sets the same values.
    policy = next((app[POLICY] for app in reversed(request.match_info.apps) if POLICY in app), Policy())
    headers = response.headers
    headers[hdrs.SERVER] = SERVER
    headers["Content-Security-Policy"] = policy.csp
    headers["Permissions-Policy"] = policy.permissions
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers that predate it
    headers["Referrer-Policy"] = "no-referrer"
    if policy.https or request.secure:
        headers["Strict-Transport-Security"] = HSTS
    if hdrs.CACHE_CONTROL not in headers and response.content_type == "application/json":
        headers[hdrs.CACHE_CONTROL] = "no-store"


# -- body limits ---------------------------------------------------------------------------------

STREAMS_BODY = "__cloudbank_streams_body__"


def streams_body(handler: Handler) -> Handler:
    """Mark a handler that reads its body as a stream and enforces its own (larger) limit."""
    setattr(handler, STREAMS_BODY, True)
    return handler


def body_limit(max_bytes: int) -> Middleware:
    """A middleware refusing bodies declared longer than `max_bytes` (a body read without a length
    is still held to the app's `client_max_size` by aiohttp)."""

    @web.middleware
    async def check_length(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_bytes and not getattr(request.match_info.handler, STREAMS_BODY, False):
            raise TooLarge(f"the body is too large: the limit is {max_bytes} bytes", limit=max_bytes)
        return await handler(request)

    return check_length


# -- WebSocket origins ---------------------------------------------------------------------------


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased ("" when it has none)."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def origin_allowed(origin: str, own: str, sites: Iterable[str]) -> bool:
    """`origin` is the request's own, or one of `sites` (`scheme://host:*` allows any port)."""
    origin = origin.strip().lower()
    if origin == own.lower():
        return True
    for site in sites:
        if site.endswith(":*"):
            prefix = site[:-1]
            if origin.startswith(prefix) and origin[len(prefix):].isdigit():
                return True
        elif origin == site:
            return True
    return False


def is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def websocket_origins(sites: Iterable[str]) -> Middleware:
    """A middleware refusing WebSocket upgrades from pages of other origins than the request's own
    and `sites`. No `Origin` header: not a browser (a browser always sends one on a WebSocket)."""
    allowed = tuple(s.lower() for s in sites if s)

    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and is_websocket(request) and not origin_allowed(
                origin, f"{request.scheme}://{request.host}", allowed):
            raise Forbidden(f"a page of {origin[:100]!r} may not open this socket; only this site's pages "
                            f"and the configured allowed_origins may", code="origin_refused")
        return await handler(request)

    return check_origin
