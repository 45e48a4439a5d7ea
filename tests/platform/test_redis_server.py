from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from cloudbank.platform.errors import StartupError
from cloudbank.platform.redis_server import EmbeddedRedis


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_starts_with_aof_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    client = redis.Redis(unix_socket_path=str(server.socket_path))
    client.set("k", "v")
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.close()
    server.stop()
    assert not _alive(pid)
    # AOF on: data survives a restart
    with EmbeddedRedis(tmp_path / "r") as again:
        assert redis.Redis(unix_socket_path=str(again.socket_path)).get("k") == b"v"


def test_long_folder_uses_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    with EmbeddedRedis(deep) as server:
        assert len(str(server.socket_path)) < 100
        assert redis.Redis(unix_socket_path=str(server.socket_path)).ping()


def test_dies_with_its_parent(tmp_path: Path) -> None:
    """A parent killed with SIGKILL (no cleanup at all) must not leave redis-server behind."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from cloudbank.platform.redis_server import EmbeddedRedis
        s = EmbeddedRedis(Path({str(tmp_path / 'r')!r}))
        s.start()
        print(s.process.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        if not _alive(child_pid):
            break
        time.sleep(0.05)
    assert not _alive(child_pid)


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StartupError, match="cannot create the Redis folder"):
        EmbeddedRedis(blocker / "r").start()


def test_a_second_start_on_a_folder_in_use_is_refused_and_leaves_the_first_running(tmp_path: Path) -> None:
    # `cloudbank up` twice on one data folder: the second used to stop the first one's Redis as
    # "stale", take its socket, and on exit leave the first instance with no Redis at all.
    with EmbeddedRedis(tmp_path / "redis") as first:
        assert first.process is not None
        with pytest.raises(StartupError, match="in use by a running cloudbank"):
            EmbeddedRedis(tmp_path / "redis").start()
        assert _alive(first.process.pid)
        assert redis.Redis(unix_socket_path=str(first.socket_path)).ping()
    # Stopped, the folder is free again.
    with EmbeddedRedis(tmp_path / "redis") as again:
        assert redis.Redis(unix_socket_path=str(again.socket_path)).ping()
