"""`cloudbank bench kiosks [--calls N] [--seconds S] [--json PATH]`: calls through the customer SDK.

Starts the platform and a video node on a free loopback port (embedded Redis and SQLite in a
temporary folder unless --redis-url is given), then N kiosks (SDK) take tickets and N tellers (SDK)
accept them; both sides send 320x240 stamped video at 15 fps and a tone. Reports per call the time
from ticket to media flowing both ways, then over S seconds the stamped frames each side received
and lost (gaps in the counters), and the process's CPU (everything - SDK peers, platform, video
node - runs in this one process, so it is an upper bound for each part). All media stays on
127.0.0.1: both ends gather ICE candidates only there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.cli import register_bench
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root

PASSWORD = "bench password 123"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _events_into(client: PlatformClient, sink: list[dict[str, Any]]) -> Any:
    stream = client.events()

    async def pump() -> None:
        async for event in stream:
            sink.append(event)

    task = asyncio.create_task(pump())
    await stream.wait_connected()
    return stream, task


async def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # noqa: ASYNC110 - polling plain state in a bounded loop
        if time.monotonic() > deadline:
            raise TimeoutError("the call did not come up in time")
        await asyncio.sleep(0.02)


async def _one_call(url: str, directory: Directory, index: int, seconds: float) -> dict[str, Any]:
    await directory.add_user(f"bench-teller-{index}", "teller", password=PASSWORD, skills={"general": 1})
    teller = PlatformClient(url)
    teller.token = (await teller.request("POST", "login", {"username": f"bench-teller-{index}",
                                                           "password": PASSWORD}))["token"]
    kiosk = PlatformClient(url)
    await kiosk.enrol(await directory.create_enrolment_code("bench"), f"bench-kiosk-{index}")
    t_events: list[dict[str, Any]] = []
    k_events: list[dict[str, Any]] = []
    streams = [await _events_into(teller, t_events), await _events_into(kiosk, k_events)]
    await teller.request("POST", "teller/state", {"state": "ready"})
    k_media, t_media = synthetic(1), synthetic(2)
    calls: list[Call] = []
    try:
        start = time.monotonic()
        await kiosk.create_ticket("general")
        await _wait(lambda: any(e["type"] == "offer" for e in t_events), 60)
        offer = next(e for e in t_events if e["type"] == "offer")
        accepted = await teller.request("POST", f"offers/{offer['offer_id']}/accept")
        await _wait(lambda: any(e["type"] == "session.started" for e in k_events), 30)
        started = next(e for e in k_events if e["type"] == "session.started")
        t_call = Call(VideoGrant.from_json(accepted["video"]), t_media, ice_addresses=["127.0.0.1"])
        k_call = Call(await kiosk.join_session(str(started["session"]["id"])), k_media, ice_addresses=["127.0.0.1"])
        calls = [t_call, k_call]
        await asyncio.gather(t_call.join(), k_call.join())
        await _wait(lambda: bool(t_call.remote.stamps) and bool(k_call.remote.stamps), 30)
        setup_s = time.monotonic() - start
        marks = (len(k_call.remote.stamps), len(t_call.remote.stamps))
        await asyncio.sleep(seconds)
        result: dict[str, Any] = {"setup_s": round(setup_s, 3)}
        for side, call, mark in (("kiosk", k_call, marks[0]), ("teller", t_call, marks[1])):
            counters = [c for _s, c in call.remote.stamps[mark:]]
            span = (counters[-1] - counters[0] + 1) if counters else 0
            result[f"{side}_frames"] = len(counters)
            result[f"{side}_lost"] = max(0, span - len(set(counters)))
            result[f"{side}_rejoins"] = call.rejoins
        return result
    finally:
        for call in calls:
            await call.leave()
        k_media.stop()
        t_media.stop()
        for stream, task in streams:
            await stream.close()
            task.cancel()
        await teller.close()
        await kiosk.close()


async def bench(config: Config, calls: int, seconds: float) -> dict[str, Any]:
    port = _free_port()
    cfg = config.with_(host="127.0.0.1", port=port, public_url="", ice_addresses=("127.0.0.1",),
                       video_drain_s=0.0, asr_pool_size=0)
    engine = create_engine(cfg.effective_database_url)
    await migrate(engine)
    directory = Directory(engine)
    await directory.ensure_branch("bench", "Bench Branch")
    await seed_services(Catalogue(engine))
    runner = web.AppRunner(build_root(cfg, ["platform", "video"]), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        cpu0, wall0 = _cpu_s(), time.monotonic()
        results = await asyncio.gather(*(_one_call(cfg.base_url, directory, i, seconds) for i in range(calls)))
        cpu, wall = _cpu_s() - cpu0, time.monotonic() - wall0
    finally:
        await runner.cleanup()
        await engine.dispose()
    setups = sorted(r["setup_s"] for r in results)
    expected = seconds * 15
    return {
        "calls": calls, "seconds": seconds, "fps_sent": 15, "resolution": "320x240",
        "setup_s_median": round(statistics.median(setups), 3), "setup_s_max": setups[-1],
        "frames_per_side_min": min(min(r["kiosk_frames"], r["teller_frames"]) for r in results),
        "frames_expected_per_side": int(expected),
        "frames_lost_total": sum(r["kiosk_lost"] + r["teller_lost"] for r in results),
        "process_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "per_call": list(results),
    }


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=2, help="simultaneous kiosk-teller calls (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long media flows per call (default 10)")


def _run(args: argparse.Namespace, config: Config) -> int:
    calls = max(1, min(50, int(args.calls)))
    seconds = max(1.0, min(600.0, float(args.seconds)))

    def go(cfg: Config) -> dict[str, Any]:
        return asyncio.run(bench(cfg, calls, seconds))

    with tempfile.TemporaryDirectory(prefix="cloudbank-bench-kiosks-") as tmp:
        data = Path(tmp)
        cfg = config.with_(data=data, database_url=f"sqlite+aiosqlite:///{data / 'bench.sqlite3'}")
        if cfg.redis_url is None:
            from cloudbank.platform.redis_server import EmbeddedRedis

            with EmbeddedRedis(data / "redis") as redis:
                result = go(cfg.with_(redis_url=redis.url))
        else:
            result = go(cfg)
    rows = [("calls", result["calls"]), ("ticket -> media both ways, median s", result["setup_s_median"]),
            ("ticket -> media both ways, max s", result["setup_s_max"]),
            (f"stamped frames per side in {seconds:g} s (min; {result['frames_expected_per_side']} sent)",
             result["frames_per_side_min"]),
            ("frames lost (counter gaps), all sides", result["frames_lost_total"]),
            ("process CPU, % of one core (SDK peers + platform + video node)",
             result["process_cpu_percent_of_one_core"])]
    for name, value in rows:
        print(f"{name:<70} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


register_bench("kiosks", "customer SDK calls end to end: setup time, frames delivered, CPU", _add_args, _run)
