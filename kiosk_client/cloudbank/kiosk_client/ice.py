"""Choosing which local addresses a client peer connection gathers ICE candidates on.

aioice gathers on every interface except loopback and offers no switch. A kiosk normally wants
that default; tests, benchmarks and single-machine demos need the opposite (loopback only, see
shared/notes/webrtc-loopback.md). This replaces `gather_candidates` on each of one peer
connection's aioice connections, never the module function, so other peer connections in the
process (the video node's, another client's) are unaffected. It touches aioice/aiortc internals
(`iceGatherer._connection`, `_local_candidates*`, `_components`): aiortc is pinned, and
tests/kiosk_client/test_ice.py fails loudly when those move.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiortc import RTCPeerConnection


def _ice_connections(pc: RTCPeerConnection) -> list[Any]:
    connections = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is None:
            continue
        connection = dtls.transport.iceGatherer._connection
        if connection not in connections:
            connections.append(connection)
    return connections


def gather_only_on(pc: RTCPeerConnection, addresses: Sequence[str]) -> int:
    """Make `pc` gather host candidates only on `addresses`; call after adding tracks, before the
    offer. Returns how many ICE connections were restricted."""
    chosen = list(addresses)
    connections = _ice_connections(pc)
    for connection in connections:
        async def gather_candidates(connection: Any = connection) -> None:
            if connection._local_candidates_start:
                return
            connection._local_candidates_start = True
            for component in connection._components:
                connection._local_candidates += await connection.get_component_candidates(
                    component=component, addresses=chosen)
            connection._local_candidates_end = True

        connection.gather_candidates = gather_candidates
    return len(connections)
