"""The media library: one item per stored blob, with the name and type an admin uploaded it as."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.media.store import KINDS, StoredBlob
from cloudbank.platform.errors import NotFound
from cloudbank.platform.records import media_items


@dataclass(frozen=True)
class Item:
    id: str
    sha256: str
    kind: str
    content_type: str
    name: str
    size: int
    uploaded_by: str
    created_at: float

    def public(self, base: str) -> dict[str, Any]:
        """As the API shows it; `base` is the media app's URL prefix (e.g. "/media/")."""
        return {"id": self.id, "sha256": self.sha256, "kind": self.kind, "content_type": self.content_type,
                "name": self.name, "size": self.size, "uploaded_by": self.uploaded_by,
                "created_at": self.created_at, "url": blob_url(base, self.sha256)}


def blob_url(base: str, sha256: str) -> str:
    return f"{base}api/blobs/{sha256}"


def _item(row: Any) -> Item:
    return Item(row.id, row.sha256, row.kind, row.content_type, row.name, int(row.size), row.uploaded_by,
                float(row.created_at))


class Library:
    """Items in the records database (the bytes are in the BlobStore)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, blob: StoredBlob, name: str, by: str) -> tuple[Item, bool]:
        """The item for a stored blob; (existing item, False) when these bytes were uploaded before."""
        existing = await self.by_sha(blob.sha256)
        if existing is not None:
            return existing, False
        item = Item(str(uuid.uuid4()), blob.sha256, KINDS[blob.content_type], blob.content_type, name,
                    blob.size, by, time.time())
        try:
            async with self.engine.begin() as conn:
                await conn.execute(media_items.insert().values(
                    id=item.id, sha256=item.sha256, kind=item.kind, content_type=item.content_type,
                    name=item.name, size=item.size, uploaded_by=item.uploaded_by, created_at=item.created_at))
        except IntegrityError:
            # Another admin (or node) stored the same bytes a moment ago: theirs is the item.
            again = await self.by_sha(blob.sha256)
            if again is None:
                raise
            return again, False
        return item, True

    async def get(self, item_id: str) -> Item:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(media_items).where(media_items.c.id == item_id))).first()
        if row is None:
            raise NotFound(f"no media item {item_id[:64]}", item_id=item_id[:64])
        return _item(row)

    async def many(self, item_ids: list[str]) -> dict[str, Item]:
        if not item_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(media_items).where(media_items.c.id.in_(set(item_ids))))).all()
        return {r.id: _item(r) for r in rows}

    async def by_sha(self, sha256: str) -> Item | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(media_items).where(media_items.c.sha256 == sha256))).first()
        return None if row is None else _item(row)

    async def delete(self, item_id: str) -> bool:
        """Remove the item's row (the caller deletes the blob); False when it was already gone."""
        async with self.engine.begin() as conn:
            done = await conn.execute(media_items.delete().where(media_items.c.id == item_id))
        return bool(done.rowcount == 1)

    async def list(self, kind: str | None = None, limit: int = 1000) -> list[Item]:
        query = sa.select(media_items).order_by(media_items.c.created_at.desc()).limit(limit)
        if kind is not None:
            query = query.where(media_items.c.kind == kind)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_item(r) for r in rows]
