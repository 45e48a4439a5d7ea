"""Calls on machines that look ordinary. Every other WebRTC test runs where only loopback exists, so
none could see a node that ignored the checks Chromium makes from the machine's own address (17.8 s
to video, or never) or one that refused the LAN its clients sit on.

- same machine: besides loopback there is an interface with an address and a default route, so
  Chromium offers and checks from that address (`cloudbank up` with its defaults);
- LAN: the teller's PC and the kiosk are another machine (192.0.2.2) reaching
  `cloudbank up --host 0.0.0.0` (at 192.0.2.1) across a veth pair.

The namespaces are made here (root, `unshare -n`): nothing they send can leave them.
`ordinary_machine_call.py` drives the call inside them."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="needs root to make network namespaces")]

SCRIPT = Path(__file__).with_name("ordinary_machine_call.py")
VETH = ("ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add 192.0.2.1/24 dev v0"
        " && ip link set v1 up && ip link set v0 up && ip route add default dev v0")


def scenario() -> Any:
    spec = importlib.util.spec_from_file_location("ordinary_machine_call", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(result: dict[str, Any]) -> None:
    print(result)
    assert result["offer_to_video_s"] is not None and result["offer_to_video_s"] < 5, result
    assert result["monitor_to_video_s"] is not None and result["monitor_to_video_s"] < 5, result
    assert result["kiosk_frames"] and result["kiosk_frames"]["video"] > 0, result


def test_a_default_setup_call_has_video_within_5_s(tmp_path: Path) -> None:
    done = subprocess.run(["unshare", "-n", "sh", "-c", f'{VETH} && exec "$0" "$@"', sys.executable,
                           str(SCRIPT), "same-machine", str(tmp_path), "8080"],
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    check(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_teller_and_a_kiosk_on_the_lan_have_video_within_5_s(tmp_path: Path) -> None:
    # The client machine waits for its end of the cable, then for the server's printed secrets.
    client = subprocess.Popen(
        ["unshare", "-n", "sh", "-c",
         "ip link set lo up && until ip link show v1 >/dev/null 2>&1; do sleep 0.05; done"
         " && ip addr add 192.0.2.2/24 dev v1 && ip link set v1 up && ip route add default dev v1"
         f' && until [ -e {tmp_path}/credentials.json ]; do sleep 0.1; done && exec "$0" "$@"',
         sys.executable, str(SCRIPT), "lan-client", str(tmp_path), "http://192.0.2.1:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server_net = (f"ip link set lo up && ip link add v0 type veth peer name v1 && ip link set v1 netns {client.pid}"
                  " && ip addr add 192.0.2.1/24 dev v0 && ip link set v0 up")
    module = scenario()
    up = None
    try:
        up, passwords, code = module.start_up(tmp_path, 8080, host="0.0.0.0",
                                              wrap=("unshare", "-n", "sh", "-c", f'{server_net} && exec "$0" "$@"'))
        (tmp_path / "credentials.tmp").write_text(json.dumps({"passwords": passwords, "code": code}))
        (tmp_path / "credentials.tmp").rename(tmp_path / "credentials.json")
        out, err = client.communicate(timeout=200)
        assert client.returncode == 0, err[-3000:]
    finally:
        client.kill()
        if up is not None:
            up.terminate()
            up.wait(30)
    check(json.loads(out.strip().splitlines()[-1]) | module.outcome(tmp_path))
