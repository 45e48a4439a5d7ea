"""The `cloudbank` command as a person uses it: real processes, real ports, real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cloudbank.platform.config import Config

CLI = [str(Path(sys.executable).parent / "cloudbank")]
COMMANDS = [[], ["up"], ["platform"], ["video"], ["media"], ["seat"], ["phone"], ["users"], ["users", "add"],
            ["users", "list"], ["users", "unlock"], ["devices"], ["devices", "enrol"], ["audit"], ["audit", "verify"],
            ["keys"], ["keys", "rotate"], ["bench"]]


def run(*args: str, data: Path | None = None, stdin: str = "", env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBANK_")}
    full_env.update(env or {})
    argv = [*CLI, *args] + (["--data", str(data)] if data is not None else [])
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=full_env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_clear_line(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    # Warnings logged while starting (the demo OTP sender's) may come first; the refusal is one line.
    lines = [ln for ln in result.stderr.strip().splitlines() if not re.match(r"^\d{4}-\d\d-\d\d .* WARNING ", ln)]
    assert len(lines) == 1, lines
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cloudbank")
def test_help_on_every_command(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and "usage: cloudbank" in result.stdout


def test_unknown_flag() -> None:
    one_clear_line(run("up", "--frobnicate"), "unrecognized arguments: --frobnicate")
    one_clear_line(run("nonsense"), "invalid choice")


def test_bad_setting_names_it(tmp_path: Path) -> None:
    one_clear_line(run("users", "list", data=tmp_path, env={"CLOUDBANK_LOGIN_LOCKOUT_S": "soon"}),
                   "CLOUDBANK_LOGIN_LOCKOUT_S")
    one_clear_line(run("up", "--port", "99999", data=tmp_path), "setting port")


def test_unwritable_data_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_clear_line(run("up", data=blocker / "data"), "is not writable")


def test_redis_url_that_does_not_answer(tmp_path: Path) -> None:
    one_clear_line(run("up", "--redis-url", f"redis://127.0.0.1:{free_port()}", data=tmp_path),
                   "does not answer")


def test_single_service_needs_a_shared_redis(tmp_path: Path) -> None:
    one_clear_line(run("platform", data=tmp_path), "CLOUDBANK_REDIS_URL")


def test_port_in_use_and_no_redis_left(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_clear_line(run("up", "--port", str(port), data=tmp_path), f"port {port} on 127.0.0.1 is in use")
    assert not _redis_pids(tmp_path)


def _redis_pids(data: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"redis-server unixsocket:{data}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback test URL
        return dict(json.load(resp))


@pytest.mark.slow
def test_up_serves_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBANK_")}
    proc = subprocess.Popen([*CLI, "up", "--data", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        healthy: dict[str, object] = {}
        while time.monotonic() < deadline and len(healthy) < 5:
            for prefix in ("api", "video", "media", "seat", "phone"):
                if prefix not in healthy:
                    try:
                        healthy[prefix] = _get_json(f"http://127.0.0.1:{port}/{prefix}/healthz")
                    except OSError:
                        pass
            time.sleep(0.2)
        assert len(healthy) == 5, healthy
        for body in healthy.values():
            assert isinstance(body, dict) and body["status"] == "ok"
            assert body["dependencies"] == {"redis": "ok", "database": "ok"}
        assert len(_redis_pids(tmp_path)) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert re.search(r"teller\s+teller1\s+password: \S{16}", out)
    assert "kiosk enrolment code for branch 'demo'" in out
    assert f"http://127.0.0.1:{port}/seat/" in out
    # The kiosk command is printed ready to paste, with the real code (not a placeholder).
    code = re.search(r"kiosk enrolment code for branch 'demo': (\S+)", out)
    assert code is not None and "--enrol-code CODE" not in out
    assert f"cloudbank kiosk --server http://127.0.0.1:{port} --enrol-code {code[1]}\n" in out
    assert not _redis_pids(tmp_path)
    assert (tmp_path / "redis" / "appendonly.aof").exists() or (tmp_path / "redis" / "appendonlydir").exists()


def test_users_devices_audit_keys(tmp_path: Path) -> None:
    added = run("users", "add", "--role", "teller", "--name", "bob", data=tmp_path)
    assert added.returncode == 0, added.stderr
    assert re.search(r"password: \S{16}", added.stdout)
    chosen = run("users", "add", "--role", "supervisor", "--name", "sue", data=tmp_path,
                 stdin="a long enough password\n")
    assert chosen.returncode == 0 and "password:" in chosen.stdout
    one_clear_line(run("users", "add", "--role", "teller", "--name", "bob", data=tmp_path), "already exists")
    one_clear_line(run("users", "add", "--role", "teller", "--name", "Bad Name!", data=tmp_path), "username")
    one_clear_line(run("users", "add", "--role", "teller", "--name", "tim", data=tmp_path, stdin="short\n"),
                   "at least 10")
    listed = run("users", "list", data=tmp_path)
    assert "bob" in listed.stdout and "sue" in listed.stdout and "supervisor" in listed.stdout
    one_clear_line(run("devices", "enrol", "--branch", "nowhere", data=tmp_path), "no branch nowhere")
    enrol = run("devices", "enrol", "--branch", "b1", "--create-branch", "Branch 1", data=tmp_path)
    assert re.search(r"enrolment code for branch b1: [0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}", enrol.stdout)
    assert run("keys", "rotate", data=tmp_path).returncode == 0
    verify = run("audit", "verify", data=tmp_path)
    assert verify.returncode == 0 and verify.stdout.startswith("OK: 4 records")


def test_users_unlock_clears_the_locks_in_the_folder_s_redis(tmp_path: Path) -> None:
    import redis

    from cloudbank.platform.redis_server import EmbeddedRedis

    assert run("users", "add", "--role", "teller", "--name", "bob", data=tmp_path).returncode == 0
    planted = ["login:lock:bob|10.0.0.1", "login:fail:bob|10.0.0.2", "login:user:bob", "login:lock:bobby|10.0.0.1"]
    with EmbeddedRedis(tmp_path / "redis") as embedded:
        client = redis.Redis.from_url(embedded.url)
        for key in planted:
            client.set(key, "1")
        client.close()
    one_clear_line(run("users", "unlock", "nobody", data=tmp_path), "no person named nobody")
    done = run("users", "unlock", "bob", data=tmp_path)
    assert done.returncode == 0 and "unlocked bob (3 " in done.stdout, done
    with EmbeddedRedis(tmp_path / "redis") as embedded:
        client = redis.Redis.from_url(embedded.url)
        assert [k for k in planted if client.exists(k)] == ["login:lock:bobby|10.0.0.1"]
        client.close()
    # user.added, then user.unlocked (the refused "nobody" left nothing)
    assert run("audit", "verify", data=tmp_path).stdout.startswith("OK: 2 records")


@pytest.mark.parametrize("command", [["users", "list"], ["audit", "verify"], ["keys", "rotate"]], ids=" ".join)
def test_reading_a_folder_with_no_database_names_it_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    # An admin in the wrong directory: not an empty list or "OK: 0 records" from a new empty database.
    missing = tmp_path / "not-the-data-folder"
    one_clear_line(run(*command, data=missing), f"no cloudbank database in {missing}")
    assert not missing.exists()


def test_up_says_how_to_start_a_kiosk_on_the_first_and_later_starts() -> None:
    from cloudbank.platform.cli import announcement, data_flag
    from cloudbank.platform.seed import SeedResult

    base = "http://127.0.0.1:8080"
    parts = [("teller seat console", "/seat/")]
    first = announcement(base, parts, SeedResult(True, [("supervisor", "supervisor1", "pw")], "AB12-CD34"))
    assert f"cloudbank kiosk --server {base} --enrol-code AB12-CD34\n" in first
    assert re.search(r"supervisor view.* http://127.0.0.1:8080/seat/", first)
    # A second start has no code to show: it says how to get one, for the folder it runs on.
    later = announcement(base, parts, SeedResult(False), data_flag(Config(data=Path("/srv/my bank"))))
    assert "--enrol-code CODE" not in later and "AB12" not in later
    assert "cloudbank devices enrol --branch demo --data '/srv/my bank'\n" in later
    assert f"cloudbank kiosk --server {base}\n" in later
    assert data_flag(Config()) == ""
