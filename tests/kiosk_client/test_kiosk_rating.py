"""The headless kiosk rates the call it served: `cloudbank kiosk --headless --service general --rating N`
(issue 10, satisfaction), end to end against the real platform and video node; the rating is read back
from the platform's records, and a score outside 1-5 is refused before the kiosk starts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.platform.records import create_engine, ratings

from .conftest import Stack, Teller


def _kiosk(stack: Stack, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cloudbank.platform", "kiosk", "--server", stack.url, "--kiosk-data", str(data),
            "--headless", "--ice-address", "127.0.0.1", "--heartbeat-s", "5", *extra]


@pytest.mark.slow
async def test_the_headless_kiosk_rates_the_call(stack: Stack, teller: Teller, tmp_path: Path) -> None:
    code = await stack.directory.create_enrolment_code("demo")
    proc = await asyncio.create_subprocess_exec(
        *_kiosk(stack, tmp_path / "kiosk", "--enrol-code", code, "--service", "general", "--rating", "4",
                "--rating-comment", "Helpful"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    call = None
    try:
        session_id, grant = await teller.accept_next(timeout=60)
        call = joined = Call(grant, synthetic(22), ice_addresses=["127.0.0.1"])
        await joined.join()
        await joined.wait_for(lambda: len(joined.remote.stamps) >= 5, 30)
        await teller.client.request("POST", f"sessions/{session_id}/end")
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
    assert f"kiosk: rated session {session_id} score=4" in log, log
    engine = create_engine(stack.config.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(ratings.c.score, ratings.c.comment, ratings.c.teller_id)
                                       .where(ratings.c.session_id == session_id))).all()
    finally:
        await engine.dispose()
    assert [(r.score, r.comment) for r in rows] == [(4, "Helpful")]


async def test_a_rating_outside_1_to_5_is_refused_at_the_command_line(stack: Stack, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(*_kiosk(stack, tmp_path / "k", "--service", "general", "--rating", "6"),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and "--rating" in out.decode()
