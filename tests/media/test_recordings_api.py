"""The recordings catalogue over HTTP, on real recordings written by the video node's Recorder:
indexing and search, verification that catches tampering, export zips, retention purge, roles,
and the audit record every access leaves."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
import zipfile
from typing import Any

import av
import pytest

from cloudbank.media.app import FOLLOWER, HOUSEKEEPING, housekeeping_once
from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.video.recorder import Recorder, finish_recording, recording_folder


async def scan(media: Any) -> dict[str, Any]:
    resp = await media.client.post("/media/api/recordings/scan", headers=media.auth("admin1"))
    assert resp.status == 200, (await resp.text())[:300]
    return dict(await resp.json())


async def search(media: Any, who: str = "admin1", **params: str) -> list[dict[str, Any]]:
    resp = await media.client.get("/media/api/recordings", params=params, headers=media.auth(who))
    assert resp.status == 200, (await resp.text())[:300]
    return list((await resp.json())["recordings"])


async def verify(media: Any, session_id: str, who: str = "admin1") -> dict[str, Any]:
    resp = await media.client.post(f"/media/api/recordings/{session_id}/verify", headers=media.auth(who))
    assert resp.status == 200, (await resp.text())[:300]
    return dict((await resp.json())["report"])


async def audit_of(media: Any, session_id: str) -> list[tuple[str, str]]:
    return [(r.actor, r.action) for r in await AuditChain(media.engine).records(subject=f"session:{session_id}")]


async def test_scan_indexes_real_recordings_and_search_finds_them(media: Any, record: Any) -> None:
    # Only the scan indexes here: the app's follower (recording.finished records, once a second) and
    # its housekeeping would otherwise take some of them first on a slow machine.
    app = _media_app(media)
    for task in (app[FOLLOWER], app[HOUSEKEEPING]):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    day = 86400
    jan = 1767225600.0  # 2026-01-01 00:00 UTC
    await record("call-a", teller_id=media.ids["teller1"], service="deposit", started_at=jan + 3600)
    await record("call-b", teller_id=media.ids["teller1"], service="loans", started_at=jan + 2 * day)
    await record("call-c", teller_id=None, service="deposit", started_at=jan + 5 * day)
    body = await scan(media)
    assert sorted(body["indexed"]) == ["call-a", "call-b", "call-c"] and body["unreadable"] == {}
    assert (await scan(media))["unchanged"] == 3  # nothing new the second time

    everything = await search(media)
    assert [r["session_id"] for r in everything] == ["call-c", "call-b", "call-a"]  # newest first
    a = everything[2]
    assert a["teller_id"] == media.ids["teller1"] and a["service"] == "deposit" and a["state"] == "available"
    assert a["teller_name"] == "Teller1" and everything[0]["teller_name"] is None  # a name people know
    assert a["parties"] == {"customer": "device:k1", "teller": f"user:{media.ids['teller1']}"}
    assert a["files"] >= 3 and a["bytes"] > 0  # segments + transcript + manifest

    assert [r["session_id"] for r in await search(media, session="call-b")] == ["call-b"]
    assert [r["session_id"] for r in await search(media, service="deposit")] == ["call-c", "call-a"]
    assert [r["session_id"] for r in await search(media, teller=media.ids["teller1"])] == ["call-b", "call-a"]
    assert [r["session_id"] for r in await search(media, **{"from": "2026-01-02", "to": "2026-01-06"})] == \
        ["call-c", "call-b"]
    assert [r["session_id"] for r in await search(media, **{"to": "2026-01-01"})] == ["call-a"]
    assert await search(media, session="nothing") == []
    assert [r["session_id"] for r in await search(media, limit="1")] == ["call-c"]


async def test_housekeeping_indexes_new_recordings(media: Any, record: Any) -> None:
    await record("later-call")
    await housekeeping_once(_media_app(media))
    assert [r["session_id"] for r in await search(media)] == ["later-call"]


def _media_app(media: Any) -> Any:
    """The media sub-application inside the composed root."""
    for resource in media.client.app.router.resources():
        app = getattr(resource, "_app", None)
        if app is not None and app.get(_service_key()) == "media":
            return app
    raise AssertionError("no media app mounted")


def _service_key() -> Any:
    from cloudbank.platform.service import SERVICE

    return SERVICE


async def test_view_play_and_verify_an_untouched_recording(media: Any, record: Any) -> None:
    manifest_path = await record("good-call", teller_id=media.ids["teller1"])
    await scan(media)
    resp = await media.client.get("/media/api/recordings/good-call", headers=media.auth("super1"))
    assert resp.status == 200
    body = await resp.json()
    assert body["manifest"] == json.loads(manifest_path.read_text())
    segment = body["manifest"]["tracks"][0]["segments"][0]["path"].rsplit("/", 1)[-1]

    # A segment plays (the console's <video> passes the token in the query).
    resp = await media.client.get(f"/media/api/recordings/good-call/files/{segment}",
                                  params={"token": media.tokens["super1"]})
    assert resp.status == 200 and resp.headers["Content-Type"] == "video/webm"
    with av.open(io.BytesIO(await resp.read())) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0
    # The browser goes on fetching the same file in ranges: still one record for this playing.
    for ranges in ("bytes=100-", "bytes=2000-3000"):
        resp = await media.client.get(f"/media/api/recordings/good-call/files/{segment}",
                                      params={"token": media.tokens["super1"]}, headers={"Range": ranges})
        assert resp.status == 206

    report = await verify(media, "good-call", who="super1")
    assert report["ok"] and report["problems"] == [] and report["audit_seq"] is not None
    assert all(f["ok"] for f in report["files"]) and len(report["files"]) >= 3
    assert await audit_of(media, "good-call") == [
        ("video:test", "recording.finished"), (media.ids["super1"], "recording.viewed"),
        (media.ids["super1"], "recording.played"), (media.ids["super1"], "recording.verified")]


async def test_a_session_whose_room_opened_again_still_verifies(media: Any, record: Any) -> None:
    """Both parties dropped and rejoined: the second room wrote manifest-2.json and its own audit
    record; the catalogue's manifest.json is checked against the record that lists it."""
    await record("two-rooms", teller_id=media.ids["teller1"])
    again = Recorder("two-rooms", recording_folder(media.config, "two-rooms"), lambda _party: None)
    second = await finish_recording(again, AuditChain(media.engine), media.config.data, actor="video:test")
    assert second.name == "manifest-2.json"
    await scan(media)
    report = await verify(media, "two-rooms")
    assert report["ok"] and report["problems"] == [], report


async def test_verify_detects_a_tampered_segment(media: Any, record: Any) -> None:
    manifest_path = await record("tampered", teller_id=media.ids["teller1"])
    await scan(media)
    manifest = json.loads(manifest_path.read_text())
    seg_rel = manifest["tracks"][0]["segments"][-1]["path"]
    segment = media.config.data / seg_rel
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of a frame
    segment.write_bytes(bytes(data))
    report = await verify(media, "tampered")
    assert not report["ok"]
    bad = [f for f in report["files"] if not f["ok"]]
    assert [f["path"] for f in bad] == [seg_rel] and "does not match" in bad[0]["problem"]
    assert ("recording.verified" in [a for _, a in await audit_of(media, "tampered")])


async def test_verify_detects_a_rewritten_manifest_and_missing_files(media: Any, record: Any) -> None:
    manifest_path = await record("rewritten")
    await scan(media)
    manifest = json.loads(manifest_path.read_text())
    # Someone swaps a segment and "fixes" the manifest to match: the audit chain still knows.
    seg = manifest["tracks"][0]["segments"][0]
    path = media.config.data / seg["path"]
    path.write_bytes(path.read_bytes() + b"\0")
    seg["sha256"] = file_sha256(path)
    manifest_path.write_text(json.dumps(manifest))
    report = await verify(media, "rewritten")
    assert not report["ok"]
    assert any("manifest does not match" in p for p in report["problems"])
    assert any("differs from the audit chain" in p for p in report["problems"])

    # A deleted transcript is reported as missing.
    transcript = media.config.data / manifest["transcripts"][0]["path"]
    transcript.unlink()
    report = await verify(media, "rewritten")
    assert any(f["problem"] == "the file is missing" for f in report["files"])


async def test_manifest_paths_cannot_escape_the_recording(media: Any, record: Any) -> None:
    manifest_path = await record("escape")
    await scan(media)
    secret = media.config.data / "cloudbank.sqlite3"
    manifest = json.loads(manifest_path.read_text())
    manifest["transcripts"].append({"path": "recordings/escape/../../cloudbank.sqlite3",
                                    "sha256": "0" * 64})
    manifest["transcripts"].append({"path": "/etc/passwd", "sha256": "0" * 64})
    manifest_path.write_text(json.dumps(manifest))
    report = await verify(media, "escape")
    assert not report["ok"]
    escaped = [f for f in report["files"] if "outside" in f["problem"]]
    assert len(escaped) == 2
    resp = await media.client.get("/media/api/recordings/escape/export", headers=media.auth("admin1"))
    assert resp.status == 200
    with zipfile.ZipFile(io.BytesIO(await resp.read())) as zf:
        assert not any("sqlite" in n or "passwd" in n for n in zf.namelist())
    resp = await media.client.get(f"/media/api/recordings/escape/files/{secret.name}", headers=media.auth("admin1"))
    assert resp.status == 404


async def test_export_zip_holds_files_manifest_audit_and_report(media: Any, record: Any) -> None:
    manifest_path = await record("export-me", teller_id=media.ids["teller1"])
    await scan(media)
    manifest = json.loads(manifest_path.read_text())
    resp = await media.client.get("/media/api/recordings/export-me/export", headers=media.auth("admin1"))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["X-Recording-Verified"] == "true"
    data = await resp.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        listed = [p for t in manifest["tracks"] for p in (s["path"] for s in t["segments"])]
        listed += [t["path"] for t in manifest["transcripts"]]
        expected = {f"export-me/{p.rsplit('/', 1)[-1]}" for p in listed}
        assert names == expected | {"export-me/manifest.json", "export-me/audit.json", "export-me/verify.json"}
        assert zf.read("export-me/manifest.json") == manifest_path.read_bytes()
        for rel in listed:  # byte-identical copies
            assert zf.read(f"export-me/{rel.rsplit('/', 1)[-1]}") == (media.config.data / rel).read_bytes()
        assert json.loads(zf.read("export-me/verify.json"))["ok"] is True
        audit = json.loads(zf.read("export-me/audit.json"))
        assert audit[0]["action"] == "recording.finished"
    records = await AuditChain(media.engine).records(subject="session:export-me")
    exported = [r for r in records if r.action == "recording.exported"]
    assert len(exported) == 1 and exported[0].details["bytes"] == len(data)
    assert not list((media.config.data / "media" / "tmp").glob("*"))  # the temporary zip is gone
    # The accesses appended to the chain keep it verifiable end to end (files included).
    result = await AuditChain(media.engine).verify(media.config.data)
    assert result.ok, str(result)


async def test_retention_purges_expired_recordings_with_an_audit_record(media: Any, record: Any) -> None:
    now = time.time()
    await record("old-call", started_at=now - 40 * 86400)
    await record("new-call", started_at=now - 2 * 86400)
    await scan(media)
    resp = await media.client.post("/media/api/retention/purge", headers=media.auth("admin1"))
    assert (await resp.json())["purged"] == []  # 0 days = keep forever (the default)

    resp = await media.client.put("/media/api/settings", headers=media.auth("admin1"), json={"retention_days": 30})
    assert resp.status == 200 and (await resp.json())["settings"]["retention_days"] == 30
    resp = await media.client.get("/media/api/settings", headers=media.auth("admin2"))
    assert (await resp.json())["settings"]["retention_days"] == 30
    resp = await media.client.post("/media/api/retention/purge", headers=media.auth("admin1"))
    assert (await resp.json())["purged"] == ["old-call"]
    assert not (media.config.data / "recordings" / "old-call").exists()
    assert (media.config.data / "recordings" / "new-call" / "manifest.json").is_file()

    rows = {r["session_id"]: r for r in await search(media)}
    assert rows["old-call"]["state"] == "purged" and rows["old-call"]["purged_at"] is not None
    assert rows["new-call"]["state"] == "available"
    purged = [r for r in await AuditChain(media.engine).records(subject="session:old-call")
              if r.action == "recording.purged"]
    assert len(purged) == 1 and purged[0].details["retention_days"] == 30
    assert purged[0].details["manifest_sha256"] == rows["old-call"]["manifest_sha256"]
    # A purged recording cannot be viewed, verified or exported; purging again does nothing.
    for method, path in (("GET", "/media/api/recordings/old-call"), ("POST", "/media/api/recordings/old-call/verify"),
                         ("GET", "/media/api/recordings/old-call/export")):
        resp = await media.client.request(method, path, headers=media.auth("admin1"))
        assert resp.status == 409, path
    resp = await media.client.post("/media/api/retention/purge", headers=media.auth("admin1"))
    assert (await resp.json())["purged"] == []
    assert (await scan(media))["indexed"] == []


@pytest.mark.parametrize("body", [{"retention_days": -1}, {"retention_days": 10**6}, {"retention_days": "30"},
                                  {"retention_days": 1.5}, {"retention_days": 30, "x": 1}, {}, [], "nope"])
async def test_bad_settings_refused_and_nothing_changed(media: Any, body: Any) -> None:
    kwargs: dict[str, Any] = {"data": body, "headers": {**media.auth("admin1"), "Content-Type": "application/json"}} \
        if isinstance(body, str) else {"json": body, "headers": media.auth("admin1")}
    resp = await media.client.put("/media/api/settings", **kwargs)
    assert resp.status == 400
    resp = await media.client.get("/media/api/settings", headers=media.auth("admin1"))
    assert (await resp.json())["settings"]["retention_days"] == 0


async def test_roles_on_every_recordings_endpoint(media: Any, record: Any) -> None:
    await record("rolecall", service="deposit")
    await scan(media)
    staff_read = [("GET", "/media/api/recordings"), ("GET", "/media/api/recordings/rolecall"),
                  ("POST", "/media/api/recordings/rolecall/verify")]
    admin_only = [("GET", "/media/api/recordings/rolecall/export"), ("POST", "/media/api/recordings/scan"),
                  ("GET", "/media/api/settings"), ("POST", "/media/api/retention/purge")]
    _, kiosk = await media.enrol_kiosk("demo")
    for method, path in staff_read + admin_only:
        assert (await media.client.request(method, path)).status == 401, path
        for who in ("teller1",):
            assert (await media.client.request(method, path, headers=media.auth(who))).status == 403, path
        resp = await media.client.request(method, path, headers={"Authorization": f"Bearer {kiosk}"})
        assert resp.status == 403, path
        resp = await media.client.request(method, path, headers={"Authorization": "Bearer x.y.z"})
        assert resp.status == 401, path
    for method, path in staff_read:
        assert (await media.client.request(method, path, headers=media.auth("super1"))).status == 200, path
    for method, path in admin_only:
        assert (await media.client.request(method, path, headers=media.auth("super1"))).status == 403, path
    resp = await media.client.put("/media/api/settings", headers=media.auth("super1"), json={"retention_days": 1})
    assert resp.status == 403
    # A supervisor who oversees only the "other" queue does not see deposit calls (as if they did not exist).
    assert await search(media, who="super2") == []
    assert (await media.client.get("/media/api/recordings/rolecall", headers=media.auth("super2"))).status == 404
    # A signed-out token is refused.
    resp = await media.client.post("/api/logout", headers=media.auth("super1"))
    assert resp.status == 200
    assert (await media.client.get("/media/api/recordings", headers=media.auth("super1"))).status == 401


async def test_bad_ids_and_queries_refused(media: Any, record: Any) -> None:
    await record("q-call")
    await scan(media)
    before = len(await AuditChain(media.engine).records())
    cases = [
        ("GET", "/media/api/recordings/unknown-call", 404),
        ("GET", "/media/api/recordings/..%2F..%2Fetc", 400),
        ("GET", "/media/api/recordings/a%00b", 400),
        ("GET", "/media/api/recordings/" + "x" * 100, 400),
        ("POST", "/media/api/recordings/unknown-call/verify", 404),
        ("GET", "/media/api/recordings/unknown-call/export", 404),
        ("GET", "/media/api/recordings/q-call/files/..%2Fmanifest.json", 404),
        ("GET", "/media/api/recordings/q-call/files/nothing.webm", 404),
        ("GET", "/media/api/recordings?colour=red", 400),
        ("GET", "/media/api/recordings?from=yesterday", 400),
        ("GET", "/media/api/recordings?to=2026-13-01", 400),
        ("GET", "/media/api/recordings?limit=0", 400),
        ("GET", "/media/api/recordings?limit=lots", 400),
        ("GET", "/media/api/recordings?service=" + "x" * 5000, 400),
    ]
    for method, path, status in cases:
        resp = await media.client.request(method, path, headers=media.auth("admin1"))
        assert resp.status == status, (path[:80], (await resp.text())[:200])
        assert (await resp.json())["error"]
    resp = await media.client.post("/media/api/recordings/scan", headers=media.auth("admin1"), json={"all": True})
    assert resp.status == 400
    assert len(await AuditChain(media.engine).records()) == before  # refusals leave no trace of access
