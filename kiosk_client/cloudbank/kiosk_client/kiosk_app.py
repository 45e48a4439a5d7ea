"""The reference kiosk app: `cloudbank kiosk --server URL [--enrol-code CODE] ...`.

Start-up: load the device credential (or enrol with the one-time code and store it), start the
heartbeat, sync the idle playlist. Then either serve one scripted customer (`--service CODE`,
headless: take a ticket, follow the queue, join the call, answer pushed forms per
`--answer-forms`, leave when the session ends, rating the call `--rating N`) or stay idle playing
the playlist. With a GUI the same steps run from the local browser page that `kiosk_gui` serves on loopback.

Every step is logged as one line "kiosk: <step> ..." so scripts and load tests can follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloudbank.kiosk_client import credentials, forms
from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.errors import CredentialError, KioskError, PlatformError, PlaylistError
from cloudbank.kiosk_client.heartbeat import Check, Heartbeat
from cloudbank.kiosk_client.media_sources import MediaSources, open_sources
from cloudbank.kiosk_client.playlist import PlaylistCache, PlaylistSync

log = logging.getLogger("cloudbank.kiosk")

APP_VERSION = "0.1.0"
FINAL_TICKET_STATES = ("abandoned", "callback", "done")


@dataclass(frozen=True)
class KioskOptions:
    server: str
    data: Path = Path("kiosk-data")
    enrol_code: str | None = None
    name: str = ""
    camera: str | None = None
    video: Path | None = None
    audio: Path | None = None
    microphone: str | None = None
    headless: bool = False
    service: str | None = None
    answer_forms: bool = True
    id_card: Path | None = None
    signature: Path | None = None
    # Headless: the 1-5 score given when the call ends (None: the rating is skipped), and its comment.
    rating: int | None = None
    rating_comment: str = ""
    # Empty: all interfaces, except loopback only when the server itself is on loopback.
    ice_addresses: tuple[str, ...] = ()
    heartbeat_s: float = 30.0
    max_wait_s: float = 1800.0
    call_timeout_s: float = 3600.0
    gui_port: int = 0
    synthetic_source: int = 1

    @property
    def credential_path(self) -> Path:
        return self.data / "device.json"


def loopback_server(server: str) -> bool:
    host = urlsplit(server).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


@dataclass
class Outcome:
    """What happened to one customer visit (for logs, tests and load runs)."""

    ticket_id: str = ""
    session_id: str = ""
    final_state: str = ""
    positions: list[int] = field(default_factory=list)
    pushes_answered: list[str] = field(default_factory=list)
    frames_received: dict[str, int] = field(default_factory=dict)
    stamps_received: int = 0
    rejoins: int = 0
    id_cards_sent: list[str] = field(default_factory=list)
    rated: int | None = None


class Kiosk:
    """One kiosk: credential, platform client, heartbeat, playlist, media and at most one call."""

    def __init__(self, options: KioskOptions, on_step: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.on_step = on_step
        self.client = PlatformClient(options.server)
        self.cache = PlaylistCache(options.data / "playlist")
        self.sources: MediaSources | None = None
        self.heartbeat: Heartbeat | None = None
        self.device_id = ""
        self.call: Call | None = None
        self.ticket_id: str | None = None  # the visit's ticket, to leave the queue when stopped
        self.steps: list[str] = []
        self.ice_addresses: tuple[str, ...] = options.ice_addresses

    def step(self, text: str) -> None:
        line = f"kiosk: {text}"
        self.steps.append(line)
        log.info("%s", line)
        if self.on_step is not None:
            self.on_step(line)

    async def _choose_ice_addresses(self) -> None:
        """Loopback only when the server is on loopback (its video node then gathers only there)."""
        if not self.ice_addresses:
            on_loopback = await asyncio.to_thread(loopback_server, self.options.server)  # may resolve a name
            self.ice_addresses = ("127.0.0.1",) if on_loopback else ()

    # -- start-up -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._credential()
        await self._end_leftover_calls()
        await self._choose_ice_addresses()
        self.sources = open_sources(camera=self.options.camera, video_file=self.options.video,
                                    audio_file=self.options.audio, microphone=self.options.microphone,
                                    synthetic_source=self.options.synthetic_source)
        self.step(f"media video={self.sources.description.get('video')} audio={self.sources.description.get('audio')}")
        sources = self.sources
        peripherals: dict[str, Check] = {}
        if self.options.id_card is not None:
            card = self.options.id_card
            peripherals["id_card_reader"] = lambda: "" if card.is_file() else f"{card} is missing"
        self.heartbeat = Heartbeat(self.client, APP_VERSION, camera_ok=lambda: sources.camera_ok,
                                   microphone_ok=lambda: sources.microphone_ok, peripherals=peripherals,
                                   interval_s=self.options.heartbeat_s)
        status = await self.heartbeat.beat()
        self.step(f"heartbeat sent camera_ok={status.camera_ok} microphone_ok={status.microphone_ok} "
                  f"peripherals_ok={status.peripherals_ok}")
        self.heartbeat.start()
        await self.sync_playlist()

    async def stop_visit(self) -> None:
        """Stopped mid-visit: leave the queue and hang up, so this device holds nothing live."""
        if self.ticket_id is not None:
            with contextlib.suppress(PlatformError):  # not waiting any more: the call is ended below
                await self.client.leave(self.ticket_id)
        await self._end_leftover_calls()
        self.step("stopped: left the queue and hung up")

    async def _end_leftover_calls(self) -> None:
        """A kiosk that starts serves nobody yet. A call an earlier run left open (a crash, a power
        cut) would refuse every new customer's ticket ("you already have a ticket") until a teller
        ended it, so hang it up."""
        for session in (await self.client.request("GET", "sessions")).get("sessions", []):
            with contextlib.suppress(PlatformError):  # it may end on its own meanwhile
                await self.client.request("POST", f"sessions/{session['id']}/end")
                self.step(f"ended session {session['id']} left open by an earlier run")

    async def _credential(self) -> None:
        path = self.options.credential_path
        if self.options.enrol_code:
            name = self.options.name or f"kiosk-{socket.gethostname()}"[:200]
            enrolment = await self.client.enrol(self.options.enrol_code, name)
            credentials.save(path, credentials.new(self.options.server, enrolment.device_id,
                                                   enrolment.branch_id, enrolment.token))
            self.device_id = enrolment.device_id
            self.step(f"enrolled device={enrolment.device_id} branch={enrolment.branch_id} credential={path}")
            return
        cred = credentials.load(path)
        if cred.server != self.options.server.rstrip("/"):
            raise CredentialError(f"the credential at {path} is for {cred.server}, not {self.options.server}; "
                                  f"enrol again with --enrol-code")
        self.client.token = cred.token
        self.device_id = cred.device_id
        self.step(f"credential loaded device={cred.device_id} branch={cred.branch_id}")

    async def sync_playlist(self) -> None:
        sync = PlaylistSync(self.client, self.cache)
        try:
            playlist = await sync.sync()
            self.step(f"playlist {playlist.id} v{playlist.version}: {len(self.cache.playable())} items cached")
        except PlaylistError as exc:
            self.step(f"playlist not updated: {exc}; playing {len(self.cache.playable())} cached items")

    # -- serving a customer ---------------------------------------------------------------------

    async def serve(self, service: str) -> Outcome:
        """One scripted visit: ticket, queue, call, forms, end."""
        outcome = Outcome()
        stream = self.client.events()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def pump() -> None:
            async for event in stream:
                await queue.put(event)

        pump_task = asyncio.create_task(pump())
        try:
            await asyncio.wait_for(asyncio.shield(stream.connected.wait()), 15)
            ticket = await self.client.create_ticket(service)
            outcome.ticket_id = self.ticket_id = str(ticket["id"])
            self._ticket_step(ticket, outcome)
            await self._follow(queue, outcome, pump_task)
        finally:
            await stream.close()
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump_task
            if self.call is not None:
                outcome.frames_received = dict(self.call.remote.frames)
                outcome.stamps_received = len(self.call.remote.stamps)
                outcome.rejoins = self.call.rejoins
                await self.call.leave()
                self.call = None
        self.step(f"visit over ticket={outcome.ticket_id} state={outcome.final_state} "
                  f"frames={outcome.frames_received} pushes={len(outcome.pushes_answered)}")
        return outcome

    def _ticket_step(self, ticket: dict[str, Any], outcome: Outcome) -> None:
        position = ticket.get("position")
        if isinstance(position, int):
            outcome.positions.append(position)
        self.step(f"ticket {ticket.get('id')} {ticket.get('state')} position={position} "
                  f"estimated_wait_s={ticket.get('estimated_wait_s')}")

    async def _follow(self, queue: asyncio.Queue[dict[str, Any]], outcome: Outcome,
                      pump_task: asyncio.Task[None]) -> None:
        deadline = time.monotonic() + self.options.max_wait_s
        while True:
            if pump_task.done() and queue.empty():
                exc = pump_task.exception()
                raise KioskError(f"the events stream ended: {exc}")
            limit = deadline - time.monotonic()
            if limit <= 0:
                await self._leave_queue(outcome, "waited too long")
                return
            try:
                event = await asyncio.wait_for(queue.get(), min(limit, 5.0))
            except TimeoutError:
                continue
            kind = event.get("type")
            if kind == "ticket.update":
                ticket = dict(event.get("ticket") or {})
                if str(ticket.get("id")) != outcome.ticket_id:
                    continue
                self._ticket_step(ticket, outcome)
                if ticket.get("state") in FINAL_TICKET_STATES and self.call is None:
                    outcome.final_state = str(ticket.get("state"))
                    return
            elif kind == "ticket.callback_offer":
                self.step("call-back offered; staying in the queue (a scripted kiosk does not book)")
            elif kind == "session.started":
                await self._start_call(event, outcome)
                deadline = time.monotonic() + self.options.call_timeout_s
            elif kind == "video.rejoin" and self.call is not None:
                self.step("video.rejoin: moving the call")
                await self.call.rejoin(VideoGrant.from_json(event["video"]))
            elif kind == "push":
                await self._answer(forms.Push.from_event(event), outcome)
            elif kind == "session.update":
                session = event.get("session") or {}
                self.step(f"session {outcome.session_id} {session.get('state') if isinstance(session, dict) else ''}")
            elif kind == "session.ended":
                outcome.final_state = "done"
                self.step(f"session {outcome.session_id} ended")
                await self._rate(outcome)
                return
            elif kind == "error":
                self.step(f"platform says {event.get('code')}: {event.get('message')}")

    async def _start_call(self, event: dict[str, Any], outcome: Outcome) -> None:
        session = event.get("session")
        session_id = str(session.get("id") if isinstance(session, dict) else session or event.get("session_id"))
        outcome.session_id = session_id
        grant = VideoGrant.from_json(event["video"]) if event.get("video") else \
            await self.client.join_session(session_id)
        assert self.sources is not None

        async def refresh() -> VideoGrant:
            return await self.client.join_session(session_id)

        self.step(f"session {session_id} started; joining the video node {grant.url}")
        self.call = Call(grant, self.sources, refresh=refresh, ice_addresses=self.ice_addresses)
        await self.call.join()
        self.step(f"call connected peers={sorted(self.call.peers)}")
        try:
            await self.client.request("POST", f"sessions/{session_id}/activate")
        except PlatformError as exc:
            self.step(f"session {session_id} not marked active: {exc.message}")
        if self.options.id_card is not None:
            # A failure is logged, not fatal: the call goes on and the teller can ask for the card.
            try:
                card = await self.send_id_card(session_id)
                outcome.id_cards_sent.append(str(card["sha256"]))
            except (PlatformError, KioskError) as exc:
                self.step(f"id card not sent: {exc}")

    async def _rate(self, outcome: Outcome) -> None:
        """Give the ended call the scripted rating (a refusal is logged, not fatal: the visit was served)."""
        if self.options.rating is None or not outcome.session_id:
            return
        try:
            body = await self.client.rate(outcome.session_id, self.options.rating, self.options.rating_comment)
        except PlatformError as exc:
            self.step(f"rating not taken: {exc.message}")
            return
        outcome.rated = int(body["score"])
        self.step(f"rated session {outcome.session_id} score={outcome.rated}")

    async def send_id_card(self, session_id: str, side: str = "front") -> dict[str, Any]:
        """Read the card (its file stands in for the reader) and send it to the call's teller."""
        if self.options.id_card is None:
            raise KioskError("this kiosk has no ID-card reader (start it with --id-card FILE)")
        data = await asyncio.to_thread(forms.read_id_card, self.options.id_card)
        card = await forms.send_id_card(self.client, session_id, data, side)
        self.step(f"id card sent {card['name']} sha256={card['sha256']} bytes={card['bytes']}")
        return card

    async def _answer(self, push: forms.Push, outcome: Outcome) -> None:
        accept = self.options.answer_forms
        signature = self.options.signature.read_bytes() if self.options.signature else None
        try:
            await forms.answer(self.client, push, accept=accept, signature_png=signature)
        except (PlatformError, KioskError) as exc:
            self.step(f"push {push.push_id} ({push.kind}) could not be answered: {exc}")
            return
        outcome.pushes_answered.append(push.push_id)
        self.step(f"push {push.push_id} {push.kind} '{push.title}' answered {'accept' if accept else 'decline'}")

    async def _leave_queue(self, outcome: Outcome, why: str) -> None:
        with contextlib.suppress(PlatformError):
            await self.client.leave(outcome.ticket_id)
        outcome.final_state = "abandoned"
        self.step(f"left the queue: {why}")

    # -- idle -----------------------------------------------------------------------------------

    async def idle(self, stop: asyncio.Event, resync_s: float = 300.0) -> None:
        """Play the cached playlist (logging each item) until `stop`; re-sync now and then."""
        next_sync = time.monotonic() + resync_s
        while not stop.is_set():
            items = self.cache.playable()
            if not items:
                self.step("idle: nothing to play")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(30.0, resync_s))
            for item in items:
                self.step(f"idle: playing {item.kind} {item.name or item.id} ({item.duration_s:g} s)")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), item.duration_s)
                if stop.is_set():
                    return
            if time.monotonic() >= next_sync:
                await self.sync_playlist()
                next_sync = time.monotonic() + resync_s

    async def close(self) -> None:
        if self.call is not None:
            await self.call.leave()
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        if self.sources is not None:
            self.sources.stop()
        await self.client.close()



async def run(options: KioskOptions, stop: asyncio.Event | None = None) -> int:
    """The `cloudbank kiosk` command body; returns the exit status."""
    stop = stop or asyncio.Event()
    kiosk = Kiosk(options)
    try:
        await kiosk.start()
        if options.service:
            return await _serve_until_stopped(kiosk, options.service, stop)
        if options.headless:
            await kiosk.idle(stop)
            return 0
        from cloudbank.kiosk_client.kiosk_gui import serve_gui

        await serve_gui(kiosk, stop)
        return 0
    finally:
        await kiosk.close()


async def _serve_until_stopped(kiosk: Kiosk, service: str, stop: asyncio.Event) -> int:
    """One visit (0 = served). SIGTERM or Ctrl-C stops it (1) instead of waiting for the call to end."""
    visit = asyncio.create_task(kiosk.serve(service))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({visit, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if visit.done():
        return 0 if visit.result().final_state == "done" else 1
    visit.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await visit
    await kiosk.stop_visit()
    return 1
