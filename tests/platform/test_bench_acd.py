"""The ACD benchmark runs end to end on a small load and reports what the issue asks for."""

from __future__ import annotations

import json
from pathlib import Path

import redis.asyncio

from cloudbank.platform import bench_acd, cli


async def test_small_run_reports_the_figures_and_no_double_offers(redis_client: redis.asyncio.Redis) -> None:
    result = await bench_acd.run_bench(redis_client, waiting=200, tellers=20, seconds=0.5, concurrency=4, seed=3)
    for key in ("decisions_per_s", "decision_ms_p50", "decision_ms_p99", "redis_rtt_ms_p50", "double_offers"):
        assert key in result
    assert result["decisions"] > 0 and result["offers_in_log"] > 0
    assert result["double_offers"] == 0
    assert result["offers_in_run"] == result["offers_in_log"]  # every offer the bench saw is in the queue log


async def test_refuses_a_redis_that_is_not_empty(redis_client: redis.asyncio.Redis) -> None:
    await redis_client.set("someone:else", "1")
    try:
        await bench_acd.run_bench(redis_client, waiting=1, tellers=1, seconds=0.1, concurrency=1, seed=1)
    except Exception as exc:  # noqa: BLE001
        assert "empty Redis database" in str(exc)
    else:
        raise AssertionError("a non-empty database was used")
    assert await redis_client.get("someone:else") == "1"


def test_cli_writes_json(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "acd.json"
    code = cli.main(["bench", "acd", "--redis-url", redis_url, "--data", str(tmp_path), "--waiting", "50",
                     "--tellers", "5", "--seconds", "0.3", "--json", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["double_offers"] == 0
    assert cli.main(["bench", "acd", "--seconds", "0", "--data", str(tmp_path), "--redis-url", redis_url]) == 2
