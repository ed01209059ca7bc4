"""Where webhooks may go: the SSRF guard for every outbound delivery.

A target must be ``http`` or ``https`` with a host name or address. Every address the host resolves to is
checked; one that is not a public address is refused, naming the rule it broke, unless it lies in one of the
operator's ``ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS`` (comma-separated CIDRs, none by default):

    metadata     cloud instance metadata services (169.254.169.254, 100.100.100.200, fd00:ec2::254, …)
    loopback     127.0.0.0/8, ::1
    link-local   169.254.0.0/16, fe80::/10
    private      10/8, 172.16/12, 192.168/16, 100.64/10 (shared), fc00::/7
    unspecified  0.0.0.0, ::
    multicast    224.0.0.0/4, ff00::/8
    reserved     anything else that is not a global address (documentation ranges, 240/4, …)

The metadata rule is checked first and is not lifted by an allowed network that happens to contain the address
unless that network is exactly as narrow as the address itself. Delivery resolves through `GuardedResolver`,
which checks the addresses and hands exactly those to the connection: the address connected to is the one that
was checked (a name that resolves to a public address for the check and to a private one a moment later cannot
slip through). An IP literal in the URL is checked before the request (the client does not resolve literals).
Redirects are never followed; bodies and times are capped by the dispatcher.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.clients import IPAddress, IPNetwork, parse_networks

#: Instance metadata endpoints of the clouds a district's systems may run on.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "169.254.0.23", "fd00:ec2::254")
)

_RULE_TEXT = {
    "metadata": "a cloud metadata address",
    "loopback": "a loopback address",
    "link-local": "a link-local address",
    "private": "a private address",
    "unspecified": "the unspecified address",
    "multicast": "a multicast address",
    "reserved": "a reserved (not public) address",
}


class RefusedTarget(Exception):
    """A webhook target the guard refuses; ``rule`` names why (one of the module docstring's rules, or ``scheme``,
    ``host``, ``resolve``)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def rule_for(address: IPAddress) -> str | None:
    """The rule ``address`` breaks, or None for a public address."""
    address = _plain(address)
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "private"
    if not address.is_global:
        return "reserved"
    return None


_SHARED = ipaddress.ip_network("100.64.0.0/10")


class TargetPolicy:
    """Public addresses, plus the operator's allowed networks."""

    def __init__(self, allowed: tuple[IPNetwork, ...] = ()) -> None:
        self.allowed = allowed

    @classmethod
    def parse(cls, spec: str) -> TargetPolicy:
        """From ``ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS``; `ValueError` names a bad entry."""
        return cls(parse_networks(spec))

    def refusal(self, address: IPAddress) -> str | None:
        """The rule that refuses ``address`` here, or None when it may be connected to."""
        address = _plain(address)
        rule = rule_for(address)
        if rule is None:
            return None
        for network in self.allowed:
            if address.version == network.version and address in network:
                if rule == "metadata" and network.num_addresses > 1:
                    continue  # a broad allowance (10.0.0.0/8, 169.254.0.0/16) never opens a metadata service
                return None
        return rule

    def check_address(self, address: IPAddress, host: str) -> None:
        rule = self.refusal(address)
        if rule is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise RefusedTarget(
                rule,
                f"{shown} is {_RULE_TEXT[rule]} (rule {rule!r}); "
                "an operator may allow it with ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS",
            )


class Target:
    """A parsed webhook URL: scheme, host (an IP literal or a name) and port."""

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RefusedTarget("url", f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise RefusedTarget("scheme", "must be an http or https URL")
        if not parts.hostname:
            raise RefusedTarget("host", "must name a host")
        if parts.username or parts.password:
            raise RefusedTarget("url", "must not carry a user name or password")
        self.url = url
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        try:
            self.literal: IPAddress | None = ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            self.literal = None


async def resolve_checked(policy: TargetPolicy, host: str, port: int, family: int = socket.AF_UNSPEC) -> list[Any]:
    """``getaddrinfo`` for ``host``, every address checked: `RefusedTarget` unless all are allowed."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        policy.check_address(literal, host)
        fam = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(literal), port))]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RefusedTarget("resolve", f"{host} does not resolve ({exc.strerror or exc})") from None
    if not infos:
        raise RefusedTarget("resolve", f"{host} does not resolve")
    for info in infos:
        policy.check_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), host)
    return list(infos)


async def check_target(policy: TargetPolicy, url: str) -> Target:
    """``url`` parsed and its host resolved and checked now (a subscription being registered)."""
    target = Target(url)
    await resolve_checked(policy, target.host, target.port)
    return target


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, answering only checked addresses: the connection goes to what was checked."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await resolve_checked(self.policy, host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=info[4][0],
                port=info[4][1],
                family=info[0],
                proto=info[2],
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for info in infos
        ]

    async def close(self) -> None:
        return None


__all__ = [
    "METADATA_ADDRESSES",
    "GuardedResolver",
    "RefusedTarget",
    "Target",
    "TargetPolicy",
    "check_target",
    "resolve_checked",
    "rule_for",
]
