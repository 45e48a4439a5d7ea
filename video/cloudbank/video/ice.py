"""ICE for the video node: which addresses it gathers on, which remote addresses it will talk to,
and the STUN/TURN servers clients are told to use.

aioice gathers on every interface except loopback and offers no per-connection switch, and it
pairs any remote candidate it is given. Both are fixed here per connection through aioice
internals (pinned with aiortc==1.16.0 / aioice 0.13; `tests/video/test_ice.py` fails loudly when a
hook moves):

- `Connection.gather_candidates` is replaced on the node's connection so it binds only the
  configured addresses (loopback included; all interfaces only for a wildcard address);
- `Connection.add_remote_candidate` (signalled candidates, from the SDP or trickled) drops
  addresses outside the allowed networks and every mDNS name, so no client can make the node
  send packets to an arbitrary internal host;
- `Connection.request_received` answers an authenticated connectivity check from outside the
  allowed networks with 403 Forbidden (an unauthenticated one is dropped unanswered) instead of
  aioice's success response, which told the browser the pair worked while the node never learnt
  it: the browser waited on it for many seconds. On a non-retryable STUN error libwebrtc drops the
  pair at once.

The node's own interface addresses always count as allowed: a browser on the node's machine
checks from them (Chromium offers the machine's LAN address, not loopback), and they reach nothing
loopback does not already reach.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aioice.ice
import ifaddr
from aiortc import RTCPeerConnection

from cloudbank.platform.config import Config
from cloudbank.platform.tokens import turn_credentials
from cloudbank.video.errors import AiortcIncompatible

log = logging.getLogger("cloudbank.video.ice")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WILDCARDS = ("0.0.0.0", "::", "")


def gather_addresses(config: Config) -> list[str]:
    """The addresses the node gathers host candidates on: configured, else the bind host."""
    if config.ice_addresses:
        return list(config.ice_addresses)
    return [config.host]


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


def allowed_networks(config: Config) -> list[Network]:
    """The configured networks; unset, loopback plus the networks the node gathers on: a node bound to
    its LAN address (or to every address) serves the teller PCs, kiosks and phones on that LAN."""
    if config.ice_allowed_networks:
        return [ipaddress.ip_network(n, strict=False) for n in config.ice_allowed_networks]
    nets = [ipaddress.ip_network(n) for n in LOOPBACK_NETWORKS]
    return nets + [n for n in attached_networks(gather_addresses(config)) if n not in nets]


def attached_networks(addresses: Sequence[str]) -> list[Network]:
    """The networks of this machine's interfaces that carry `addresses` (every interface for a
    wildcard; "::" means IPv4 too, as aioice gathers), without loopback and link-local ones."""
    every4 = any(a in WILDCARDS for a in addresses)
    every6 = "::" in addresses
    found: list[Network] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            v6 = not isinstance(ip.ip, str)
            if host in addresses or (every6 if v6 else every4):
                net = ipaddress.ip_network(f"{host}/{ip.network_prefix}", strict=False)
                if not (net.is_loopback or net.is_link_local) and net not in found:
                    found.append(net)
    return found


def address_allowed(host: str, networks: Sequence[Network]) -> bool:
    """True when `host` is a literal IP inside one of `networks` (names, mDNS included, are not)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def own_networks() -> list[Network]:
    """This machine's interface addresses (read now: interfaces come and go), as host networks."""
    return [ipaddress.ip_network(a) for a in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)]


def _connection_of(pc: RTCPeerConnection) -> Any:
    """The aioice Connection behind the (single, max-bundle) ICE transport of `pc`."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise ValueError("add the transceivers before restricting ICE")
    try:
        return transceivers[0].receiver.transport.transport.iceGatherer._connection
    except AttributeError as exc:
        raise AiortcIncompatible(f"cannot reach the aioice connection ({exc})") from None


def restrict_ice(pc: RTCPeerConnection, addresses: Iterable[str], networks: Sequence[Network]) -> None:
    """Gather only on `addresses`; ignore remote candidates outside `networks` and this machine's
    own addresses, and refuse connectivity checks from them.

    Call after the transceivers exist (the node uses max-bundle: one ICE transport) and before
    `setRemoteDescription`/`setLocalDescription`.
    """
    conn = _connection_of(pc)
    for name in ("gather_candidates", "add_remote_candidate", "request_received", "respond_error",
                 "_valid_username", "local_password",
                 "get_component_candidates", "_components", "_local_candidates", "_local_candidates_start",
                 "_local_candidates_end"):
        if not hasattr(conn, name):
            raise AiortcIncompatible(f"aioice Connection has no {name}: ice.py needs updating")
    wanted = list(addresses)
    networks = [*networks, *own_networks()]
    original_add = conn.add_remote_candidate
    original_request = conn.request_received

    async def gather_candidates() -> None:
        # Mirrors aioice's own method, with our addresses instead of get_host_addresses().
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        hosts: list[str] = []
        for address in wanted:
            if address in WILDCARDS:
                hosts += aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=address == "::")
            else:
                hosts.append(address)
        for component in sorted(conn._components):
            conn._local_candidates += await conn.get_component_candidates(
                component=component, addresses=list(dict.fromkeys(hosts)))
        conn._local_candidates_end = True

    async def add_remote_candidate(candidate: aioice.Candidate | None) -> None:
        if candidate is not None and not address_allowed(candidate.host, networks):
            log.info("ignoring remote candidate %s outside the allowed networks", candidate.host[:64])
            return
        await original_add(candidate)

    def authentic(message: Any) -> bool:
        attrs = message.attributes
        return ("USERNAME" in attrs and "MESSAGE-INTEGRITY" in attrs and conn._valid_username(attrs["USERNAME"])
                and message.check_message_integrity(conn.local_password.encode("utf8")))

    def request_received(message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if not address_allowed(addr[0], networks):
            # Only the party that has this call's ICE password gets an answer: no reflection to
            # spoofed sources.
            if authentic(message):
                log.info("refusing a connectivity check from %s outside the allowed networks", addr[0][:64])
                conn.respond_error(message, addr, protocol, (403, "Forbidden"))
            return
        original_request(message, addr, protocol)

    conn.gather_candidates = gather_candidates
    conn.add_remote_candidate = add_remote_candidate
    conn.request_received = request_received


def ice_servers(config: Config, user: str, ttl_s: int | None = None) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries for a client (browser format): STUN, then TURN with credentials."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls:
        entry: dict[str, Any] = {"urls": list(config.turn_urls)}
        if config.turn_secret:
            username, credential = turn_credentials(config.turn_secret, user,
                                                    ttl_s if ttl_s is not None else config.join_token_ttl_s)
            entry.update(username=username, credential=credential)
        servers.append(entry)
    return servers
