"""The client's address, and when to believe ``X-Forwarded-For`` (``Settings.trusted_proxies``).

The address a request came from is the peer of its TCP connection. Behind a reverse proxy that is the proxy, and
the proxy says who its client was by appending that address to ``X-Forwarded-For``. Anyone can send that header,
though, so it is read only when the peer is one of the configured proxies — by default none, and then the peer is
the client, whatever the headers say. The public tracking lookup counts failures per client address, so a header
believed from anyone would let a caller pick a fresh address for every guess.

With trusted proxies, the header is read from the right (the hop nearest to us) leftwards, skipping addresses that
are themselves trusted proxies (a chain of them); the first other address is the client. What lies to its left
was written by the client or by proxies we know nothing of, and is ignored. When every hop is a trusted proxy, the
left-most is the client; when the first untrusted entry is not an address at all, the trusted hop that passed it
on is taken (nothing the caller wrote can then choose the address).

`onewindow serve` runs uvicorn with its own proxy-header handling off (by default uvicorn believes the header from
127.0.0.1), so this is the one place the header is read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a request without a peer address (e.g. some test transports) is counted as.
UNKNOWN = "unknown"


def parse_address(value: str) -> IPAddress | None:
    """An IP address as a peer or a forwarded-for entry writes it (``192.0.2.1``, ``192.0.2.1:5678``, ``::1``,
    ``[::1]:5678``; IPv4-mapped IPv6 as IPv4), or None when it is not one."""
    text = value.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    if "%" in text:  # an IPv6 zone
        text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    """Comma-separated IP addresses and CIDR networks (``10.0.0.5, 10.1.0.0/16, fd00::/8``); empty: none.

    Raises `ValueError` naming the first entry that is neither.
    """
    networks: list[IPNetwork] = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:a.b.c.d[/n]: the IPv4 network it stands for
                network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


class TrustedProxies:
    """The reverse proxies whose ``X-Forwarded-For`` is believed (none by default)."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[IPNetwork] = ()) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, spec: str) -> TrustedProxies:
        """From the setting's text (see `parse_networks`)."""
        return cls(parse_networks(spec))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address: the peer's, unless the peer is a trusted proxy and ``forwarded_for`` (the
        ``X-Forwarded-For`` header values, in the order received) names one beyond it."""
        if not peer:
            return UNKNOWN
        if not self.networks and ":" not in peer:  # the default, and IPv4: nothing to parse
            return peer
        current = parse_address(peer)
        if current is None:
            return peer
        if not self.networks or not self.trusts(current):
            return str(current)
        hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break
            current = address
            if not self.trusts(address):
                break
        return str(current)


__all__ = ["UNKNOWN", "IPAddress", "IPNetwork", "TrustedProxies", "parse_address", "parse_networks"]
