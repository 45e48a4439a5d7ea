"""A call as a new user makes it on an ordinary machine, run by test_ordinary_machine.py inside
network namespaces it makes: one with a non-loopback interface (192.0.2.1 on a veth pair) and a
default route (`same-machine`: everything on that machine), or two joined by the veth pair
(`lan-client`: the teller's PC and the kiosk at 192.0.2.2 reach `cloudbank up --host 0.0.0.0`).

`cloudbank up` with its defaults, the teller and a supervisor in Chromium without
`--allow-loopback-in-peer-connection` (an ordinary browser offers the machine's own address, never
loopback; the supervisor's receive-only page offers mDNS names), a headless `cloudbank kiosk`.
Prints one JSON line: seconds from accepting the offer to the teller's first decoded frame, from
clicking Monitor to the supervisor's first frame, and the frames the kiosk received."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

CHROMIUM_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--disable-background-networking"]


async def first_frame(page: Page, testid: str, limit_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        decoded = await page.get_by_test_id(testid).get_attribute("data-frames-decoded")
        if decoded and int(decoded) > 0:
            return round(time.monotonic() - start, 2)
        await asyncio.sleep(0.05)
    return None


async def login(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/seat/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()


def start_up(work: Path, port: int, host: str | None = None, wrap: tuple[str, ...] = ()
             ) -> tuple[subprocess.Popen[str], dict[str, str], str]:
    """`cloudbank up` on its defaults (`wrap`: a command prefix, e.g. a namespace); the passwords and
    kiosk code it prints."""
    host_flag = ["--host", host] if host else []
    up = subprocess.Popen([*wrap, sys.executable, "-m", "cloudbank.platform", "up", "--data", str(work / "data"),
                           "--port", str(port), *host_flag], stdout=subprocess.PIPE, text=True,
                          stderr=(work / "up.log").open("w"))
    assert up.stdout is not None
    printed = ""
    while "Stop: Ctrl-C" not in printed:
        line = up.stdout.readline()
        if not line:
            raise SystemExit(f"cloudbank up exited: {(work / 'up.log').read_text()[-2000:]}")
        printed += line
    code = re.search(r"enrolment code for branch 'demo': (\S+)", printed)
    assert code, printed
    return up, dict(re.findall(r"(\w+)\s+password: (\S+)", printed)), code.group(1)


async def call(work: Path, url: str, passwords: dict[str, str], code: str) -> dict[str, object]:
    result: dict[str, object] = {}
    # Over plain http only localhost is a secure context (camera access): a LAN origin needs TLS in a
    # bank (issue 12); here the browser is told to trust this one origin.
    insecure = [] if "127.0.0.1" in url else [f"--unsafely-treat-insecure-origin-as-secure={url}"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS + insecure)
        teller = await browser.new_page(viewport={"width": 1366, "height": 768})
        teller.set_default_timeout(20_000)
        await login(teller, url, "teller1", passwords["teller1"])
        await teller.get_by_test_id("state-ready").click()
        kiosk = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cloudbank.platform", "kiosk", "--server", url, "--enrol-code", code,
            "--kiosk-data", str(work / "kiosk"), "--headless", "--service", "general", "--max-wait-s", "60",
            stdout=(work / "kiosk.log").open("w"), stderr=subprocess.STDOUT)
        await expect(teller.get_by_test_id("offer-accept")).to_be_visible()
        await teller.get_by_test_id("offer-accept").click()
        result["offer_to_video_s"] = await first_frame(teller, "remote-video", 20)
        session_id = await teller.get_by_test_id("call").get_attribute("data-session")

        supervisor = await browser.new_page(viewport={"width": 1366, "height": 768})
        supervisor.set_default_timeout(20_000)
        await login(supervisor, url, "supervisor1", passwords["supervisor1"])
        await supervisor.get_by_test_id(f"monitor-{session_id}").click()
        result["monitor_to_video_s"] = await first_frame(supervisor, "monitor-customer", 20)
        await supervisor.screenshot(path=str(work / "supervisor.png"))
        await teller.screenshot(path=str(work / "teller.png"))

        await teller.get_by_test_id("end-call").click()
        await asyncio.wait_for(kiosk.wait(), 30)
        await browser.close()
    return result


def same_machine(work: Path, port: int) -> dict[str, object]:
    up, passwords, code = start_up(work, port)
    try:
        result = asyncio.run(call(work, f"http://127.0.0.1:{port}", passwords, code))
    finally:
        up.terminate()
        up.wait(30)
    return result | outcome(work)


def lan_client(work: Path, url: str) -> dict[str, object]:
    """The client machine's side: the server's printed secrets arrive in work/credentials.json."""
    credentials = json.loads((work / "credentials.json").read_text())
    return asyncio.run(call(work, url, credentials["passwords"], credentials["code"]))


def outcome(work: Path) -> dict[str, object]:
    """What the kiosk's log and the server's log say about the call."""
    result: dict[str, object] = {}
    visit = [line for line in (work / "kiosk.log").read_text().splitlines() if "visit over" in line]
    frames = re.search(r"frames=\{'audio': (\d+), 'video': (\d+)\}", visit[-1] if visit else "")
    result["kiosk_frames"] = {"audio": int(frames.group(1)), "video": int(frames.group(2))} if frames else None
    result["refused_checks"] = (work / "up.log").read_text().count("refusing a connectivity check")
    return result


if __name__ == "__main__":
    os.environ.setdefault("CLOUDBANK_VIDEO_TRANSCRIBE", "false")  # no 530 MB model load: ICE is the point
    mode, folder, where = sys.argv[1:4]
    if mode == "same-machine":
        print(json.dumps(same_machine(Path(folder), int(where))))
    else:
        print(json.dumps(lan_client(Path(folder), where)))
