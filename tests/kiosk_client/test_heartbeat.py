"""The heartbeat reports camera, microphone and peripherals; a revoked kiosk stops beating."""

from __future__ import annotations

from pathlib import Path

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.heartbeat import Heartbeat

from .conftest import Stack, until


def _broken() -> str:
    raise OSError("spooler gone")


async def test_status_and_beats_reach_the_platform(stack: Stack, tmp_path: Path) -> None:
    client = PlatformClient(stack.url)
    await client.enrol(await stack.directory.create_enrolment_code("demo"), "kiosk-1")
    card = tmp_path / "card.png"
    beat = Heartbeat(client, "9.9.9", camera_ok=lambda: True, microphone_ok=lambda: False,
                     peripherals={"id_card_reader": lambda: "" if card.exists() else "no card image",
                                  "printer": _broken}, interval_s=0.05)
    status = beat.status()
    assert status.peripherals_ok is False
    assert status.details == {"id_card_reader": "no card image", "printer": "check failed: spooler gone"}
    card.write_bytes(b"x")
    beat.peripherals.pop("printer")
    beat.start()
    await until(lambda: beat.sent >= 3, what="three heartbeats")
    (device,) = await stack.directory.list_devices()
    assert device["status"] == {"online": True, "camera_ok": True, "microphone_ok": False, "peripherals_ok": True,
                                "app_version": "9.9.9", "details": {}}
    # Revoked: the loop stops by itself instead of hammering the platform.
    await stack.directory.revoke_device(device["id"])
    await until(lambda: beat.last_error is not None and beat._task is not None and beat._task.done(),
                what="the heartbeat giving up")
    assert beat.last_error is not None and beat.last_error.status == 403
    await beat.stop()
    await client.close()
