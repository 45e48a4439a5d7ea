"""The content-addressed blob store: every upload is kept once, under the SHA-256 of its bytes.

Layout under `config.data / "media"`: `blobs/<first 2 hex>/<sha256>` and `tmp/` for uploads in
progress. An upload streams into a temporary file while it is hashed and counted; it is refused as
soon as it passes the size limit, and when its first bytes are not one of the allowed formats
(checked by magic bytes, never by the name or the declared type alone). A finished upload is
renamed into place atomically, so a reader never sees half a blob; the same bytes twice are stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cloudbank.platform.errors import BadRequest, TooLarge, UnsupportedMedia

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Enough of the head of a file to tell every allowed format apart (Matroska's DocType comes early).
SNIFF_BYTES = 64

# content type -> kind; the kiosk playlist plays videos and images, documents are pushed in calls.
KINDS = {
    "video/mp4": "video",
    "video/webm": "video",
    "image/png": "image",
    "image/jpeg": "image",
    "application/pdf": "document",
}
# ISO base media brands of MP4 video (an `ftyp` box with an image brand such as HEIC/AVIF is not video).
_MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash",
               b"msnv", b"mmp4", b"f4v "}


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, when it is one we accept; None otherwise."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: WebM names its DocType "webm" in the header; other Matroska files are not accepted.
        doctype = head.find(b"\x42\x82")
        if doctype != -1 and b"webm" in head[doctype:doctype + 8]:
            return "video/webm"
        return None
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _MP4_BRANDS:
        return "video/mp4"
    return None


def check_name(name: str) -> str:
    """A display name for an upload: a plain file name, never a path (refused, not rewritten)."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise BadRequest("the name must be 1 to 200 characters", field="name")
    if any(ch in clean for ch in "/\\") or clean in (".", "..") or ".." in clean or clean.startswith("."):
        raise BadRequest("the name must be a plain file name, not a path", field="name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in clean):
        raise BadRequest("the name contains control characters", field="name")
    return clean


def check_sha256(value: str) -> str:
    if not SHA256_RE.match(value):
        raise BadRequest("not a SHA-256 (64 lowercase hex digits)", field="sha256")
    return value


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    content_type: str
    created: bool  # False when the same bytes were stored already


class BlobStore:
    """Blobs under `root`; `max_bytes` caps a single upload."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.blobs / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def put(self, chunks: AsyncIterator[bytes], declared_type: str | None = None) -> StoredBlob:
        """Store a stream of bytes. Refuses (and keeps nothing of) a stream that is too large, empty,
        not an allowed format, or whose format differs from `declared_type` (when one is declared)."""
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        tmp = self.tmp / f"upload-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        head = b""
        content_type: str | None = None
        f = await asyncio.to_thread(tmp.open, "xb")
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(f"the upload is larger than the limit of {self.max_bytes} bytes",
                                       limit=self.max_bytes)
                    if content_type is None:
                        head = (head + chunk)[:SNIFF_BYTES]
                        if len(head) >= SNIFF_BYTES:
                            content_type = self._check_type(head, declared_type)
                    digest.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                if size == 0:
                    raise BadRequest("the upload is empty")
                if content_type is None:
                    content_type = self._check_type(head, declared_type)
            finally:
                await asyncio.to_thread(f.close)
            sha = digest.hexdigest()
            dest = self.path(sha)
            created = await asyncio.to_thread(self._promote, tmp, dest)
            return StoredBlob(sha, size, content_type, created)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp.unlink)

    @staticmethod
    def _check_type(head: bytes, declared: str | None) -> str:
        found = sniff(head)
        if found is None:
            raise UnsupportedMedia("the file is not an allowed type: MP4 or WebM video, PNG or JPEG image, "
                                   "or PDF document", allowed=sorted(KINDS))
        if declared and declared != "application/octet-stream" and declared != found:
            raise UnsupportedMedia(f"the file was sent as {declared[:64]} but its content is {found}",
                                   detected=found)
        return found

    @staticmethod
    def _promote(tmp: Path, dest: Path) -> bool:
        if dest.is_file():
            return False  # the same bytes are stored already: dedupe
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        return True

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()
