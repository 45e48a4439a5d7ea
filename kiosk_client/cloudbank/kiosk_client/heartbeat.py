"""The kiosk heartbeat: every `interval_s` it reports online, camera/mic and peripherals to the platform.

Peripherals are checks the kiosk app registers (the ID-card reader stand-in is "the card image
file is readable"; a printer would be "the spooler answers"); any failing check makes
`peripherals_ok` false and is named in `details`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from cloudbank.kiosk_client.client import DeviceStatus, PlatformClient
from cloudbank.kiosk_client.errors import PlatformError

log = logging.getLogger("cloudbank.kiosk_client.heartbeat")

Check = Callable[[], str]   # "" when fine, else what is wrong


class Heartbeat:
    def __init__(self, client: PlatformClient, app_version: str, *, camera_ok: Callable[[], bool],
                 microphone_ok: Callable[[], bool], peripherals: dict[str, Check] | None = None,
                 interval_s: float = 30.0) -> None:
        self.client = client
        self.app_version = app_version
        self.camera_ok = camera_ok
        self.microphone_ok = microphone_ok
        self.peripherals = dict(peripherals or {})
        self.interval_s = interval_s
        self.sent = 0
        self.last_error: PlatformError | None = None
        self._task: asyncio.Task[None] | None = None

    def status(self) -> DeviceStatus:
        details: dict[str, str] = {}
        for name, check in self.peripherals.items():
            try:
                problem = check()
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed peripheral
                problem = f"check failed: {exc}"
            if problem:
                details[name] = problem[:200]
        return DeviceStatus(online=True, camera_ok=self.camera_ok(), microphone_ok=self.microphone_ok(),
                            peripherals_ok=not details, app_version=self.app_version, details=details)

    async def beat(self) -> DeviceStatus:
        """Send one heartbeat now; raises PlatformError on refusal."""
        status = self.status()
        await self.client.heartbeat(status)
        self.sent += 1
        return status

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
                self.last_error = None
            except PlatformError as exc:
                self.last_error = exc
                log.warning("heartbeat refused: %s", exc)
                if not exc.retryable:
                    return   # revoked or signed out: beating again would not help
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
