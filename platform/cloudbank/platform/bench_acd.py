"""`cloudbank bench acd`: the real routing code against a real Redis, under load.

N tickets wait across four queues (four skills, all three strategies, priority classes); M tellers
with one to three skills go ready, take offers, end calls and wrap up, while new customers arrive
so that about N keep waiting. `--concurrency` requests are in flight at once, as on a busy node.
The matcher's timer (`tick`) runs as in production.

A *decision* is one state-changing routing call, each one atomic Lua script (+ the events it
publishes): enqueue, ready, accept, call end, wrap-up end. Its latency is measured around the
whole call as a node sees it. `redis_rtt_ms_p50` is a plain PING on an idle connection in the same
run. `double_offers` replays the queue log: a ticket offered while it had a live offer, or a teller
offered while holding one; it must be 0.

The client is the one every service uses (`service.redis_client`: hiredis, a blocking pool,
socket timeouts) on asyncio's default loop, as the platform runs. `client_cpu_us_per_decision` is
this process's CPU time per decision: unlike decisions/s it hardly depends on what else loads the
machine. (uvloop was tried here: about 5% less CPU per decision and no more decisions per second,
so it is not a dependency.)

Without `--redis-url` a private embedded Redis is started in a temporary folder; a given Redis
must have an empty database (e.g. redis://host/15): the benchmark writes, then flushes, it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from cloudbank.platform import cli
from cloudbank.platform.config import Config
from cloudbank.platform.errors import ApiError, StartupError
from cloudbank.platform.queue_log import QueueLog
from cloudbank.platform.redis_pool import redis_for
from cloudbank.platform.routing import QueueSpec, Router

QUEUES = (QueueSpec("general", "general", "longest_idle", 20, 30, 300),
          QueueSpec("cards", "cards", "fewest_calls", 20, 30, 240),
          QueueSpec("loans", "loans", "skill_level", 20, 30, 600),
          QueueSpec("wealth", "wealth", "skill_level", 20, 30, 900))
PRIORITIES = ("normal",) * 8 + ("elderly", "vip")
MAX_SECONDS = 600


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--waiting", type=int, default=10000, help="tickets kept waiting (default 10000)")
    p.add_argument("--tellers", type=int, default=1000, help="tellers (default 1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured time (default 10)")
    p.add_argument("--concurrency", type=int, default=8, help="routing calls in flight at once (default 8)")
    p.add_argument("--seed", type=int, default=1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def _ping_ms(redis: Redis, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await redis.ping()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def count_double_offers(redis: Redis) -> tuple[int, int]:
    """(double offers, offers) from a replay of the queue log."""
    live_ticket: dict[str, str] = {}
    live_teller: dict[str, str] = {}
    doubles = offers = 0
    for ev in await QueueLog(redis).recent(0, batch=5000, max_events=10_000_000):
        offer = str(ev.data.get("offer", ""))
        if ev.event == "offer":
            offers += 1
            if ev.ticket_id in live_ticket or str(ev.teller_id) in live_teller:
                doubles += 1
            live_ticket[ev.ticket_id] = offer
            live_teller[str(ev.teller_id)] = offer
        elif ev.event in ("accept", "decline", "timeout", "abandon") and offer:
            live_ticket.pop(ev.ticket_id, None)
            live_teller.pop(str(ev.teller_id), None)
    return doubles, offers


class Load:
    """The simulated branch network: tellers cycling through calls and customers arriving."""

    def __init__(self, router: Router, tellers: int, waiting: int, rng: random.Random) -> None:
        self.router = router
        self.rng = rng
        self.target_waiting = waiting
        self.waiting = 0
        self.customers = 0
        self.latencies: list[float] = []
        self.offers_made = 0
        self.errors = 0
        self.skills = {f"teller{i:05d}": {q.skill: rng.randint(1, 5) for q in rng.sample(QUEUES, rng.randint(1, 3))}
                       for i in range(tellers)}
        # each teller's next move is decided from what the last call returned
        self.state: dict[str, dict[str, Any]] = {t: {"state": "offline"} for t in self.skills}
        self.idle: deque[str] = deque(self.skills)

    async def timed(self, call: Awaitable[Any]) -> Any:
        t = time.perf_counter()
        result = await call
        self.latencies.append((time.perf_counter() - t) * 1000)
        return result

    async def enqueue(self, measure: bool = True) -> None:
        self.customers += 1
        call = self.router.enqueue(service=self.rng.choice(QUEUES).code, customer=f"phone:c{self.customers}",
                                   channel=self.rng.choice(("kiosk", "phone")), priority=self.rng.choice(PRIORITIES))
        ticket = await (self.timed(call) if measure else call)
        self.waiting += 1
        if ticket["state"] == "offered":
            self.waiting -= 1
            self.offers_made += 1

    async def step(self, teller: str) -> None:
        """One move of one teller (a teller is only ever moved by one worker at a time)."""
        st = self.state[teller]
        router = self.router
        try:
            if st["state"] in ("offline", "not_ready"):
                st = await self.timed(router.set_state(teller, "ready", skills=self.skills[teller]))
                self._count_offer(st)
            elif st["state"] == "ready":
                # a real teller waits for the offer event; here: look again at most every 20 ms
                if time.perf_counter() - st.get("_polled", 0.0) < 0.02:
                    await asyncio.sleep(0)
                    return
                st = {**await router.teller(teller), "_polled": time.perf_counter()}
            elif st["state"] == "offered":
                await self.timed(router.accept(st["offer_id"], teller))
                st = {"state": "busy"}
                if self.waiting < self.target_waiting:
                    await self.enqueue()
            elif st["state"] == "busy":
                st = await self.timed(router.call_ended(teller))
            elif st["state"] == "wrap_up":
                st = await self.timed(router.wrapup_done(teller))
                self._count_offer(st)
        except ApiError:
            self.errors += 1
            st = await router.teller(teller)
        self.state[teller] = st

    def _count_offer(self, view: dict[str, Any]) -> None:
        if view["state"] == "offered":
            self.offers_made += 1
            self.waiting -= 1

    async def worker(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if not self.idle:  # more workers than tellers
                await asyncio.sleep(0.001)
                continue
            teller = self.idle.popleft()
            try:
                await self.step(teller)
            finally:
                self.idle.append(teller)


async def run_bench(redis: Redis, waiting: int, tellers: int, seconds: float, concurrency: int,
                    seed: int) -> dict[str, Any]:
    if await redis.dbsize():
        raise StartupError("the benchmark needs an empty Redis database (it flushes it afterwards); "
                           "use another database number, e.g. redis://host/15")
    rng = random.Random(seed)
    router = Router(redis, callback_threshold_s=1e9)
    for spec in QUEUES:
        await router.configure_queue(spec)
    load = Load(router, tellers, waiting, rng)
    setup_start = time.perf_counter()
    for i in range(0, waiting, 100):
        await asyncio.gather(*(load.enqueue(measure=False) for _ in range(min(100, waiting - i))))
    setup_s = time.perf_counter() - setup_start
    rtt = await _ping_ms(redis, 2000)
    push_start = time.perf_counter()
    pushed = await router.push_positions(min_interval_s=0)
    push_ms = (time.perf_counter() - push_start) * 1000

    async def ticker(deadline: float) -> None:
        while time.perf_counter() < deadline:
            await router.tick()
            await asyncio.sleep(0.5)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(ticker(deadline), *(load.worker(deadline) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    rtt_after = await _ping_ms(redis, 500)
    doubles, offers = await count_double_offers(redis)
    info = await redis.info("cpu")
    decisions = len(load.latencies)
    return {
        "waiting": waiting, "tellers": tellers, "seconds": round(elapsed, 2), "concurrency": concurrency,
        "decisions": decisions, "decisions_per_s": round(decisions / elapsed, 1),
        "decision_ms_p50": round(percentile(load.latencies, 50), 3),
        "decision_ms_p99": round(percentile(load.latencies, 99), 3),
        "decision_ms_mean": round(statistics.fmean(load.latencies), 3) if load.latencies else 0.0,
        "offers_in_run": load.offers_made, "offers_in_log": offers,
        "redis_rtt_ms_p50": round(percentile(rtt + rtt_after, 50), 3),
        "double_offers": doubles, "refused_calls": load.errors,
        "waiting_at_end": sum([int(await redis.zcard(f"acd:q:{q.code}")) for q in QUEUES]),
        "setup_s": round(setup_s, 2), "position_push_ms": round(push_ms, 1), "positions_pushed": pushed,
        "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
        "client_cpu_us_per_decision": round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
                                            / max(1, decisions) * 1e6, 1),
        "redis_cpu_s_total": round(float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0)), 2),
    }


def print_table(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    print("cloudbank bench acd")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    verdict = ("OK" if result["decisions_per_s"] >= 3000 and result["decision_ms_p99"] < 10
               and result["double_offers"] == 0
               else "BELOW TARGET")
    print(f"  {'target':<{width}}  >= 3000 decisions/s, p99 < 10 ms, 0 double offers: {verdict}")


async def _bench(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    redis = redis_for(config)  # the production client, pool and timeouts included
    try:
        return await run_bench(redis, args.waiting, args.tellers, args.seconds, args.concurrency, args.seed)
    finally:
        await redis.flushdb()
        await redis.aclose()


def run(args: argparse.Namespace, config: Config) -> int:
    for name, lo, hi in (("waiting", 0, 1_000_000), ("tellers", 1, 100_000), ("concurrency", 1, 1000)):
        if not lo <= getattr(args, name) <= hi:
            raise StartupError(f"--{name} must be between {lo} and {hi}")
    if not 0 < args.seconds <= MAX_SECONDS:
        raise StartupError(f"--seconds must be more than 0 and at most {MAX_SECONDS}")
    if not config.redis_embedded:
        result = asyncio.run(_bench(config, args))
    else:
        from cloudbank.platform.redis_server import EmbeddedRedis

        with tempfile.TemporaryDirectory(prefix="cloudbank-bench-") as tmp, EmbeddedRedis(Path(tmp)) as server:
            result = asyncio.run(_bench(config.with_(redis_url=server.url), args))
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


cli.register_bench("acd", "routing decisions per second on a real Redis (N waiting, M tellers)", add_args, run)
