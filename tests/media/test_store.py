"""The blob store on real files: content addressing, dedupe, size limit, types by magic bytes, names."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloudbank.media.store import BlobStore, check_name, check_sha256, sniff
from cloudbank.platform.errors import BadRequest, TooLarge, UnsupportedMedia


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """Small, odd-sized chunks: the type check must work across chunk boundaries."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["png", "jpeg", "pdf", "webm", "mp4"])
def test_sniff_knows_every_allowed_type(samples: Any, kind: str) -> None:
    expected = {"png": "image/png", "jpeg": "image/jpeg", "pdf": "application/pdf", "webm": "video/webm",
                "mp4": "video/mp4"}[kind]
    assert sniff(getattr(samples, kind)[:64]) == expected


@pytest.mark.parametrize("head", [
    b"GIF89a" + b"\0" * 60,                                # an image type we do not take
    b"<svg xmlns='http://www.w3.org/2000/svg'>" + b" " * 30,  # scriptable
    b"MZ\x90\x00" + b"\0" * 60,                           # an executable
    b"PK\x03\x04" + b"\0" * 60,                           # a zip
    b"\x1a\x45\xdf\xa3\x42\x82\x88matroska" + b"\0" * 50,   # Matroska that is not WebM
    b"\0\0\0\x18ftypheic" + b"\0" * 52,                   # HEIC image in an ISO box
    b"",
])
def test_sniff_refuses_other_content(head: bytes) -> None:
    assert sniff(head) is None


async def test_put_stores_under_sha256_and_dedupes(tmp_path: Path, samples: Any) -> None:
    store = BlobStore(tmp_path / "media", 1 << 20)
    first = await store.put(chunks(samples.png), "image/png")
    assert first.sha256 == hashlib.sha256(samples.png).hexdigest()
    assert first.size == len(samples.png) and first.content_type == "image/png" and first.created
    assert store.path(first.sha256).read_bytes() == samples.png
    second = await store.put(chunks(samples.png, 1000), None)
    assert second.sha256 == first.sha256 and not second.created
    assert files_under(tmp_path / "media") == [store.path(first.sha256)]  # one copy, no temp files left


async def test_oversized_upload_refused_and_nothing_kept(tmp_path: Path, samples: Any) -> None:
    store = BlobStore(tmp_path / "media", len(samples.webm) - 1)
    with pytest.raises(TooLarge):
        await store.put(chunks(samples.webm, 4096), "video/webm")
    assert files_under(tmp_path / "media") == []
    exact = BlobStore(tmp_path / "media", len(samples.webm))
    assert (await exact.put(chunks(samples.webm, 4096), "video/webm")).size == len(samples.webm)


async def test_wrong_type_refused_and_nothing_kept(tmp_path: Path, samples: Any) -> None:
    store = BlobStore(tmp_path / "media", 1 << 20)
    with pytest.raises(UnsupportedMedia):
        await store.put(chunks(b"GIF89a" + b"\0" * 500), None)
    # A real PNG declared as a PDF: the declared type must match the content.
    with pytest.raises(UnsupportedMedia) as exc:
        await store.put(chunks(samples.png), "application/pdf")
    assert exc.value.details["detected"] == "image/png"
    # Shorter than the sniffing window and not a known type.
    with pytest.raises(UnsupportedMedia):
        await store.put(chunks(b"hello"), None)
    with pytest.raises(BadRequest):
        await store.put(chunks(b""), None)
    assert files_under(tmp_path / "media") == []


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.png", "a\\b.png", "..", ".", ".hidden.png",
                                  "x..png", "bad\x00.png", "tab\t.png", "", "   ", "x" * 201])
def test_path_tricks_in_names_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        check_name(name)


def test_plain_names_kept() -> None:
    assert check_name("  Spring promo 2026 (中文).mp4 ") == "Spring promo 2026 (中文).mp4"


@pytest.mark.parametrize("value", ["../" + "a" * 61, "A" * 64, "a" * 63, "g" * 64, "a" * 64 + "/"])
def test_blob_paths_only_for_sha256(tmp_path: Path, value: str) -> None:
    with pytest.raises(BadRequest):
        check_sha256(value)
    with pytest.raises(BadRequest):
        BlobStore(tmp_path, 1024).path(value)
