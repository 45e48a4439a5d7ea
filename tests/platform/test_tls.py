"""HTTPS (tls.py): a self-signed certificate made once and kept, a given pair used, bad ones refused
in one line; and `cloudbank up --tls` as a person runs it: the printed URLs are https, the printed
fingerprint is the served certificate's, plain HTTP gets nothing, and a call works end to end over
it - the teller in Chromium at https://.../seat/, the printed kiosk command (which trusts the
self-signed certificate) as the customer, video both ways through wss signalling.

Run it inside `unshare -n sh -c 'ip link set lo up; ...'`: every packet stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from cloudbank.platform.config import Config
from cloudbank.platform.tls import TlsError, certificate_paths, fingerprint, server_context

CLI = [str(Path(sys.executable).parent / "cloudbank")]
CHROMIUM_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required"]


def test_a_self_signed_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    config = Config(data=tmp_path, tls=True)
    cert, key = certificate_paths(config)
    assert cert.is_file() and key.stat().st_mode & 0o777 == 0o600
    first = fingerprint(cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", first)
    assert certificate_paths(config) == (cert, key) and fingerprint(cert) == first  # kept, not made again
    assert server_context(config) is not None and server_context(Config(data=tmp_path)) is None


def test_a_given_pair_is_used_and_half_a_pair_or_a_bad_file_is_refused(tmp_path: Path) -> None:
    made = Config(data=tmp_path / "a", tls=True)
    cert, key = certificate_paths(made)
    given = Config(data=tmp_path / "b", tls=True, tls_cert=str(cert), tls_key=str(key))
    assert certificate_paths(given) == (cert, key) and server_context(given) is not None
    assert not (tmp_path / "b" / "tls").exists()  # nothing self-signed made beside a given pair
    with pytest.raises(TlsError, match="both tls_cert and tls_key"):
        certificate_paths(Config(data=tmp_path, tls=True, tls_cert=str(cert)))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsError, match="cannot use the TLS certificate"):
        server_context(Config(data=tmp_path, tls=True, tls_cert=str(garbage), tls_key=str(key)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBANK_")}
    result = subprocess.run([*CLI, "up", "--tls", "--tls-cert", str(garbage), "--tls-key", str(key),
                             "--data", str(tmp_path / "c"), "--port", "0"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    assert "cannot use the TLS certificate" in result.stderr.strip().splitlines()[-1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_up_tls_serves_a_call_over_https(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBANK_") and k != "SSL_CERT_FILE"}
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([*CLI, "up", "--tls", "--data", str(tmp_path / "data"), "--port", str(port)],
                          stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    kiosk: subprocess.Popen[str] | None = None
    try:
        out = ""
        for _ in range(600):  # 60 s at most for the announcement
            out = (tmp_path / "up.log").read_text()
            if "Stop: Ctrl-C" in out or up.poll() is not None:
                break
            time.sleep(0.1)
        base = f"https://127.0.0.1:{port}"
        assert f"cloudbank is up on {base}" in out and f"{base}/seat/" in out, out
        cert = tmp_path / "data" / "tls" / "cert.pem"
        printed = re.search(r"fingerprint:\n\s+(\S+)", out)
        assert printed is not None and printed[1] == fingerprint(cert)
        # Served with that certificate, valid for 127.0.0.1; plain HTTP on the port gets nothing.
        trusting = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{base}/api/healthz", context=trusting, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Strict-Transport-Security"]
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/healthz", timeout=5)
        password = re.search(r"teller\s+teller1\s+password: (\S+)", out)
        command = re.search(r"^\s+(SSL_CERT_FILE=\S+ cloudbank kiosk --server \S+ --enrol-code \S+)$", out, re.M)
        assert password is not None and command is not None, out
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1366, "height": 768}, ignore_https_errors=True)
                page = context.new_page()
                page.goto(f"{base}/seat/")
                page.get_by_test_id("login-username").fill("teller1")
                page.get_by_test_id("login-password").fill(password[1])
                page.get_by_test_id("login-submit").click()
                page.get_by_test_id("state-ready").click()
                expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")
                # The customer: the command `cloudbank up` printed, run as printed (it trusts the cert).
                words = shlex.split(command[1])
                kiosk_env = {**env, words[0].split("=", 1)[0]: words[0].split("=", 1)[1]}
                kiosk = subprocess.Popen(
                    [str(Path(sys.executable).parent / words[1]), *words[2:], "--headless", "--service", "general",
                     "--max-wait-s", "60", "--kiosk-data", str(tmp_path / "kiosk"), "--ice-address", "127.0.0.1"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=kiosk_env)
                expect(page.get_by_test_id("offer-accept")).to_be_visible(timeout=30_000)
                page.get_by_test_id("offer-accept").click()
                expect(page.get_by_test_id("call")).to_be_visible()
                video = page.get_by_test_id("remote-video")
                expect(video).to_have_attribute("data-frames-decoded", re.compile(r"^[1-9]\d{1,}$"),
                                                      timeout=30_000)
                page.get_by_test_id("end-call").click()
                kiosk_out, _ = kiosk.communicate(timeout=60)
                frames = re.search(r"visit over .* frames=\{'audio': (\d+), 'video': (\d+)\}", kiosk_out)
                assert frames is not None and int(frames[2]) > 10, kiosk_out
            finally:
                browser.close()
    finally:
        if kiosk is not None and kiosk.poll() is None:
            kiosk.kill()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        log.close()
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
