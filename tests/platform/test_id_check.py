"""The ID check through the platform app with the real dlib face models and real photos (scikit-image's
astronaut, matplotlib's Grace Hopper): the customer's kiosk sends an ID-card image, the video node has
stored a snapshot of the customer's video (written here as the node writes it: the JPEG under
recordings/<session>/snapshots/ and its `snapshot.taken` record), the session's teller runs the check,
sees the band and records their own decision. Bad input changes nothing.

Calls start the real way (kiosk ticket, teller accepts the ACD's offer) on the demo's wealth service,
whose approved definition lets the teller open a work order that the check is attached to.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.face_match import LIKELY_SAME_BELOW, DlibFaceMatcher, band
from cloudbank.platform.id_cards import MAX_ID_CARD_BYTES
from cloudbank.platform.identity import Directory
from cloudbank.platform.seed import seed_demo
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, REDIS

from .test_work_orders import Call, Client, MakeClient, call, ok, person, post, refused

_spec = importlib.util.spec_from_file_location("face_media", Path(__file__).parents[1] / "seat" / "face_media.py")
assert _spec is not None and _spec.loader is not None
face_media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(face_media)


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config))
    await seed_demo(Directory(client.app[ENGINE]))  # the demo catalogue and its approved wealth definition
    await client.app[REDIS].hset("video:nodes", "node-a", json.dumps({
        "id": "node-a", "url": "http://127.0.0.1:9/node-a/", "calls": 0, "cpu": 0.1, "draining": False,
        "heartbeat_at": 0}))
    await client.app[REDIS].set("video:node:node-a:alive", "1", ex=60)
    return client


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def no_face_jpeg() -> bytes:
    import skimage

    bgr = cv2.imread(str(Path(skimage.__file__).parent / "data" / "coffee.png"), cv2.IMREAD_COLOR)
    return face_media.jpeg(bgr)


async def send_card(api: Client, c: Call, raw: bytes) -> dict[str, Any]:
    return (await ok(await post(api, f"/sessions/{c.sid}/id_card", c.customer, {"image": data_url(raw)}), 201))[
        "id_card"]


async def store_snapshot(api: Client, c: Call, raw: bytes, number: int = 1) -> str:
    """What the video node's SnapshotTaker does with a keyframe: the file, then its audit record."""
    config: Config = api.app[CONFIG]
    rel = Path("recordings") / c.sid / "snapshots" / f"customer-{number:04d}.jpg"
    (config.data / rel).parent.mkdir(parents=True, exist_ok=True)
    (config.data / rel).write_bytes(raw)
    await api.app[AUDIT].append("video:node-a", "snapshot.taken", f"session:{c.sid}", {
        "files": [{"path": str(rel), "sha256": hashlib.sha256(raw).hexdigest()}], "faces": 1,
        "requested_by": "teller", "party": "customer"})
    return rel.name


async def actions(api: Client, subject: str) -> list[str]:
    return [r.action for r in await api.app[AUDIT].records(subject=subject)]


def crops(config: Config, sid: str) -> list[Path]:
    folder = config.data / "id_checks" / sid
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def test_the_same_person_is_likely_the_same_and_the_teller_decides(api: Client, config: Config) -> None:
    c = await call(api)
    wo = (await ok(await post(api, f"/sessions/{c.sid}/work_orders", c.teller, {}), 201))["work_order"]
    card = await send_card(api, c, face_media.id_card_jpeg("astronaut"))  # scaled, turned, darkened, on a card
    shot = await store_snapshot(api, c, face_media.jpeg(face_media.photo("astronaut")))
    check = (await ok(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                                 {"id_card": card["name"], "snapshot": shot}), 201))["id_check"]
    assert check["band"] == "likely_same" and 0 < check["distance"] < LIKELY_SAME_BELOW, check
    assert check["decision"] is None and check["work_order_id"] == wo["id"]
    assert check["id_card"]["sha256"] == card["sha256"] and check["id_card"]["face"]["faces"] == 1
    # Both crops are served to the teller, square JPEGs around the face.
    for which in ("id_card", "snapshot"):
        resp = await api.get(check[which]["crop_url"][len("/api"):], headers=c.teller.headers)
        assert resp.status == 200 and resp.content_type == "image/jpeg"
        raw = await resp.read()
        assert hashlib.sha256(raw).hexdigest() == check[which]["crop_sha256"]
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape[0] == img.shape[1] > 100
    # On the chain, under the session (with the crops' files) and under the work order.
    assert "session.id_check" in await actions(api, f"session:{c.sid}")
    [wo_record] = [r for r in await api.app[AUDIT].records(subject=f"work_order:{wo['id']}")
                   if r.action == "work_order.id_check"]
    assert wo_record.details["band"] == "likely_same" and wo_record.details["id_card"]["sha256"] == card["sha256"]
    assert (await api.app[AUDIT].verify(base=config.data)).ok

    # The band never approves anything: the teller's decision does, once.
    decided = (await ok(await post(api, f"/sessions/{c.sid}/id_check/{check['id']}/decision", c.teller,
                                   {"decision": "accept", "note": "matches the card"})))["id_check"]
    assert decided["decision"]["decision"] == "accept" and decided["decision"]["by"] == c.teller.id
    await refused(await post(api, f"/sessions/{c.sid}/id_check/{check['id']}/decision", c.teller,
                             {"decision": "reject"}), 409, "already decided")
    listed = (await ok(await api.get(f"/sessions/{c.sid}/id_check", headers=c.teller.headers)))["id_checks"]
    assert [x["decision"]["decision"] for x in listed] == ["accept"]
    assert "work_order.id_check_decision" in await actions(api, f"work_order:{wo['id']}")


async def test_two_different_people_are_different(api: Client) -> None:
    c = await call(api)
    card = await send_card(api, c, face_media.id_card_jpeg("grace_hopper"))
    shot = await store_snapshot(api, c, face_media.jpeg(face_media.photo("astronaut")))
    check = (await ok(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                                 {"id_card": card["name"], "snapshot": shot}), 201))["id_check"]
    assert check["band"] == "different" and check["distance"] >= 0.6, check
    assert check["work_order_id"] is None  # no work order open in this call
    # The teller may still accept: it is their call, and it is recorded as theirs.
    await ok(await post(api, f"/sessions/{c.sid}/id_check/{check['id']}/decision", c.teller, {"decision": "reject"}))


async def test_an_image_without_a_face_says_no_face_found(api: Client, config: Config) -> None:
    c = await call(api)
    card = await send_card(api, c, face_media.id_card_jpeg("astronaut"))
    shot = await store_snapshot(api, c, no_face_jpeg())
    check = (await ok(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                                 {"id_card": card["name"], "snapshot": shot}), 201))["id_check"]
    assert check["band"] == "no_face" and check["distance"] is None
    assert check["snapshot"]["face"] is None and "crop_url" not in check["snapshot"]
    assert check["id_card"]["face"] is not None
    assert [p.name for p in crops(config, c.sid)] == [f"{check['id']}-id_card.jpg"]


def test_the_band_edges() -> None:
    assert [band(d) for d in (None, 0.0, 0.49, 0.5, 0.59, 0.6, 1.2)] == [
        "no_face", "likely_same", "likely_same", "check_carefully", "check_carefully", "different", "different"]


def test_the_matcher_on_a_large_phone_photo_and_garbage() -> None:
    matcher = DlibFaceMatcher()
    big = cv2.resize(face_media.photo("astronaut"), (3000, 3000))
    result = matcher.match(face_media.jpeg(big), face_media.jpeg(face_media.photo("astronaut")))
    assert result.band == "likely_same" and result.first is not None and result.first.box[2] > 300
    from cloudbank.platform.face_match import FaceMatchError

    with pytest.raises(FaceMatchError, match="could not be decoded"):
        matcher.match(b"\xff\xd8\xff" + b"x" * 100, face_media.jpeg(big))


async def test_bad_input_is_refused_and_changes_nothing(api: Client, config: Config) -> None:
    c = await call(api)
    other = await call(api, "tom", "kiosk2")
    card = await send_card(api, c, face_media.id_card_jpeg("astronaut"))
    shot = await store_snapshot(api, c, face_media.jpeg(face_media.photo("astronaut")))
    body = {"id_card": card["name"], "snapshot": shot}
    audit_before = len(await api.app[AUDIT].records())

    # An oversized or non-image ID photo from the customer's phone or kiosk.
    photo = face_media.id_card_jpeg("astronaut")
    over = photo + b"\0" * (MAX_ID_CARD_BYTES + 1 - len(photo))  # a JPEG one byte over the cap
    await refused(await post(api, f"/sessions/{c.sid}/id_card", c.customer, {"image": data_url(over)}),
                  400, "larger than 2 MB")
    ok_, png = cv2.imencode(".png", cv2.resize(face_media.photo("astronaut"), (2600, 2600)))
    assert ok_ and len(png) > 2 * MAX_ID_CARD_BYTES  # far over: refused before it is read
    await refused(await post(api, f"/sessions/{c.sid}/id_card", c.customer,
                             {"image": data_url(png.tobytes(), "image/png")}), 413, "too large")
    await refused(await post(api, f"/sessions/{c.sid}/id_card", c.customer,
                             {"image": data_url(b"%PDF-1.4 not a photo" * 8)}), 400, "not a JPEG")
    # The teller of another session, the customer, a supervisor: not theirs to run or decide.
    await refused(await post(api, f"/sessions/{c.sid}/id_check", other.teller, body), 404, "no such session")
    await refused(await post(api, f"/sessions/{c.sid}/id_check", c.customer, body), 403, "needs teller")
    # Names that are not this session's images.
    other_card = await send_card(api, other, face_media.id_card_jpeg("grace_hopper"))
    audit_before += 1
    await refused(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                             {"id_card": other_card["name"], "snapshot": shot}), 404, "no such ID card")
    await refused(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                             {"id_card": card["name"], "snapshot": "customer-0099.jpg"}), 404, "no such snapshot")
    await refused(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                             {"id_card": "../../x.jpg", "snapshot": shot}), 404, "no such ID card")
    assert len(await api.app[AUDIT].records()) == audit_before and crops(config, c.sid) == []

    check = (await ok(await post(api, f"/sessions/{c.sid}/id_check", c.teller, body), 201))["id_check"]
    audit_before = len(await api.app[AUDIT].records())
    path = f"/sessions/{c.sid}/id_check/{check['id']}/decision"
    await refused(await post(api, path, c.customer, {"decision": "accept"}), 403, "needs teller")
    await refused(await post(api, path, other.teller, {"decision": "accept"}), 404, "no such session")
    sup = await person(api, "sue", "supervisor", queues=["wealth"])
    await refused(await post(api, path, sup, {"decision": "accept"}), 403, "needs teller")
    await refused(await post(api, path, c.teller, {"decision": "approve"}), 400, "decision")
    await refused(await post(api, f"/sessions/{c.sid}/id_check/{'0' * 32}/decision", c.teller,
                             {"decision": "accept"}), 404, "no such ID check")
    assert len(await api.app[AUDIT].records()) == audit_before
    listed = (await ok(await api.get(f"/sessions/{c.sid}/id_check", headers=sup.headers)))["id_checks"]
    assert [x["decision"] for x in listed] == [None]  # the supervisor sees it, undecided
    assert (await api.get(f"/sessions/{c.sid}/id_check", headers=other.teller.headers)).status == 404

    # A snapshot changed on disk since the node recorded it is not evidence any more.
    snap = config.data / "recordings" / c.sid / "snapshots" / shot
    snap.write_bytes(snap.read_bytes() + b"\x00")
    await refused(await post(api, f"/sessions/{c.sid}/id_check", c.teller, body), 409, "changed since")
    assert len(await api.app[AUDIT].records()) == audit_before


async def test_without_the_face_extra_the_check_says_how_to_install_it(api: Client, config: Config,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from cloudbank.platform.id_check import FACE_MATCHER, Matcher

    c = await call(api)
    card = await send_card(api, c, face_media.id_card_jpeg("astronaut"))
    shot = await store_snapshot(api, c, face_media.jpeg(face_media.photo("astronaut")))
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError, as without the extra
    monkeypatch.setitem(api.app._state, FACE_MATCHER, Matcher())  # noqa: SLF001 - a fresh, never-loaded matcher
    audit_before = len(await api.app[AUDIT].records())
    body = await refused(await post(api, f"/sessions/{c.sid}/id_check", c.teller,
                                    {"id_card": card["name"], "snapshot": shot}), 503, "pip install -e '.[face]'")
    assert body["error"] == "unavailable"
    assert len(await api.app[AUDIT].records()) == audit_before and crops(config, c.sid) == []
