"""The SDK end to end against the real platform and video node on loopback: a kiosk enrols, takes
a ticket, a teller (also the SDK) accepts, both send pixel-stamped video that the other side
decodes and reads back, the kiosk answers a form and signs, drops its connection and rejoins."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest

from cloudbank.kiosk_client import forms
from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.errors import CallError, KioskError, PlatformError
from cloudbank.kiosk_client.media_sources import synthetic

from .conftest import Stack, Teller, until

pytestmark = pytest.mark.slow
KIOSK_SOURCE, TELLER_SOURCE = 11, 22


def _from(call: Call, source: int) -> list[int]:
    return [counter for src, counter in call.remote.stamps if src == source]


async def _kiosk(stack: Stack) -> tuple[PlatformClient, list[dict[str, Any]], Any]:
    client = PlatformClient(stack.url)
    await client.enrol(await stack.directory.create_enrolment_code("demo"), "kiosk-1")
    got: list[dict[str, Any]] = []
    stream = client.events()

    async def pump() -> None:
        async for event in stream:
            got.append(event)

    task = asyncio.create_task(pump())
    await stream.wait_connected()
    return client, got, (stream, task)


async def test_kiosk_and_teller_call_with_forms_signature_and_rejoin(stack: Stack, teller: Teller) -> None:
    kiosk, kiosk_events, (stream, task) = await _kiosk(stack)
    kiosk_media, teller_media = synthetic(KIOSK_SOURCE), synthetic(TELLER_SOURCE, tone_hz=660)
    kiosk_call = teller_call = None
    try:
        ticket = await kiosk.create_ticket("general")
        assert ticket["state"] in ("waiting", "offered") and "estimated_wait_s" in ticket
        session_id, teller_grant = await teller.accept_next()
        await until(lambda: any(e["type"] == "session.started" for e in kiosk_events), what="session.started")
        started = next(e for e in kiosk_events if e["type"] == "session.started")
        assert started["session"]["id"] == session_id

        teller_call = Call(teller_grant, teller_media, ice_addresses=["127.0.0.1"])
        kiosk_call = Call(await kiosk.join_session(session_id), kiosk_media, ice_addresses=["127.0.0.1"],
                          refresh=lambda: kiosk.join_session(session_id))
        await teller_call.join()
        await kiosk_call.join()
        await kiosk.request("POST", f"sessions/{session_id}/activate")

        # Frames both ways, decoded and read back by stamp.
        await until(lambda: len(_from(kiosk_call, TELLER_SOURCE)) >= 15 and
                    len(_from(teller_call, KIOSK_SOURCE)) >= 15, 30, "stamped frames both ways")
        for seen in (_from(kiosk_call, TELLER_SOURCE), _from(teller_call, KIOSK_SOURCE)):
            assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert kiosk_call.remote.frames["audio"] > 10 and teller_call.remote.frames["audio"] > 10

        # A form: the kiosk accepts with values; the teller is told.
        form = await teller.push(session_id, {"kind": "form", "title": "Confirm your address", "fields": [
            {"name": "address", "label": "Address", "value": "1 Main St", "required": True},
            {"name": "agree", "label": "I agree", "kind": "checkbox", "required": True}]})
        await until(lambda: any(e.get("push_id") == form["push_id"] for e in kiosk_events), what="the push")
        push = forms.Push.from_event(next(e for e in kiosk_events if e.get("push_id") == form["push_id"]))
        assert push.kind == "form" and push.session_id == session_id
        await forms.answer(kiosk, push, accept=True)
        await until(lambda: bool(teller.of_type("push.response")), what="the teller hearing the answer")
        response = teller.of_type("push.response")[-1]
        assert response["answer"] == "accept" and response["values"] == {"address": "1 Main St", "agree": "true"}
        with pytest.raises(PlatformError) as again:
            await forms.answer(kiosk, push, accept=False)
        assert again.value.status == 409

        # A signature: an oversized one is refused before and by the platform; the real one arrives.
        sig = await teller.push(session_id, {"kind": "signature_request", "title": "Sign the form"})
        await until(lambda: any(e.get("push_id") == sig["push_id"] for e in kiosk_events), what="the request")
        sig_push = forms.Push.from_event(next(e for e in kiosk_events if e.get("push_id") == sig["push_id"]))
        huge = b"\x89PNG\r\n\x1a\n" + b"\0" * (300 * 1024)
        with pytest.raises(KioskError, match="at most"):
            await forms.answer(kiosk, sig_push, accept=True, signature_png=huge)
        with pytest.raises(PlatformError) as too_big:
            await kiosk.respond(session_id, sig["push_id"], "accept",
                                signature="data:image/png;base64," + base64.b64encode(huge).decode())
        assert too_big.value.status in (400, 413)
        assert len(teller.of_type("push.response")) == 1   # nothing changed
        png = forms.draw_signature()
        await forms.answer(kiosk, sig_push, accept=True, signature_png=png)
        await until(lambda: len(teller.of_type("push.response")) == 2, what="the signature")
        assert teller.of_type("push.response")[-1]["signature_sha256"] == hashlib.sha256(png).hexdigest()

        # Someone else's session: another kiosk cannot answer or join it.
        other = PlatformClient(stack.url)
        await other.enrol(await stack.directory.create_enrolment_code("demo"), "kiosk-2")
        with pytest.raises(PlatformError) as foreign:
            await other.join_session(session_id)
        assert foreign.value.status == 404
        await other.close()

        # The kiosk's connection drops: it rejoins with a fresh token and media flows again.
        before_kiosk = max(_from(teller_call, KIOSK_SOURCE))
        before_teller = max(_from(kiosk_call, TELLER_SOURCE))
        await kiosk_call.drop()
        await until(lambda: kiosk_call.rejoins >= 1 and kiosk_call.state == "connected", 30, "the rejoin")
        await until(lambda: max(_from(teller_call, KIOSK_SOURCE)) > before_kiosk + 15 and
                    max(_from(kiosk_call, TELLER_SOURCE)) > before_teller + 15, 30, "media after the rejoin")

        # The teller hangs up: the kiosk hears it.
        await teller.client.request("POST", f"sessions/{session_id}/end")
        await until(lambda: any(e["type"] == "session.ended" for e in kiosk_events), what="session.ended")
    finally:
        for call in (kiosk_call, teller_call):
            if call is not None:
                await call.leave()
        kiosk_media.stop()
        teller_media.stop()
        await stream.close()
        task.cancel()
        await kiosk.close()


async def test_a_bad_or_foreign_join_token_is_refused(stack: Stack, teller: Teller) -> None:
    kiosk, _events, (stream, task) = await _kiosk(stack)
    media = synthetic(KIOSK_SOURCE)
    try:
        await kiosk.create_ticket("general")
        session_id, teller_grant = await teller.accept_next()
        forged = VideoGrant(teller_grant.url, teller_grant.token[:-4] + "AAAA")
        with pytest.raises(CallError, match="refused"):
            await Call(forged, media, ice_addresses=["127.0.0.1"], connect_timeout_s=5).join()
        with pytest.raises(CallError, match="refused"):
            await Call(VideoGrant(teller_grant.url, kiosk.token or ""), media, connect_timeout_s=5).join()
        # The session is untouched: the real customer can still join it.
        call = await Call.for_session(kiosk, session_id, media, ice_addresses=["127.0.0.1"])
        await call.join()
        assert call.state == "connected"
        await call.leave()
    finally:
        media.stop()
        await stream.close()
        task.cancel()
        await kiosk.close()
