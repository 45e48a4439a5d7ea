"""Media items, blobs and playlists over HTTP: uploads, maker-checker, the kiosk playlist read by the
real kiosk SDK, and refusals (bad bodies, wrong roles, other branches) that change nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.errors import PlaylistError
from cloudbank.kiosk_client.playlist import PlaylistCache, PlaylistSync
from cloudbank.platform.audit import AuditChain
from cloudbank.platform.records import media_items, playlist_versions, playlists


async def count(media: Any, table: sa.Table) -> int:
    async with media.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def audit_actions(media: Any) -> list[str]:
    return [r.action for r in await AuditChain(media.engine).records()]


def blob_files(media: Any) -> list[Path]:
    root = media.config.data / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- uploads ------------------------------------------------------------------------------------


async def test_upload_every_allowed_type_then_fetch_it(media: Any, samples: Any) -> None:
    for kind, ctype, name in (("png", "image/png", "a.png"), ("jpeg", "image/jpeg", "b.jpg"),
                              ("pdf", "application/pdf", "terms.pdf"), ("webm", "video/webm", "promo.webm"),
                              ("mp4", "video/mp4", "promo.mp4")):
        data = getattr(samples, kind)
        item = await media.upload(data, name, content_type=ctype)
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["size"] == len(data) and item["content_type"] == ctype and item["name"] == name
        assert item["url"] == f"/media/api/blobs/{item['sha256']}"
        resp = await media.client.get(item["url"], headers=media.auth("admin1"))
        assert resp.status == 200 and resp.headers["Content-Type"] == ctype
        assert await resp.read() == data
    resp = await media.client.get("/media/api/items", headers=media.auth("admin1"))
    assert len((await resp.json())["items"]) == 5
    resp = await media.client.get("/media/api/items", params={"kind": "video"}, headers=media.auth("admin1"))
    assert {i["content_type"] for i in (await resp.json())["items"]} == {"video/webm", "video/mp4"}
    assert (await audit_actions(media)).count("media.uploaded") == 5


async def test_same_bytes_twice_are_one_item_and_one_file(media: Any, samples: Any) -> None:
    first = await media.upload(samples.png, "one.png")
    resp = await media.client.post("/media/api/items", params={"name": "again.png"}, data=samples.png,
                                   headers=media.auth("admin2"))
    assert resp.status == 200
    body = await resp.json()
    assert body["deduplicated"] and body["item"]["id"] == first["id"] and body["item"]["name"] == "one.png"
    assert await count(media, media_items) == 1
    assert len(blob_files(media)) == 1


async def test_upload_refusals_change_nothing(media: Any, samples: Any) -> None:
    limit = media.config.max_upload_bytes
    cases: list[tuple[dict[str, Any], int]] = [
        ({"params": {"name": "x.gif"}, "data": b"GIF89a" + b"\0" * 100}, 415),            # not allowed
        ({"params": {"name": "x.png"}, "data": samples.png,
          "headers": {"Content-Type": "video/mp4"}}, 415),                              # declared != content
        ({"params": {"name": "big.png"}, "data": samples.png + b"\0" * limit}, 413),     # Content-Length
        ({"params": {"name": "../../etc/passwd"}, "data": samples.png}, 400),            # path trick
        ({"params": {"name": "a/b.png"}, "data": samples.png}, 400),
        ({"params": {"name": "x" * 5000}, "data": samples.png}, 400),                        # over 200 chars
        ({"params": {}, "data": samples.png}, 400),                                       # no name
        ({"params": {"name": "x.png", "extra": "1"}, "data": samples.png}, 400),           # unknown parameter
        ({"params": {"name": "empty.png"}, "data": b""}, 400),
    ]
    for kwargs, status in cases:
        headers = {**media.auth("admin1"), **kwargs.pop("headers", {})}
        resp = await media.client.post("/media/api/items", headers=headers, **kwargs)
        assert resp.status == status, (str(kwargs.get("params"))[:80], (await resp.text())[:200])
        body = await resp.json()
        assert body["error"] and body["message"]
    assert await count(media, media_items) == 0
    assert blob_files(media) == []
    assert "media.uploaded" not in await audit_actions(media)


async def test_oversized_streamed_upload_without_length_is_cut_off(media: Any, samples: Any) -> None:
    limit = media.config.max_upload_bytes

    async def body() -> Any:
        yield samples.png
        for _ in range(limit // 65536 + 2):
            yield b"\0" * 65536

    resp = await media.client.post("/media/api/items", params={"name": "big.png"}, data=body(),
                                   headers=media.auth("admin1"))
    assert resp.status == 413
    assert (await resp.json())["limit"] == limit
    assert await count(media, media_items) == 0 and blob_files(media) == []


@pytest.mark.parametrize("who", [None, "teller1", "super1", "bad-token"])
async def test_only_admins_upload_and_list(media: Any, samples: Any, who: str | None) -> None:
    headers = {} if who is None else (
        {"Authorization": "Bearer nonsense"} if who == "bad-token" else media.auth(who))
    resp = await media.client.post("/media/api/items", params={"name": "a.png"}, data=samples.png, headers=headers)
    assert resp.status in (401, 403)
    for path in ("/media/api/items", "/media/api/playlists", "/media/api/branches"):
        resp = await media.client.get(path, headers=headers)
        assert resp.status in (401, 403), path
    assert await count(media, media_items) == 0


async def test_unknown_items_and_blobs_are_404(media: Any) -> None:
    resp = await media.client.get("/media/api/items/nope", headers=media.auth("admin1"))
    assert resp.status == 404
    resp = await media.client.get("/media/api/blobs/" + "a" * 64, headers=media.auth("admin1"))
    assert resp.status == 404
    for bad in ("..%2F..%2Fcloudbank.sqlite3", "A" * 64, "a" * 63):
        resp = await media.client.get("/media/api/blobs/" + bad, headers=media.auth("admin1"))
        assert resp.status in (400, 404), bad


# -- playlists and maker-checker ---------------------------------------------------------------------


async def test_maker_cannot_approve_own_change_and_kiosk_sees_only_approved(media: Any, samples: Any) -> None:
    png = await media.upload(samples.png, "a.png")
    webm = await media.upload(samples.webm, "promo.webm")
    _, kiosk = await media.enrol_kiosk("demo")
    kiosk_auth = {"Authorization": f"Bearer {kiosk}"}

    resp = await media.client.post("/media/api/playlists", headers=media.auth("admin1"), json={
        "branch": "demo", "name": "Demo idle", "items": [{"item_id": png["id"], "duration_s": 8}]})
    assert resp.status == 201
    playlist = (await resp.json())["playlist"]
    assert playlist["pending_version"] == 1 and playlist["approved_version"] is None

    # Nothing approved yet: the kiosk gets an empty playlist, and cannot read the pending item.
    resp = await media.client.get("/media/api/kiosk/playlist", headers=kiosk_auth)
    assert (await resp.json())["playlist"]["items"] == []
    assert (await media.client.get(png["url"], headers=kiosk_auth)).status == 404

    approve = f"/media/api/playlists/{playlist['id']}/versions/1/approve"
    resp = await media.client.post(approve, headers=media.auth("admin1"))
    assert resp.status == 403 and "maker-checker" in (await resp.json())["message"]
    resp = await media.client.post(approve, headers=media.auth("admin2"))
    assert resp.status == 200 and (await resp.json())["version"]["state"] == "approved"
    resp = await media.client.post(approve, headers=media.auth("admin2"))
    assert resp.status == 409  # decided already

    resp = await media.client.get("/media/api/kiosk/playlist", headers=kiosk_auth)
    served = (await resp.json())["playlist"]
    assert served["version"] == 1 and [i["id"] for i in served["items"]] == [png["id"]]
    assert served["items"][0] == {"id": png["id"], "kind": "image", "name": "a.png", "sha256": png["sha256"],
                                  "size": png["size"], "url": png["url"], "duration_s": 8.0}

    # admin2 proposes version 2: still pending, so kiosks keep version 1; admin2 cannot approve it either.
    versions = f"/media/api/playlists/{playlist['id']}/versions"
    resp = await media.client.post(versions, headers=media.auth("admin2"), json={
        "items": [{"item_id": webm["id"], "duration_s": 30}, {"item_id": png["id"], "duration_s": 5}]})
    assert resp.status == 201 and (await resp.json())["version"]["version"] == 2
    resp = await media.client.post(versions, headers=media.auth("admin1"), json={
        "items": [{"item_id": png["id"]}]})
    assert resp.status == 409  # one change at a time
    assert (await (await media.client.get("/media/api/kiosk/playlist", headers=kiosk_auth)).json()
            )["playlist"]["version"] == 1
    assert (await media.client.post(f"{versions}/2/approve", headers=media.auth("admin2"))).status == 403
    assert (await media.client.post(f"{versions}/2/approve", headers=media.auth("admin1"))).status == 200

    served = (await (await media.client.get("/media/api/kiosk/playlist", headers=kiosk_auth)).json())["playlist"]
    assert served["version"] == 2 and [i["name"] for i in served["items"]] == ["promo.webm", "a.png"]
    resp = await media.client.get(f"/media/api/playlists/{playlist['id']}", headers=media.auth("admin1"))
    states = [v["state"] for v in (await resp.json())["playlist"]["versions"]]
    assert states == ["superseded", "approved"]
    actions = await audit_actions(media)
    assert actions.count("playlist.proposed") == 2 and actions.count("playlist.approved") == 2


async def test_rejected_change_is_never_served(media: Any, samples: Any) -> None:
    png = await media.upload(samples.png, "a.png")
    jpeg = await media.upload(samples.jpeg, "b.jpg")
    playlist = await media.approved_playlist("demo", [png["id"]])
    _, kiosk = await media.enrol_kiosk("demo")
    versions = f"/media/api/playlists/{playlist['id']}/versions"
    resp = await media.client.post(versions, headers=media.auth("admin1"), json={"items": [{"item_id": jpeg["id"]}]})
    assert resp.status == 201
    resp = await media.client.post(f"{versions}/2/reject", headers=media.auth("admin2"),
                                   json={"reason": "wrong campaign"})
    assert resp.status == 200 and (await resp.json())["version"]["reason"] == "wrong campaign"
    assert (await media.client.post(f"{versions}/2/approve", headers=media.auth("admin2"))).status == 409
    served = (await (await media.client.get("/media/api/kiosk/playlist",
                                            headers={"Authorization": f"Bearer {kiosk}"})).json())["playlist"]
    assert served["version"] == 1 and [i["id"] for i in served["items"]] == [png["id"]]
    assert (await media.client.get(jpeg["url"], headers={"Authorization": f"Bearer {kiosk}"})).status == 404


async def test_playlist_bodies_refused_and_nothing_changed(media: Any, samples: Any) -> None:
    png = await media.upload(samples.png, "a.png")
    pdf = await media.upload(samples.pdf, "terms.pdf")
    ok_item = {"item_id": png["id"], "duration_s": 5}
    bad_bodies: list[tuple[Any, int]] = [
        ("{not json", 400),
        ([], 400),
        ({"branch": "demo", "name": "x", "items": [ok_item], "colour": "red"}, 400),       # unknown field
        ({"name": "x", "items": [ok_item]}, 400),                                           # missing branch
        ({"branch": 7, "name": "x", "items": [ok_item]}, 400),                              # wrong type
        ({"branch": "demo", "name": "x" * 1_000_000, "items": [ok_item]}, 400),             # 1 MB string
        ({"branch": "demo", "name": "x", "items": []}, 400),                                 # empty
        ({"branch": "demo", "name": "x", "items": [{"item_id": "nope"}]}, 400),              # unknown item
        ({"branch": "demo", "name": "x", "items": [{"item_id": pdf["id"]}]}, 400),           # not playable
        ({"branch": "demo", "name": "x", "items": [{"item_id": png["id"], "duration_s": 0}]}, 400),
        ({"branch": "demo", "name": "x", "items": [{"item_id": png["id"], "duration_s": "5"}]}, 400),
        ({"branch": "demo", "name": "x", "items": [{"item_id": png["id"], "extra": 1}]}, 400),
        ({"branch": "demo", "name": "x", "items": [ok_item] * 201}, 400),                    # too many
        ({"branch": "demo", "name": "   ", "items": [ok_item]}, 400),
        ({"branch": "nowhere", "name": "x", "items": [ok_item]}, 404),                       # unknown branch
    ]
    for body, status in bad_bodies:
        kwargs: dict[str, Any] = {"data": body, "headers": {**media.auth("admin1"),
                                                            "Content-Type": "application/json"}} \
            if isinstance(body, str) else {"json": body, "headers": media.auth("admin1")}
        resp = await media.client.post("/media/api/playlists", **kwargs)
        assert resp.status == status, (str(body)[:80], await resp.text())
    resp = await media.client.post("/media/api/playlists", data="{}", headers={
        **media.auth("admin1"), "Content-Type": "text/plain"})
    assert resp.status == 415
    assert await count(media, playlists) == 0 and await count(media, playlist_versions) == 0

    playlist = await media.approved_playlist("demo", [png["id"]])
    resp = await media.client.post("/media/api/playlists", headers=media.auth("admin2"),
                                   json={"branch": "demo", "name": "second", "items": [ok_item]})
    assert resp.status == 409  # one playlist per branch: propose a version of it instead
    versions = f"/media/api/playlists/{playlist['id']}/versions"
    for path, status in ((f"{versions}/99/approve", 404), (f"{versions}/x/approve", 400),
                         ("/media/api/playlists/nope/versions/1/approve", 404),
                         (f"{versions}/1/approve", 409), (f"{versions}/1/reject", 409)):
        assert (await media.client.post(path, headers=media.auth("admin1"))).status == status, path
    resp = await media.client.post(f"{versions}/1/reject", headers=media.auth("admin1"), json={"why": "x"})
    assert resp.status == 400
    resp = await media.client.post(versions, headers=media.auth("teller1"), json={"items": [ok_item]})
    assert resp.status == 403
    assert await count(media, playlist_versions) == 1


# -- kiosks --------------------------------------------------------------------------------------


async def test_kiosk_sdk_downloads_and_verifies_the_approved_playlist(media: Any, samples: Any,
                                                                     tmp_path: Path) -> None:
    png = await media.upload(samples.png, "a.png")
    webm = await media.upload(samples.webm, "promo.webm")
    await media.approved_playlist("demo", [webm["id"], png["id"]])
    _, token = await media.enrol_kiosk("demo")
    client = PlatformClient(media.base_url, token=token)
    try:
        cache = PlaylistCache(tmp_path / "kiosk" / "playlist")
        playlist = await PlaylistSync(client, cache).sync()
        assert [i.name for i in playlist.items] == ["promo.webm", "a.png"]
        assert (cache.blobs / webm["sha256"]).read_bytes() == samples.webm
        assert (cache.blobs / png["sha256"]).read_bytes() == samples.png
        assert cache.verify() == [] and len(cache.playable()) == 2

        # The stored blob rots on the server: the kiosk's hash check refuses it and keeps its cache.
        jpeg = await media.upload(samples.jpeg, "b.jpg")
        resp = await media.client.post(f"/media/api/playlists/{playlist.id}/versions", headers=media.auth("admin2"),
                                       json={"items": [{"item_id": jpeg["id"]}]})
        assert resp.status == 201
        resp = await media.client.post(f"/media/api/playlists/{playlist.id}/versions/2/approve",
                                       headers=media.auth("admin1"))
        assert resp.status == 200
        stored = media.config.data / "media" / "blobs" / jpeg["sha256"][:2] / jpeg["sha256"]
        stored.write_bytes(samples.jpeg[:-1] + b"\0")
        with pytest.raises(PlaylistError, match="does not match"):
            await PlaylistSync(client, cache).sync()
        current = cache.current()
        assert current is not None and current.version == 1 and len(cache.playable()) == 2
    finally:
        await client.close()


async def test_kiosk_reads_only_its_own_branch(media: Any, samples: Any) -> None:
    demo_item = await media.upload(samples.png, "demo.png")
    north_item = await media.upload(samples.jpeg, "north.jpg")
    await media.approved_playlist("demo", [demo_item["id"]])
    await media.approved_playlist("north", [north_item["id"]])
    device_id, demo = await media.enrol_kiosk("demo")
    _, north = await media.enrol_kiosk("north")
    for token, mine, theirs in ((demo, demo_item, north_item), (north, north_item, demo_item)):
        auth = {"Authorization": f"Bearer {token}"}
        served = (await (await media.client.get("/media/api/kiosk/playlist", headers=auth)).json())["playlist"]
        assert [i["id"] for i in served["items"]] == [mine["id"]]
        assert (await media.client.get(mine["url"], headers=auth)).status == 200
        assert (await media.client.get(theirs["url"], headers=auth)).status == 404
        # Kiosks cannot reach the admin API.
        assert (await media.client.get("/media/api/items", headers=auth)).status == 403
        assert (await media.client.get("/media/api/recordings", headers=auth)).status == 403

    # People's tokens are not kiosks; a revoked kiosk is refused.
    for who in ("admin1", "super1", "teller1"):
        assert (await media.client.get("/media/api/kiosk/playlist", headers=media.auth(who))).status == 403
    assert (await media.client.post(f"/api/devices/{device_id}/revoke", headers=media.auth("admin1"))).status == 200
    auth = {"Authorization": f"Bearer {demo}"}
    assert (await media.client.get("/media/api/kiosk/playlist", headers=auth)).status == 403
    assert (await media.client.get(demo_item["url"], headers=auth)).status == 403
    resp = await media.client.get("/media/api/kiosk/playlist", params={"x": "1"},
                                  headers={"Authorization": f"Bearer {north}"})
    assert resp.status == 400


async def test_delete_an_item_refused_while_a_playlist_uses_it(media: Any, samples: Any) -> None:
    video = await media.upload(samples.webm_5s, "clip.webm")
    image = await media.upload(samples.png, "poster.png")
    spare = await media.upload(samples.jpeg, "spare.jpg")
    assert video["duration_s"] == pytest.approx(5.0, abs=0.1)  # probed from the file
    assert "duration_s" not in image
    playlist = await media.approved_playlist("demo", [video["id"]])
    # A pending version that would add the image: the image is in use too.
    resp = await media.client.post(f"/media/api/playlists/{playlist['id']}/versions", headers=media.auth("admin1"),
                                   json={"items": [{"item_id": video["id"], "duration_s": 5},
                                                   {"item_id": image["id"], "duration_s": 10}]})
    assert resp.status == 201
    for item, words in ((video, "played by kiosks"), (image, "waiting for approval")):
        resp = await media.client.delete(f"/media/api/items/{item['id']}", headers=media.auth("admin1"))
        assert resp.status == 409
        body = await resp.json()
        assert words in body["message"] and body["playlists"] == [playlist["id"]]
    assert (await media.client.delete(f"/media/api/items/{spare['id']}", headers=media.auth("super1"))).status == 403
    resp = await media.client.delete(f"/media/api/items/{spare['id']}", headers=media.auth("admin1"))
    assert resp.status == 200
    assert (await media.client.get(f"/media/api/items/{spare['id']}", headers=media.auth("admin1"))).status == 404
    assert (await media.client.get(spare["url"], headers=media.auth("admin1"))).status == 404  # the bytes are gone
    assert (await media.client.delete(f"/media/api/items/{spare['id']}", headers=media.auth("admin1"))).status == 404
    # The playlist says who made each version, for the checker.
    resp = await media.client.get(f"/media/api/playlists/{playlist['id']}", headers=media.auth("admin2"))
    versions = (await resp.json())["playlist"]["versions"]
    assert [v["made_by_name"] for v in versions] == ["Admin1 (admin1)", "Admin1 (admin1)"]
    assert versions[0]["decided_by_name"] == "Admin2 (admin2)"
