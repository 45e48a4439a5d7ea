"""Playlist cache: items served here over real HTTP are cached by hash; a bad item changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.errors import PlaylistError
from cloudbank.kiosk_client.playlist import PlaylistCache, PlaylistSync, parse_playlist

MakeServer = Callable[..., Awaitable[TestServer]]


class MediaStandIn:
    """The media platform's two kiosk endpoints, serving what a test puts in it."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifest: dict[str, Any] = {}
        self.lie: dict[str, bytes] = {}   # sha -> different bytes served instead
        self.tokens_seen: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/media/api/kiosk/playlist", self.playlist)
        self.app.router.add_get("/media/api/blobs/{sha}", self.blob)

    def add(self, item_id: str, data: bytes, kind: str = "image") -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return {"id": item_id, "kind": kind, "name": f"{item_id}.bin", "sha256": sha, "size": len(data),
                "url": f"/media/api/blobs/{sha}", "duration_s": 5}

    async def playlist(self, request: web.Request) -> web.Response:
        self.tokens_seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"playlist": self.manifest})

    async def blob(self, request: web.Request) -> web.Response:
        sha = request.match_info["sha"]
        data = self.lie.get(sha, self.blobs.get(sha))
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data)


@pytest.fixture
async def media(aiohttp_server: MakeServer) -> tuple[MediaStandIn, TestServer]:
    stand_in = MediaStandIn()
    server = await aiohttp_server(stand_in.app)
    return stand_in, server


def _sync(server: TestServer, folder: Path) -> tuple[PlatformClient, PlaylistSync]:
    client = PlatformClient(str(server.make_url("")).rstrip("/"), token="device-token")
    return client, PlaylistSync(client, PlaylistCache(folder))


async def test_sync_caches_items_by_hash_and_keeps_playing_offline(
        media: tuple[MediaStandIn, TestServer], tmp_path: Path) -> None:
    stand_in, server = media
    stand_in.manifest = {"id": "p1", "version": 1,
                         "items": [stand_in.add("a", b"A" * 70000), stand_in.add("b", b"B" * 10, "video")]}
    client, sync = _sync(server, tmp_path / "pl")
    playlist = await sync.sync()
    assert [i.id for i in playlist.items] == ["a", "b"]
    assert stand_in.tokens_seen == ["Bearer device-token"]
    playable = sync.cache.playable()
    assert [i.id for i in playable] == ["a", "b"]
    for item in playable:
        assert (sync.cache.blobs / item.sha256).read_bytes() == stand_in.blobs[item.sha256]
    await server.close()
    offline = await sync.sync()
    assert offline == playlist and [i.id for i in sync.cache.playable()] == ["a", "b"]
    await client.close()


async def test_an_item_whose_hash_does_not_match_changes_nothing(
        media: tuple[MediaStandIn, TestServer], tmp_path: Path) -> None:
    stand_in, server = media
    good = stand_in.add("a", b"good content")
    stand_in.manifest = {"id": "p1", "version": 1, "items": [good]}
    client, sync = _sync(server, tmp_path / "pl")
    await sync.sync()
    before_manifest = sync.cache.manifest_path.read_bytes()
    before_blobs = sorted(p.name for p in sync.cache.blobs.iterdir())
    other, bad = stand_in.add("c", b"another fine item"), stand_in.add("b", b"promised bytes")
    stand_in.lie[bad["sha256"]] = b"promised bytez"   # same length, different content
    stand_in.manifest = {"id": "p1", "version": 2, "items": [other, bad]}
    with pytest.raises(PlaylistError, match=r"item b .*does not match its SHA-256"):
        await sync.sync()
    assert sync.cache.manifest_path.read_bytes() == before_manifest
    assert sorted(p.name for p in sync.cache.blobs.iterdir()) == before_blobs
    assert not [p for p in sync.cache.folder.iterdir() if p.name.startswith(".staging")]
    # Served correctly, the same version goes through and the old item is collected.
    del stand_in.lie[bad["sha256"]]
    await sync.sync()
    assert [i.id for i in sync.cache.playable()] == ["c", "b"]
    assert sorted(p.name for p in sync.cache.blobs.iterdir()) == sorted([other["sha256"], bad["sha256"]])
    await client.close()


async def test_an_item_larger_than_announced_is_refused(media: tuple[MediaStandIn, TestServer],
                                                        tmp_path: Path) -> None:
    stand_in, server = media
    item = stand_in.add("a", b"x" * 100)
    stand_in.lie[item["sha256"]] = b"x" * 200000
    stand_in.manifest = {"id": "p1", "version": 1, "items": [item]}
    client, sync = _sync(server, tmp_path / "pl")
    with pytest.raises(PlaylistError, match="larger than"):
        await sync.sync()
    assert sync.cache.current() is None and sync.cache.playable() == []
    await client.close()


async def test_items_outside_the_platform_and_missing_items_are_refused(
        media: tuple[MediaStandIn, TestServer], tmp_path: Path) -> None:
    stand_in, server = media
    item = stand_in.add("a", b"data")
    stand_in.manifest = {"id": "p1", "version": 1, "items": [{**item, "url": "http://198.51.100.7/x"}]}
    client, sync = _sync(server, tmp_path / "pl")
    with pytest.raises(PlaylistError, match="outside the platform"):
        await sync.sync()
    stand_in.manifest = {"id": "p1", "version": 1, "items": [{**item, "url": "/media/api/blobs/" + "0" * 64}]}
    with pytest.raises(PlaylistError, match="answered 404"):
        await sync.sync()
    assert sync.cache.current() is None
    await client.close()


@pytest.mark.parametrize("change", [
    {"sha256": "nothex"}, {"kind": "script"}, {"size": 0}, {"size": "10"}, {"size": 10**12},
    {"duration_s": -1}, {"url": None, "sha256": None},
])
def test_malformed_manifests_are_refused(change: dict[str, Any]) -> None:
    item = {"id": "a", "kind": "image", "name": "n", "sha256": "a" * 64, "size": 5, "url": "/x", "duration_s": 3}
    with pytest.raises(PlaylistError):
        parse_playlist({"playlist": {"id": "p", "version": 1, "items": [{**item, **change}]}})


def test_malformed_manifest_shapes_are_refused() -> None:
    for body in ({}, {"playlist": {"id": "p"}}, {"playlist": {"id": "p", "version": 1, "items": "x"}},
                 {"playlist": {"id": "p", "version": 1, "items": [{}] * 201}}, ["x"]):
        with pytest.raises(PlaylistError):
            parse_playlist(body)


async def test_verify_removes_blobs_that_rotted_on_disk(media: tuple[MediaStandIn, TestServer],
                                                       tmp_path: Path) -> None:
    stand_in, server = media
    stand_in.manifest = {"id": "p1", "version": 1, "items": [stand_in.add("a", b"one"), stand_in.add("b", b"two")]}
    client, sync = _sync(server, tmp_path / "pl")
    await sync.sync()
    rotten = sync.cache.blobs / stand_in.manifest["items"][0]["sha256"]
    rotten.write_bytes(b"ONE")
    assert sync.cache.verify() == [rotten.name]
    assert [i.id for i in sync.cache.playable()] == ["b"]
    # The next sync fetches it again.
    await sync.sync()
    assert [i.id for i in sync.cache.playable()] == ["a", "b"]
    assert json.loads(sync.cache.manifest_path.read_text())["version"] == 1
    await client.close()
