"""The keyword rules of one call on a video node: the catalogue's phrases and the call's service.

At start the node gives its phrase search every phrase of the catalogue (`catalogue_rules`); when a
call's room opens, its `KeywordSpotter` is built from the catalogue as it is then and the session's
service (`call_spotter`), so a suggestion fires whatever the call is about and a required or
forbidden phrase only in calls of its own service.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.video.keywords import KeywordRule, KeywordSpotter, rules_from_services

log = logging.getLogger(__name__)


async def catalogue_rules(engine: AsyncEngine) -> list[KeywordRule]:
    """The rules of every service in the catalogue ([] when it cannot be read: no phrases)."""
    from cloudbank.platform.catalogue import Catalogue

    try:
        return rules_from_services([s.full() for s in await Catalogue(engine).list()])
    except SQLAlchemyError as exc:
        log.warning("keyword rules: the catalogue cannot be read (%s); no phrases are spotted", exc)
        return []


async def session_service(engine: AsyncEngine, session_id: str) -> str | None:
    """The service code of a session (None: no such session row)."""
    from cloudbank.platform.records import sessions

    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(sessions.c.service).where(sessions.c.id == session_id))).first()
    except SQLAlchemyError as exc:
        log.warning("keyword rules: session %s cannot be read (%s)", session_id, exc)
        return None
    return str(row.service) if row is not None else None


async def call_spotter(engine: AsyncEngine, session_id: str) -> KeywordSpotter:
    """The spotter of one call: the catalogue's rules now, for the session's service."""
    return KeywordSpotter(await catalogue_rules(engine), await session_service(engine, session_id))
