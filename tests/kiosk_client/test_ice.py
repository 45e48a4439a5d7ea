"""gather_only_on relies on aiortc/aioice internals; these tests fail loudly when they move."""

from __future__ import annotations

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from cloudbank.kiosk_client.ice import _ice_connections, gather_only_on
from cloudbank.kiosk_client.media_sources import synthetic


async def test_the_internals_it_uses_exist() -> None:
    pc = RTCPeerConnection()
    sources = synthetic(1)
    pc.addTrack(sources.audio)
    pc.addTrack(sources.video)
    connections = _ice_connections(pc)
    assert connections, "aiortc no longer exposes sender.transport.transport.iceGatherer._connection"
    for connection in connections:
        for name in ("_local_candidates_start", "_local_candidates_end", "_local_candidates", "_components",
                     "get_component_candidates", "gather_candidates"):
            assert hasattr(connection, name), f"aioice Connection lost {name}"
    await pc.close()
    sources.stop()


@pytest.mark.parametrize("addresses", [["127.0.0.1"], []])
async def test_only_the_chosen_addresses_are_offered(addresses: list[str]) -> None:
    pc = RTCPeerConnection()
    sources = synthetic(1)
    pc.addTrack(sources.audio)
    pc.addTrack(sources.video)
    assert gather_only_on(pc, addresses) == 2   # before BUNDLE is negotiated: one transport per track
    await pc.setLocalDescription(await pc.createOffer())
    hosts = {line.split()[4] for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")}
    assert hosts == set(addresses)
    await pc.close()
    sources.stop()


async def test_other_peer_connections_are_not_affected() -> None:
    restricted, other = RTCPeerConnection(), RTCPeerConnection()
    for pc in (restricted, other):
        pc.addTransceiver("audio")
    gather_only_on(restricted, ["127.0.0.1"])
    # The module function aioice calls is untouched.
    assert aioice.ice.get_host_addresses.__module__ == "aioice.ice"
    conn = _ice_connections(other)[0]
    assert "gather_candidates" not in vars(conn)
    for pc in (restricted, other):
        await pc.close()
