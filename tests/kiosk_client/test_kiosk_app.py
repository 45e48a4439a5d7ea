"""The reference kiosk app headless, end to end: `cloudbank kiosk ... --headless --service general`
as a real process against the real platform and video node, served by a teller (the SDK); and the
start-up refusals (wrong code, tampered credential, revoked device) that must change nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloudbank.kiosk_client import credentials
from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.errors import CredentialError, PlatformError
from cloudbank.kiosk_client.kiosk_app import Kiosk, KioskOptions
from cloudbank.kiosk_client.media_sources import synthetic

from .conftest import Stack, Teller, until

TELLER_SOURCE = 22


async def _kiosk_process(stack: Stack, data: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloudbank.platform", "kiosk", "--server", stack.url, "--kiosk-data", str(data),
        "--headless", "--ice-address", "127.0.0.1", "--heartbeat-s", "5", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def _serve_one_call(teller: Teller, *, push_form: bool = True, id_card: bool = False) -> tuple[str, Call]:
    """The teller side of one visit: accept, join with stamped video, push a form and a signature
    request, wait for both answers (and the customer's ID card, when one is due), then hang up."""
    session_id, grant = await teller.accept_next(timeout=60)
    call = Call(grant, synthetic(TELLER_SOURCE), ice_addresses=["127.0.0.1"])
    await call.join()
    await call.wait_for(lambda: len(call.remote.stamps) >= 10, 30)
    if push_form:
        await teller.push(session_id, {"kind": "form", "title": "Confirm", "fields": [
            {"name": "agree", "label": "I agree", "kind": "checkbox", "required": True}]})
        await teller.push(session_id, {"kind": "signature_request", "title": "Sign here"})
        await until(lambda: len(teller.of_type("push.response")) == 2, 30, "two answers")
    if id_card:
        await until(lambda: bool(teller.of_type("id_card")), 30, "the customer's ID card")
    await teller.client.request("POST", f"sessions/{session_id}/end")
    return session_id, call


@pytest.mark.slow
async def test_headless_kiosk_serves_one_customer_end_to_end(stack: Stack, teller: Teller, tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    code = await stack.directory.create_enrolment_code("demo")
    card = tmp_path / "card.jpg"
    ok, jpg = cv2.imencode(".jpg", np.random.default_rng(3).integers(0, 255, (214, 340, 3), dtype=np.uint8))
    assert ok
    card.write_bytes(jpg.tobytes())
    proc = await _kiosk_process(stack, data, "--enrol-code", code, "--service", "general", "--answer-forms", "yes",
                                "--name", "lobby-kiosk", "--id-card", str(card))
    call = None
    try:
        session_id, call = await _serve_one_call(teller, id_card=True)
        # The teller fetches the card the kiosk read from its file, byte for byte.
        (event,) = teller.of_type("id_card")
        assert event["session_id"] == session_id and event["side"] == "front"
        bearer = {"Authorization": f"Bearer {teller.client.token}"}
        async with teller.client.http.get(f"{stack.url}{event['url']}", headers=bearer) as got:
            assert got.status == 200 and await got.read() == card.read_bytes()
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if call is not None:
            await call.leave()
            call.sources.stop()
    log = out.decode()
    assert proc.returncode == 0, log
    for step in ("kiosk: enrolled device=", "kiosk: heartbeat sent camera_ok=True", "kiosk: ticket ",
                 "kiosk: call connected", "answered accept", "kiosk: session", "ended", "state=done",
                 f"kiosk: id card sent front-{event['sha256'][:32]}.jpg"):
        assert step in log, f"missing {step!r} in:\n{log}"
    # The kiosk saw the teller's stamped frames.
    assert "'video': " in log
    responses = teller.of_type("push.response")
    assert [r["answer"] for r in responses] == ["accept", "accept"]
    assert responses[0]["values"] == {"agree": "true"} and responses[1]["signature_sha256"]
    # The credential was stored privately and the heartbeat reached the platform.
    assert stat.S_IMODE((data / "device.json").stat().st_mode) == 0o600
    (device,) = await stack.directory.list_devices()
    assert device["name"] == "lobby-kiosk" and device["status"]["camera_ok"] is True
    assert device["status"]["app_version"]


@pytest.mark.slow
async def test_headless_kiosk_declines_forms_when_told(stack: Stack, teller: Teller, tmp_path: Path) -> None:
    kiosk = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "k", headless=True,
                               enrol_code=await stack.directory.create_enrolment_code("demo"),
                               answer_forms=False, ice_addresses=("127.0.0.1",)))
    await kiosk.start()
    call = None
    try:
        visit = asyncio.create_task(kiosk.serve("general"))
        _, call = await _serve_one_call(teller)
        outcome = await asyncio.wait_for(visit, 30)
    finally:
        await kiosk.close()
        if call is not None:
            await call.leave()
            call.sources.stop()
    assert outcome.final_state == "done" and len(outcome.pushes_answered) == 2
    assert [r["answer"] for r in teller.of_type("push.response")] == ["decline", "decline"]
    assert outcome.frames_received["video"] > 0 and outcome.stamps_received > 0


async def test_wrong_code_exits_2_and_stores_nothing(stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    proc = await _kiosk_process(stack, data, "--enrol-code", "AAAAAA-BBBBBB-CCCCCC")
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "cloudbank kiosk: error:" in out.decode() and "enrolment code" in out.decode()
    assert not (data / "device.json").exists()
    assert await stack.directory.list_devices() == []


async def test_a_reused_code_is_refused_and_keeps_the_first_kiosk(stack: Stack, tmp_path: Path) -> None:
    code = await stack.directory.create_enrolment_code("demo")
    first = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "a", enrol_code=code, headless=True))
    await first.start()
    await first.close()
    second = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "b", enrol_code=code, headless=True))
    with pytest.raises(PlatformError) as refused:
        await second.start()
    await second.close()
    assert refused.value.status == 401
    assert not (tmp_path / "b" / "device.json").exists()
    assert len(await stack.directory.list_devices()) == 1
    # The first kiosk starts again from its stored credential, without a code.
    again = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "a", headless=True))
    await again.start()
    await again.close()
    assert any("credential loaded" in s for s in again.steps)


async def test_tampered_credential_and_revoked_device_are_refused(stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    kiosk = Kiosk(KioskOptions(server=stack.url, data=data, headless=True,
                               enrol_code=await stack.directory.create_enrolment_code("demo")))
    await kiosk.start()
    await kiosk.close()
    path = data / "device.json"
    original = path.read_bytes()
    body = json.loads(original)
    body["branch_id"] = "other-branch"
    path.write_text(json.dumps(body))
    os.chmod(path, 0o600)
    tampered = Kiosk(KioskOptions(server=stack.url, data=data, headless=True))
    with pytest.raises(CredentialError, match="modified"):
        await tampered.start()
    await tampered.close()
    # A credential for another server is refused too.
    path.write_bytes(original)
    elsewhere = Kiosk(KioskOptions(server="http://127.0.0.2:9", data=data, headless=True))
    with pytest.raises(CredentialError, match="is for"):
        await elsewhere.start()
    await elsewhere.close()
    (device,) = await stack.directory.list_devices()
    seen = device["last_seen"]
    await stack.directory.revoke_device(device["id"])
    revoked = Kiosk(KioskOptions(server=stack.url, data=data, headless=True))
    with pytest.raises(PlatformError) as refused:
        await revoked.start()
    await revoked.close()
    assert refused.value.status == 403 and "revoked" in refused.value.message
    (after,) = await stack.directory.list_devices()
    assert after["last_seen"] == seen
    assert credentials.load(path).device_id == device["id"]


async def test_a_restarted_kiosk_hangs_up_the_call_a_crash_left_open(stack: Stack, teller: Teller,
                                                                     tmp_path: Path) -> None:
    def options(code: str | None = None) -> KioskOptions:
        return KioskOptions(server=stack.url, data=tmp_path / "k", headless=True, enrol_code=code,
                            ice_addresses=("127.0.0.1",))

    first = Kiosk(options(await stack.directory.create_enrolment_code("demo")))
    await first.start()
    try:
        await first.client.create_ticket("general")
        session_id, _ = await teller.accept_next(timeout=30)
    finally:
        await first.close()  # a crash: nobody hung up, so the device still holds the live ticket

    again = Kiosk(options())
    await again.start()
    try:
        session = (await teller.client.request("GET", f"sessions/{session_id}"))["session"]
        assert session["state"] == "wrap_up"
        # The next customer gets a ticket (it was "409: you already have a ticket; leave it first").
        assert (await again.client.create_ticket("general"))["state"] in ("waiting", "offered")
    finally:
        await again.close()


async def test_sigterm_while_waiting_leaves_the_queue_and_exits(stack: Stack, tmp_path: Path) -> None:
    # Nobody is ready, so the visit waits; an operator stopping the kiosk must not wait with it.
    code = await stack.directory.create_enrolment_code("demo")
    proc = await _kiosk_process(stack, tmp_path / "kiosk", "--enrol-code", code, "--service", "general")
    try:
        assert proc.stdout is not None
        seen = b""
        while b"kiosk: ticket " not in seen:
            seen += await asyncio.wait_for(proc.stdout.readline(), 30)
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = (seen + out).decode()
    assert proc.returncode == 1, log
    assert "kiosk: stopped: left the queue and hung up" in log
