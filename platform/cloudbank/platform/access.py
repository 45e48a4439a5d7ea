"""Who may call each route and send each WebSocket message: the one table the code reads.

`ROUTES` holds, for every (method, route path as mounted by `cloudbank up`) of every service, the
roles that may call it and a note of the object rule its handler applies on top.
`service.access_rules`, a middleware every service app gets from `service_app`, checks the role before the handler runs:
401 without a valid token where sign-in is needed, 403 for a role not in the entry, and 403 (with
an error logged) for a route that has no entry at all, so a new route is closed until it is listed.
Handlers keep their object checks (whose session, which queue); tests/platform/test_access.py calls
every route with every kind of caller from this table.

`EVENTS_MESSAGES` and `SIGNALLING_MESSAGES`: the client message types of the events socket (by
role) and of video signalling (by party in the call), read by those sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

ANONYMOUS = "anonymous"  # no token needed (a token, if sent, is not checked here)
# join: a token scoped to one call session (scope session:<id>), for the video node only.
KINDS = (ANONYMOUS, "device", "phone", "teller", "supervisor", "admin", "join")
SIGNED_IN = ("device", "phone", "teller", "supervisor", "admin")  # any API token
STAFF = ("teller", "supervisor", "admin")

# Where each service is mounted (server.mounts); a service run alone in a test has no prefix.
PREFIXES = {"platform": "/api", "video": "/video", "media": "/media", "seat": "/seat", "phone": "/phone"}

# The object rules, as the handlers apply them (the test asserts the outcome for the "another" kinds).
OWN_SESSION = "the session's customer or teller (another customer or teller: 404; supervisor, admin: 403)"
TELLER_OF_SESSION = "the session's teller (another teller: 404; its customer: 403)"
CUSTOMER_OF_SESSION = "the session's customer (another customer: 404)"
VIEWER = "the session's teller (another teller: 404) or a supervisor of its queue (else 403)"
SUPERVISOR_OF_QUEUE = "a supervisor of the session's queue (else 403)"
OWN_TICKET = "the caller's own ticket (else 404)"
OWN = "the caller's own records"


@dataclass(frozen=True)
class Rule:
    roles: tuple[str, ...]  # KINDS; (ANONYMOUS,) for an open route
    note: str = ""
    url_token: bool = False  # the token may come as ?token= (a socket, a file a media element loads)

    @property
    def open(self) -> bool:
        return ANONYMOUS in self.roles


def anyone(note: str = "") -> Rule:
    return Rule((ANONYMOUS,), note)


def only(*roles: str, note: str = "", url_token: bool = False) -> Rule:
    return Rule(roles, note, url_token)


ROUTES: dict[tuple[str, str], Rule] = {
    # the root of `cloudbank up` (server.build_root)
    ("GET", "/"): anyone("the index of the mounted services"),
    ("GET", "/favicon.ico"): anyone(),
    # platform: identity
    ("GET", "/api/healthz"): anyone(),
    ("GET", "/api/"): anyone("where to go next: the API description and health"),
    ("POST", "/api/login"): anyone("lockout per address and username"),
    ("POST", "/api/users/{user_id}/unlock"): only("admin"),
    ("POST", "/api/logout"): only(*SIGNED_IN, note="revokes the caller's own token"),
    ("GET", "/api/me"): only(*SIGNED_IN, note=OWN),
    ("POST", "/api/devices/enrol"): anyone("a valid one-time enrolment code"),
    ("POST", "/api/devices/heartbeat"): only("device", note="the caller's own device (revoked: 403)"),
    ("GET", "/api/devices"): only("admin", "supervisor"),
    ("POST", "/api/devices/{device_id}/revoke"): only("admin"),
    ("POST", "/api/phone/start"): anyone("rate-limited per number and address"),
    ("POST", "/api/phone/verify"): anyone("a valid one-time code"),
    # platform: catalogue and service definitions
    ("GET", "/api/services"): anyone("staff tokens see every field"),
    ("PUT", "/api/services/{code}"): only("admin"),
    ("GET", "/api/services/{code}/definitions"): only("admin"),
    ("POST", "/api/services/{code}/definitions"): only("admin"),
    ("POST", "/api/services/{code}/definitions/{version}/approve"): only("admin", note="not the maker (else 403)"),
    ("POST", "/api/services/{code}/definitions/{version}/reject"): only("admin"),
    ("GET", "/api/services/{code}/definition"): only(*STAFF),
    # platform: events, the API description
    ("GET", "/api/ws"): only(*SIGNED_IN, note="the caller's own event stream", url_token=True),
    ("GET", "/api/openapi.json"): anyone(),
    # platform: queueing (ACD)
    ("POST", "/api/tickets"): only("device", "phone", note="one active ticket per customer (else 409)"),
    ("GET", "/api/tickets/{ticket_id}"): only("device", "phone", note=OWN_TICKET),
    ("DELETE", "/api/tickets/{ticket_id}"): only("device", "phone", note=OWN_TICKET),
    ("POST", "/api/tickets/{ticket_id}/priority"): only("supervisor", "admin",
                                                       note="a supervisor of the ticket's queue (else 403)"),
    ("POST", "/api/tickets/{ticket_id}/callback"): only("device", "phone", note=OWN_TICKET),
    ("POST", "/api/teller/state"): only("teller", note=OWN),
    ("GET", "/api/teller"): only("teller", note=OWN),
    ("POST", "/api/offers/{offer_id}/accept"): only("teller", note="an offer made to this teller (else 404/409)"),
    ("POST", "/api/offers/{offer_id}/decline"): only("teller", note="an offer made to this teller (else 404/409)"),
    ("GET", "/api/wallboard"): only("supervisor", "admin", note="a supervisor sees the queues they oversee"),
    ("GET", "/api/wallboard/ws"): only("supervisor", "admin", url_token=True),
    ("GET", "/api/metrics"): only("supervisor", "admin"),
    ("GET", "/api/calls"): only("supervisor", "admin", note="a supervisor sees the queues they oversee"),
    ("GET", "/api/tellers"): only("supervisor", "admin", note="a supervisor sees the queues they oversee"),
    # platform: call sessions
    ("GET", "/api/sessions"): only("device", "phone", "teller", note=OWN),
    ("GET", "/api/sessions/{session_id}"): only("device", "phone", "teller", note=OWN_SESSION),
    ("POST", "/api/sessions/{session_id}/join"): only("device", "phone", "teller", note=OWN_SESSION),
    ("POST", "/api/sessions/{session_id}/activate"): only("device", "phone", "teller", note=OWN_SESSION),
    ("POST", "/api/sessions/{session_id}/end"): only("device", "phone", "teller", note=OWN_SESSION),
    ("POST", "/api/sessions/{session_id}/hold"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/resume"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/transfer"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/wrapup"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/monitor"): only("supervisor", note=SUPERVISOR_OF_QUEUE),
    ("POST", "/api/sessions/{session_id}/talk"): only("supervisor", note=SUPERVISOR_OF_QUEUE),
    ("GET", "/api/sessions/{session_id}/history"): only("teller", "supervisor", note=VIEWER),
    ("POST", "/api/sessions/{session_id}/rating"): only("device", "phone", note=CUSTOMER_OF_SESSION),
    # platform: ID cards and checks
    ("POST", "/api/sessions/{session_id}/id_card"): only("device", "phone", note=CUSTOMER_OF_SESSION),
    ("GET", "/api/sessions/{session_id}/id_card"): only("teller", "supervisor", note=VIEWER),
    ("GET", "/api/sessions/{session_id}/id_card/{name}"): only("teller", "supervisor", note=VIEWER),
    ("POST", "/api/sessions/{session_id}/id_check"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/id_check/{check_id}/decision"): only("teller", note=TELLER_OF_SESSION),
    ("GET", "/api/sessions/{session_id}/id_check"): only("teller", "supervisor", note=VIEWER),
    ("GET", "/api/sessions/{session_id}/id_check/{check_id}/{which}.jpg"): only("teller", "supervisor", note=VIEWER),
    # platform: pushes (forms, documents) and the customer's answers
    ("POST", "/api/sessions/{session_id}/push"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/sessions/{session_id}/responses"): only("device", "phone", note=CUSTOMER_OF_SESSION),
    ("GET", "/api/sessions/{session_id}/pushes"): only("teller", "supervisor", note=VIEWER),
    ("GET", "/api/sessions/{session_id}/pushes/{push_id}/signature"): only("teller", "supervisor", note=VIEWER),
    # platform: remote authorisation
    ("POST", "/api/sessions/{session_id}/authorisations"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/authorisations/{authorisation_id}"): only("supervisor", note=SUPERVISOR_OF_QUEUE),
    ("GET", "/api/authorisations/pending"): only("supervisor", "admin", note="a supervisor sees their queues"),
    # platform: work orders
    ("POST", "/api/sessions/{session_id}/work_orders"): only("teller", note=TELLER_OF_SESSION),
    ("GET", "/api/sessions/{session_id}/work_orders"): only("teller", "supervisor", note=VIEWER),
    ("GET", "/api/work_orders/{work_order_id}"): only("teller", "supervisor", note=VIEWER),
    ("POST", "/api/work_orders/{work_order_id}/values"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/work_orders/{work_order_id}/confirm"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/work_orders/{work_order_id}/reopen"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/work_orders/{work_order_id}/complete"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/work_orders/{work_order_id}/cancel"): only("teller", note=TELLER_OF_SESSION),
    ("POST", "/api/work_orders/{work_order_id}/checklist/override"): only("supervisor", note=SUPERVISOR_OF_QUEUE),
    # video node: a join token names the session, the party and the node
    ("GET", "/video/healthz"): anyone(),
    ("GET", "/video/"): anyone("where to go next: signalling and health"),
    ("GET", "/video/ws"): only("join", note="the token's session on this node", url_token=True),
    ("GET", "/video/snapshots/{session}/{name}"): only("join", note="the token's session (else 403)", url_token=True),
    # media platform and admin console
    ("GET", "/media/healthz"): anyone(),
    ("GET", "/media/config.json"): anyone(),
    ("GET", "/media/"): anyone("the admin console's page"),
    ("POST", "/media/api/items"): only("admin"),
    ("GET", "/media/api/items"): only("admin"),
    ("GET", "/media/api/items/{item_id}"): only("admin"),
    ("DELETE", "/media/api/items/{item_id}"): only("admin"),
    ("GET", "/media/api/blobs/{sha256}"): only("admin", "supervisor", "device",
                                               note="a kiosk: only blobs of its branch's playlist (else 404)"),
    ("GET", "/media/api/branches"): only("admin"),
    ("GET", "/media/api/playlists"): only("admin"),
    ("POST", "/media/api/playlists"): only("admin"),
    ("GET", "/media/api/playlists/{playlist_id}"): only("admin"),
    ("POST", "/media/api/playlists/{playlist_id}/versions"): only("admin"),
    ("POST", "/media/api/playlists/{playlist_id}/versions/{version}/approve"): only(
        "admin", note="not the maker (else 403)"),
    ("POST", "/media/api/playlists/{playlist_id}/versions/{version}/reject"): only("admin"),
    ("GET", "/media/api/kiosk/playlist"): only("device", note="the kiosk's own branch"),
    ("GET", "/media/api/openapi.json"): anyone(),
    ("GET", "/media/api/recordings"): only("admin", "supervisor", note="every search audited"),
    ("POST", "/media/api/recordings/scan"): only("admin"),
    ("GET", "/media/api/recordings/{session_id}"): only("admin", "supervisor", note="every view audited"),
    ("POST", "/media/api/recordings/{session_id}/verify"): only("admin", "supervisor"),
    ("GET", "/media/api/recordings/{session_id}/files/{name}"): only("admin", "supervisor", url_token=True,
                                                                      note="every play audited"),
    ("GET", "/media/api/recordings/{session_id}/export"): only("admin"),
    ("GET", "/media/api/settings"): only("admin"),
    ("PUT", "/media/api/settings"): only("admin"),
    ("POST", "/media/api/retention/purge"): only("admin"),
    # teller seat console
    ("GET", "/seat/healthz"): anyone(),
    ("GET", "/seat/config.json"): anyone(),
    ("GET", "/seat/"): anyone("the console's page"),
    ("GET", "/seat/api/branches"): only(*STAFF),
    # phone (H5) client
    ("GET", "/phone/healthz"): anyone(),
    ("GET", "/phone/"): anyone("the phone page"),
}

# Client messages of the events socket (GET /api/ws), by the role of the socket's token.
EVENTS_MESSAGES: dict[str, tuple[str, ...]] = {"ping": SIGNED_IN}

# Client messages of video signalling (GET /video/ws), by the caller's party in the call.
PARTIES = ("customer", "teller", "supervisor")
SIGNALLING_MESSAGES: dict[str, tuple[str, ...]] = {
    "offer": PARTIES, "candidate": PARTIES, "leave": PARTIES, "ping": PARTIES,
    "snapshot": ("teller",),
    "talk": ("supervisor",),  # and only as far as POST sessions/<id>/talk allowed it
}


def rule_for(request: web.Request, service: str) -> tuple[str, Rule | None]:
    """The matched route's key (method, path as mounted) and its entry, if any."""
    route = request.match_info.route
    resource = route.resource
    canonical = resource.canonical if resource is not None else request.path
    prefix = PREFIXES.get(service, "")
    # Mounted (cloudbank up), the resource already carries the prefix; alone (a test app) it does not.
    path = canonical if canonical.startswith(prefix + "/") else prefix + canonical
    method = "GET" if route.method == "HEAD" else route.method
    return f"{method} {path}", ROUTES.get((method, path))
