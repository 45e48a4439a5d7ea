"""The idle-screen playlist: fetched from the media platform, cached on disk, verified by SHA-256.

Endpoint the media platform provides (device token):

    GET /media/api/kiosk/playlist
    -> 200 {"playlist": {"id": str, "version": int, "items": [
             {"id": str, "kind": "video"|"image", "name": str, "sha256": <64 hex>, "size": int,
              "url": "/media/api/blobs/<sha256>" (same origin, or relative), "duration_s": float}]}}

Cache layout under the kiosk's data folder: `playlist/manifest.json` (the last playlist whose every
item verified) and `playlist/blobs/<sha256>` (content-addressed). A sync downloads new items into a
staging folder and promotes them only when all of them match their hash and size; otherwise the
cached playlist stays exactly as it was and the error names the item. When the platform cannot be
reached the kiosk keeps playing what it has.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.errors import PlatformError, PlaylistError

log = logging.getLogger("cloudbank.kiosk_client.playlist")

PLAYLIST_PATH = "/media/api/kiosk/playlist"
MAX_ITEM_BYTES = 512 * 1024 * 1024
MAX_ITEMS = 200
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PlaylistItem:
    id: str
    kind: str
    name: str
    sha256: str
    size: int
    url: str
    duration_s: float


@dataclass(frozen=True)
class Playlist:
    id: str
    version: int
    items: tuple[PlaylistItem, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "items": [asdict(i) for i in self.items]}


def parse_playlist(body: Any) -> Playlist:
    """Validate a manifest strictly; a malformed one is refused as a whole."""
    try:
        raw = body["playlist"] if isinstance(body, dict) and "playlist" in body else body
        items = raw["items"]
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise PlaylistError(f"the playlist must list at most {MAX_ITEMS} items")
        parsed = []
        for i, it in enumerate(items):
            sha = str(it["sha256"]).lower()
            if not _SHA256.match(sha):
                raise PlaylistError(f"item {i} has no valid sha256")
            kind = str(it["kind"])
            if kind not in ("video", "image"):
                raise PlaylistError(f"item {i} has unknown kind {kind[:20]!r}")
            size = it["size"]
            if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_ITEM_BYTES:
                raise PlaylistError(f"item {i} has a size outside 1..{MAX_ITEM_BYTES} bytes")
            duration = float(it.get("duration_s", 10.0))
            if not 0 < duration <= 3600:
                raise PlaylistError(f"item {i} has a duration outside 0..3600 s")
            parsed.append(PlaylistItem(str(it["id"])[:64], kind, str(it.get("name", ""))[:200], sha, size,
                                       str(it["url"])[:2000], duration))
        return Playlist(str(raw["id"])[:64], int(raw["version"]), tuple(parsed))
    except (KeyError, TypeError, ValueError) as exc:
        raise PlaylistError(f"the playlist is malformed ({type(exc).__name__}: {exc})") from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PlaylistCache:
    """The on-disk cache of one kiosk's playlist."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.blobs = folder / "blobs"
        self.manifest_path = folder / "manifest.json"

    def blob(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise PlaylistError("not a SHA-256")
        return self.blobs / sha256

    def current(self) -> Playlist | None:
        """The cached playlist, or None when nothing verified was ever cached."""
        try:
            return parse_playlist(json.loads(self.manifest_path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, PlaylistError) as exc:
            log.warning("playlist cache: manifest unreadable (%s); ignoring it", exc)
            return None

    def playable(self) -> list[PlaylistItem]:
        """Items of the cached playlist whose blob is present with the right size."""
        playlist = self.current()
        if playlist is None:
            return []
        out = []
        for item in playlist.items:
            path = self.blobs / item.sha256
            if path.is_file() and path.stat().st_size == item.size:
                out.append(item)
        return out

    def verify(self) -> list[str]:
        """Re-hash every cached blob; removes and returns those that no longer match (disk rot, edits)."""
        bad = []
        if self.blobs.is_dir():
            for path in self.blobs.iterdir():
                if not _SHA256.match(path.name) or file_sha256(path) != path.name:
                    path.unlink()
                    bad.append(path.name)
        return bad

    def _commit(self, playlist: Playlist, staging: Path) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            os.replace(path, self.blobs / path.name)
        tmp = self.folder / f".manifest.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(playlist.to_json()))
        os.replace(tmp, self.manifest_path)
        keep = {i.sha256 for i in playlist.items}
        for path in self.blobs.iterdir():
            if path.name not in keep:
                path.unlink()


class PlaylistSync:
    """Fetches the playlist through a device's PlatformClient and keeps the cache current."""

    def __init__(self, client: PlatformClient, cache: PlaylistCache) -> None:
        self.client = client
        self.cache = cache

    def _item_url(self, item: PlaylistItem) -> str:
        url = urljoin(self.client.server + "/", item.url)
        server, target = urlsplit(self.client.server), urlsplit(url)
        if (target.scheme, target.netloc) != (server.scheme, server.netloc):
            raise PlaylistError(f"item {item.id} points outside the platform ({target.netloc})")
        return url

    async def sync(self) -> Playlist:
        """Fetch and cache; returns the playlist now cached. Offline: the cached one (if any)."""
        try:
            body = await self.client.request_url("GET", self.client.server + PLAYLIST_PATH)
        except PlatformError as exc:
            cached = self.cache.current()
            if exc.retryable and cached is not None:
                log.info("playlist: platform unreachable (%s); playing the cached playlist", exc.message)
                return cached
            raise PlaylistError(f"cannot fetch the playlist: {exc.message}") from None
        playlist = parse_playlist(body)
        self.cache.folder.mkdir(parents=True, exist_ok=True)
        staging = self.cache.folder / f".staging-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            for item in playlist.items:
                if (self.cache.blobs / item.sha256).is_file() or (staging / item.sha256).is_file():
                    continue
                await self._download(item, staging / item.sha256)
            self.cache._commit(playlist, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return playlist

    async def _download(self, item: PlaylistItem, dest: Path) -> None:
        url = self._item_url(item)
        h = hashlib.sha256()
        size = 0
        headers = {"Authorization": f"Bearer {self.client.token}"} if self.client.token else {}
        try:
            async with self.client.http.get(url, headers=headers) as resp:
                if resp.status != 200:
                    raise PlaylistError(f"item {item.id} ({item.name}): {url} answered {resp.status}")
                with dest.open("wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > item.size:
                            raise PlaylistError(f"item {item.id} ({item.name}) is larger than the "
                                                f"{item.size} bytes the playlist says")
                        h.update(chunk)
                        await asyncio.to_thread(f.write, chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PlaylistError(f"item {item.id} ({item.name}) could not be downloaded: {exc}") from None
        if size != item.size or h.hexdigest() != item.sha256:
            # The staging folder (and this partial file with it) is removed by sync().
            raise PlaylistError(f"item {item.id} ({item.name}) does not match its SHA-256 "
                                f"(got {h.hexdigest()[:12]}..., {size} bytes); the cached playlist is kept")
