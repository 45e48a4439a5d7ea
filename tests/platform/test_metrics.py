"""Metrics from a scripted day of queue events (injected clock) equal hand-computed values."""

from __future__ import annotations

import pytest
import redis.asyncio

from cloudbank.platform import metrics
from cloudbank.platform.config import Config
from cloudbank.platform.queue_log import QueueEvent, QueueLog
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.routing import QueueSpec, Router

T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def at(self, offset: float) -> None:
        self.now = T0 + offset

    def __call__(self) -> float:
        return self.now


async def scripted_day(r: redis.asyncio.Redis) -> tuple[Router, Clock]:
    """Two tellers, four customers. By hand (service level 20 s):
    A enters 0, answered 10 (wait 10), ends 310 (handle 300)
    B enters 20, rings at b from 50, ring-no-answer 70; answered by b 115 (wait 95), ends 415 (handle 300)
    C enters 100, offered to a when a's call ends at 310, answered 320 (wait 220), ends 500 (handle 180)
    D enters 200, leaves 260 (abandoned after 60)
    """
    clock = Clock()
    router = Router(r, clock=clock)
    await router.configure_queue(QueueSpec("general", "general", ring_timeout_s=20, wrapup_s=0))

    async def enter(offset: float, who: str) -> str:
        clock.at(offset)
        return str((await router.enqueue(service="general", customer=f"device:{who}", channel="kiosk"))["id"])

    async def ready(offset: float, teller: str) -> str | None:
        clock.at(offset)
        return (await router.set_state(teller, "ready", skills={"general": 1}))["offer_id"]  # type: ignore[no-any-return]

    async def accept(offset: float, teller: str) -> None:
        clock.at(offset)
        await router.accept(str((await router.teller(teller))["offer_id"]), teller)

    async def end(offset: float, teller: str) -> None:
        clock.at(offset)
        await router.call_ended(teller)

    await enter(0, "a")
    assert await ready(5, "a")
    await accept(10, "a")
    await enter(20, "b")
    assert await ready(50, "b")
    clock.at(70)
    assert (await router.tick()).expired == 1
    await enter(100, "c")
    assert await ready(110, "b")
    await accept(115, "b")
    d = await enter(200, "d")
    clock.at(260)
    await router.abandon(d, "device:d")
    await end(310, "a")
    await accept(320, "a")
    await end(415, "b")
    await end(500, "a")
    clock.at(600)
    return router, clock


@pytest.fixture
async def day(redis_client: redis.asyncio.Redis) -> tuple[Router, list[QueueEvent]]:
    router, _ = await scripted_day(redis_client)
    return router, await QueueLog(redis_client).recent(0)


def test_the_log_of_the_day(day: tuple[Router, list[QueueEvent]]) -> None:
    _, events = day
    assert [e.event for e in events] == ["enter", "offer", "accept", "enter", "offer", "timeout", "enter", "offer",
                                         "accept", "enter", "abandon", "complete", "offer", "accept", "complete",
                                         "complete"]


def test_whole_day_metrics_equal_the_hand_computed_ones(day: tuple[Router, list[QueueEvent]]) -> None:
    _, events = day
    m = metrics.compute(events, now=T0 + 600, window_s=3600, service_level_s=20)["general"]
    assert (m.offered, m.answered, m.answered_in_sl, m.abandoned, m.completed, m.timeouts) == (4, 3, 1, 1, 3, 1)
    assert m.service_level == pytest.approx(1 / 4)      # A only, of 3 answered + 1 abandoned
    assert m.asa_s == pytest.approx((10 + 95 + 220) / 3)
    assert m.abandon_rate == pytest.approx(1 / 4)
    assert m.aht_s == pytest.approx((300 + 300 + 180) / 3)
    assert m.avg_abandon_wait_s == pytest.approx(60)


def test_the_window_slides(day: tuple[Router, list[QueueEvent]]) -> None:
    _, events = day
    # (200, 600]: D's abandon, C's answer (wait 220) and all three completes
    m = metrics.compute(events, now=T0 + 600, window_s=400, service_level_s=20)["general"]
    assert (m.offered, m.answered, m.abandoned, m.completed) == (0, 1, 1, 3)
    assert (m.service_level, m.abandon_rate, m.asa_s) == (0.0, 0.5, pytest.approx(220))
    assert metrics.compute(events, now=T0 + 5000, window_s=400, service_level_s=20) == {}
    # a longer service-level time counts B's answer too
    m = metrics.compute(events, now=T0 + 600, window_s=3600, service_level_s=120)["general"]
    assert m.service_level == pytest.approx(2 / 4)


async def test_teller_counts_and_wallboard_snapshot(day: tuple[Router, list[QueueEvent]]) -> None:
    router, _ = day
    a, b = await router.teller("a"), await router.teller("b")
    assert a["today"] == {"calls": 2, "offered": 2, "missed": 0, "declined": 0, "handle_s": 480.0}
    assert b["today"] == {"calls": 1, "offered": 2, "missed": 1, "declined": 0, "handle_s": 300.0}
    snap = await router.snapshot()
    assert snap["queues"]["general"]["waiting"] == 0
    assert snap["queues"]["general"]["tellers"] == {"offline": 0, "ready": 2, "not_ready": 0, "offered": 0,
                                                    "busy": 0, "wrap_up": 0}


async def test_records_give_the_same_metrics_as_the_stream(day: tuple[Router, list[QueueEvent]],
                                                          config: Config) -> None:
    router, events = day
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    log = QueueLog(router.redis, engine)
    assert await log.persist("n1", count=1000) == len(events)
    from_records = metrics.compute(await log.history(), now=T0 + 600, window_s=3600, service_level_s=20)
    assert from_records == metrics.compute(events, now=T0 + 600, window_s=3600, service_level_s=20)
    await engine.dispose()


async def test_prometheus_text(day: tuple[Router, list[QueueEvent]]) -> None:
    router, events = day
    computed = metrics.compute(events, now=T0 + 600, window_s=3600, service_level_s=20)
    text = metrics.prometheus(computed, await router.snapshot(), 3600)
    lines = text.splitlines()
    for expected in ('cloudbank_queue_service_level{queue="general"} 0.25',
                     'cloudbank_queue_asa_s{queue="general"} 108.333',
                     'cloudbank_queue_abandon_rate{queue="general"} 0.25',
                     'cloudbank_queue_aht_s{queue="general"} 260',
                     'cloudbank_queue_answered{queue="general"} 3',
                     'cloudbank_queue_waiting{queue="general"} 0',
                     'cloudbank_queue_tellers{queue="general",state="ready"} 2'):
        assert expected in lines
    # every sample line is "name{labels} number" under a TYPE line for its name
    types = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    for line in lines:
        if not line.startswith("#"):
            name, value = line.split("{")[0], line.rsplit(" ", 1)[1]
            assert name in types and float(value) >= 0


def test_label_values_are_escaped() -> None:
    text = metrics.prometheus({'we"ird\\q': metrics.QueueMetrics(offered=1)}, {"queues": {}}, 60)
    assert 'cloudbank_queue_offered{queue="we\\"ird\\\\q"} 1' in text.splitlines()
