"""A request's client address: the TCP peer, or, behind trusted proxies, the address they forwarded.

``X-Forwarded-For`` is a header anyone can send, so it is believed only when the TCP peer is one of the
configured proxies (``server.http.trusted_proxies``, CIDRs). The list is read from the right: each proxy
appends the address it saw, so the rightmost entry not itself a trusted proxy is the client. Everything that
needs the client's address (the auth throttle, the access log, metrics) asks ``client_address`` for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)  # tuple[Network, ...]
_CACHE = web.RequestKey("client_address", str)
MAX_HOPS = 16  # entries of X-Forwarded-For looked at, from the right: a long forged list costs nothing more
UNKNOWN = "unknown"


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """ValueError naming the bad entry; a bare address is a one-address network."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a CIDR or IP address: {cidr!r}") from exc
    return tuple(networks)


def install(app: web.Application, cidrs: Iterable[str]) -> None:
    app[TRUSTED_PROXIES] = parse_networks(cidrs)


def client_address(request: web.Request) -> str:
    """The client's address for this request (computed once per request)."""
    cached = request.get(_CACHE)
    if cached is None:
        cached = request[_CACHE] = _resolve(request.remote, request.headers.getall("X-Forwarded-For", []),
                                            request.app.get(TRUSTED_PROXIES, ()))
    return cached


def _resolve(peer: str | None, forwarded: list[str], trusted: tuple[Network, ...]) -> str:
    address = peer or UNKNOWN
    if not trusted or not _is_trusted(address, trusted):
        return address
    hops = [h.strip() for value in forwarded for h in value.split(",")][-MAX_HOPS:]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            break  # garbage: the last trusted proxy is the best we know
        address = str(ip)  # canonical form: one throttle entry per address, however it was spelt
        if not _is_trusted(hop, trusted):
            break
    return address


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    ip = _parse(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in trusted)
