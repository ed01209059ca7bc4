"""Who may read ``GET /metrics``: clients in ``Settings.metrics_networks`` (loopback by default), and requests
carrying ``Authorization: Bearer <Settings.metrics_token>`` when a token is set.

The client is the one `gateway.clients` names: behind a trusted reverse proxy, the proxy's client — so a public
request relayed by nginx on the same host is not taken for a local one.
"""

from __future__ import annotations

import hmac

from gateway.clients import TrustedProxies, parse_address, parse_networks


class MetricsAccess:
    """Who may read ``/metrics`` (see the module docstring)."""

    def __init__(self, *, networks: str, token: str, proxies: TrustedProxies) -> None:
        self.networks = TrustedProxies(parse_networks(networks))
        self.token = token.encode()
        self.proxies = proxies

    def allows(self, peer: str | None, forwarded_for: list[str], authorization: str | None) -> bool:
        if self.token and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token):
                return True
        address = parse_address(self.proxies.client_address(peer, forwarded_for))
        return address is not None and self.networks.trusts(address)


__all__ = ["MetricsAccess"]
