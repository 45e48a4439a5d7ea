"""A call on a machine that looks ordinary: besides loopback it has an interface with an address and
a default route, so Chromium offers and checks from that address. Every other WebRTC test runs where
only loopback exists and could not see a node that ignored those checks (17.8 s to video, or never).

The namespace is made here (root, `unshare -n`, a veth pair with 192.0.2.1/24): nothing it sends can
leave it. `ordinary_machine_call.py` runs the call inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

VETH = ("ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add 192.0.2.1/24 dev v0"
        " && ip link set v1 up && ip link set v0 up && ip route add default dev v0")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to make a namespace")
def test_a_default_setup_call_has_video_within_5_s(tmp_path: Path) -> None:
    script = Path(__file__).with_name("ordinary_machine_call.py")
    done = subprocess.run(["unshare", "-n", "sh", "-c", f'{VETH} && exec "$0" "$@"', sys.executable,
                           str(script), str(tmp_path), "8080"],
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    assert result["offer_to_video_s"] is not None and result["offer_to_video_s"] < 5, result
    assert result["monitor_to_video_s"] is not None and result["monitor_to_video_s"] < 5, result
    assert result["kiosk_frames"]["video"] > 0, result
