"""ICE on the video node: gather only on configured addresses (loopback works), ignore remote
candidates outside the allowed networks and the machine's own addresses (signalled, trickled or
peer-reflexive), refuse their checks with 403, TURN credentials as coturn computes them. The aioice
hooks are private: these tests fail loudly when they move."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from typing import Any

import aioice
import aioice.ice
import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy

from cloudbank.platform.config import Config
from cloudbank.video.errors import AiortcIncompatible
from cloudbank.video.ice import (
    address_allowed,
    allowed_networks,
    gather_addresses,
    ice_servers,
    restrict_ice,
    turn_credentials,
)

NETS = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def new_pc() -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.addTransceiver("audio")
    pc.addTransceiver("video")
    return pc


def test_address_allowed() -> None:
    assert address_allowed("127.0.0.1", NETS) and address_allowed("127.9.9.9", NETS)
    assert address_allowed("::1", NETS)
    for host in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "::2", "abcd.local", "localhost", "", "1.2.3"):
        assert not address_allowed(host, NETS), host


def test_gather_addresses_default_to_the_bind_host() -> None:
    assert gather_addresses(Config()) == ["127.0.0.1"]
    assert gather_addresses(Config(host="0.0.0.0")) == ["0.0.0.0"]
    assert gather_addresses(Config(ice_addresses=("192.0.2.5",))) == ["192.0.2.5"]
    assert allowed_networks(Config()) == NETS


def test_a_node_on_a_lan_address_allows_that_lan_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import ifaddr

    def adapters() -> list[ifaddr.Adapter]:  # inject this host's interfaces
        return [ifaddr.Adapter("lo", "lo", [ifaddr.IP("127.0.0.1", 8, "lo"), ifaddr.IP(("::1", 0, 0), 128, "lo")]),
                ifaddr.Adapter("eth0", "eth0", [ifaddr.IP("10.1.2.3", 24, "eth0"),
                                                ifaddr.IP(("fe80::1", 0, 2), 64, "eth0"),
                                                ifaddr.IP(("fd00::3", 0, 0), 64, "eth0")]),
                ifaddr.Adapter("wg0", "wg0", [ifaddr.IP("172.16.0.9", 16, "wg0")])]

    monkeypatch.setattr(ifaddr, "get_adapters", adapters)
    lan = [ipaddress.ip_network("10.1.2.0/24")]
    assert allowed_networks(Config(host="10.1.2.3")) == NETS + lan
    assert allowed_networks(Config(ice_addresses=("172.16.0.9",))) == NETS + [ipaddress.ip_network("172.16.0.0/16")]
    assert allowed_networks(Config(host="0.0.0.0")) == NETS + lan + [ipaddress.ip_network("172.16.0.0/16")]
    # "::" gathers IPv4 too; link-local networks are never allowed wholesale
    assert ipaddress.ip_network("fd00::/64") in allowed_networks(Config(host="::"))
    assert not any(n.is_link_local for n in allowed_networks(Config(host="::")))
    # A configured list replaces the default (the machine's own addresses are added per call)
    assert allowed_networks(Config(host="0.0.0.0", ice_allowed_networks=("192.168.0.0/16",))) == [
        ipaddress.ip_network("192.168.0.0/16")]


async def test_gathers_only_on_the_configured_address() -> None:
    pc = new_pc()
    try:
        restrict_ice(pc, ["127.0.0.1"], NETS)
        await pc.setLocalDescription(await pc.createOffer())
        hosts = {line.split()[4] for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")}
        assert hosts == {"127.0.0.1"}
    finally:
        await pc.close()


async def test_a_wildcard_gathers_on_the_host_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[bool, bool]] = []

    def fake(use_ipv4: bool, use_ipv6: bool) -> list[str]:  # inject the "interfaces" of this host
        asked.append((use_ipv4, use_ipv6))
        return ["127.0.0.2"]

    monkeypatch.setattr(aioice.ice, "get_host_addresses", fake)
    pc = new_pc()
    try:
        restrict_ice(pc, ["0.0.0.0"], NETS)
        await pc.setLocalDescription(await pc.createOffer())
        assert (True, False) in asked  # gathering: IPv4 only for 0.0.0.0
        assert "127.0.0.2" in pc.localDescription.sdp
    finally:
        await pc.close()


def connection_of(pc: RTCPeerConnection) -> Any:
    return pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection


async def test_remote_candidates_outside_the_allowed_networks_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["192.0.2.1", "fd00::1"])
    pc = new_pc()
    try:
        restrict_ice(pc, ["127.0.0.1"], NETS)
        await pc.setLocalDescription(await pc.createOffer())
        conn = connection_of(pc)
        for host in ("10.0.0.7", "192.168.0.1", "abcd-1234.local", "::2", "192.0.2.2", "127.0.0.1", "192.0.2.1",
                     "fd00::1"):
            await conn.add_remote_candidate(aioice.Candidate(
                foundation="1", component=1, transport="udp", priority=1, host=host, port=4000, type="host"))
        # loopback and this machine's own addresses (a browser on the node's machine offers them)
        assert [c.host for c in conn.remote_candidates] == ["127.0.0.1", "192.0.2.1", "fd00::1"]
    finally:
        await pc.close()


class Recorder:
    """Stands in for aioice's StunProtocol: records what the connection sends."""

    def __init__(self, local_candidate: Any) -> None:
        self.local_candidate = local_candidate
        self.sent: list[tuple[stun.Message, tuple[str, int]]] = []

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


def check(conn: Any, password: str | None) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes.update({"USERNAME": f"{conn.local_username}:peer", "PRIORITY": 1, "ICE-CONTROLLED": 1})
    if password is not None:
        request.add_message_integrity(password.encode())
    return request


async def test_a_check_from_outside_is_refused_with_403_and_teaches_nothing() -> None:
    pc = new_pc()
    try:
        restrict_ice(pc, ["127.0.0.1"], NETS)
        await pc.setLocalDescription(await pc.createOffer())
        conn = connection_of(pc)
        protocol = Recorder(conn._protocols[0].local_candidate)
        # The party with the call's ICE password learns at once that the pair is refused ...
        request = check(conn, conn.local_password)
        conn.request_received(request, ("10.9.9.9", 5000), protocol)
        [(response, addr)] = protocol.sent
        assert addr == ("10.9.9.9", 5000)
        assert response.message_class == stun.Class.ERROR and response.transaction_id == request.transaction_id
        assert response.attributes["ERROR-CODE"] == (403, "Forbidden")
        assert conn.remote_candidates == []
        # ... a forged or unsigned check gets no answer at all (no reflection to spoofed sources).
        conn.request_received(check(conn, "wrong-password"), ("10.9.9.9", 5000), protocol)
        conn.request_received(check(conn, None), ("10.9.9.9", 5000), protocol)
        assert len(protocol.sent) == 1
        # A check from loopback gets aioice's success response.
        conn.request_received(check(conn, conn.local_password), ("127.0.0.1", 5000), protocol)
        assert protocol.sent[-1][0].message_class == stun.Class.RESPONSE
    finally:
        await pc.close()


async def test_a_moved_aioice_hook_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aioice.Connection, "request_received")
    pc = new_pc()
    try:
        with pytest.raises(AiortcIncompatible, match="request_received"):
            restrict_ice(pc, ["127.0.0.1"], NETS)
    finally:
        await pc.close()


def test_turn_credentials_follow_coturns_rest_scheme() -> None:
    username, credential = turn_credentials("s3cret", "customer-1", 600, now=1_700_000_000)
    assert username == "1700000600:customer-1"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers_for_clients() -> None:
    assert ice_servers(Config(), "c1") == []
    cfg = Config(stun_urls=("stun:stun.example:3478",), turn_urls=("turn:turn.example:3478?transport=udp",),
                 turn_secret="k")
    stun, turn = ice_servers(cfg, "c1", ttl_s=60)
    assert stun == {"urls": ["stun:stun.example:3478"]}
    assert turn["urls"] == ["turn:turn.example:3478?transport=udp"]
    expiry, _, user = turn["username"].partition(":")
    assert user == "c1" and int(expiry) > 0 and turn["credential"]
    # without a secret, TURN is listed without credentials (a TURN server with static users)
    assert "username" not in ice_servers(cfg.with_(turn_secret=""), "c1")[1]
