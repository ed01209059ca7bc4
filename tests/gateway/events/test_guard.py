"""The SSRF guard: which addresses are refused and why, allowed networks, resolution checked before connecting."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.events.guard import GuardedResolver, RefusedTarget, Target, TargetPolicy, check_target, rule_for


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.1", "private"),  # documentation range: Python counts it private
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ],
)
def test_rules(address: str, rule: str | None) -> None:
    assert rule_for(ipaddress.ip_address(address)) == rule


def test_allowed_networks_open_only_themselves_and_never_metadata_by_a_wide_net() -> None:
    policy = TargetPolicy.parse("127.0.0.0/8, 169.254.0.0/16, 10.1.0.0/16")
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) == "private"
    assert policy.refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "metadata"
    assert TargetPolicy.parse("169.254.169.254/32").refusal(ipaddress.ip_address("169.254.169.254")) is None


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://example.org/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http:///nohost", "host"),
        ("http://user:pw@example.org/", "url"),
        ("http://example.org:99999/", "url"),
    ],
)
def test_urls_that_are_not_webhook_targets(url: str, rule: str) -> None:
    with pytest.raises(RefusedTarget) as caught:
        Target(url)
    assert caught.value.rule == rule


async def test_names_are_resolved_and_every_address_checked() -> None:
    policy = TargetPolicy()
    with pytest.raises(RefusedTarget) as caught:
        await check_target(policy, "http://localhost:8080/hook")
    assert caught.value.rule == "loopback"
    assert "ONEWINDOW_WEBHOOK_ALLOWED_NETWORKS" in caught.value.message
    with pytest.raises(RefusedTarget) as unresolvable:
        await check_target(policy, "http://no-such-host.invalid/hook")
    assert unresolvable.value.rule == "resolve"


async def test_the_resolver_hands_the_connection_only_checked_addresses() -> None:
    with pytest.raises(RefusedTarget):
        await GuardedResolver(TargetPolicy()).resolve("localhost", 80)
    answers = await GuardedResolver(TargetPolicy.parse("127.0.0.0/8, ::1/128")).resolve("localhost", 80)
    assert answers and all(rule_for(ipaddress.ip_address(a["host"])) == "loopback" for a in answers)
