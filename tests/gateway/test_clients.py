"""The client's address behind trusted proxies (`gateway.clients`), the setting, and `onewindow serve` leaving
``X-Forwarded-For`` to the gateway."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from gateway.clients import UNKNOWN, TrustedProxies, parse_address, parse_networks
from gateway.settings import DEFAULT_CONFIG_DIR, SettingsError, load_settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7:51234 ", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ('"[2001:db8::1]"', "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("", None),
        ("203.0.113", None),
        ("[2001:db8::1", None),
        ("_hidden", None),
    ],
)
def test_addresses_are_read_as_proxies_write_them(value: str, expected: str | None) -> None:
    address = parse_address(value)
    assert (None if address is None else str(address)) == expected


def test_networks_are_addresses_and_cidrs() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks(" 10.0.0.5, 10.1.0.0/16 ,fd00::/8,")] == [
        "10.0.0.5/32",
        "10.1.0.0/16",
        "fd00::/8",
    ]
    assert [str(n) for n in parse_networks("::ffff:10.0.0.0/104")] == ["10.0.0.0/8"]
    for bad in ("10.0.0.300", "proxy.internal", "10.0.0.0/33", "*"):
        with pytest.raises(ValueError, match="not an IP address or CIDR network"):
            parse_networks(bad)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    nobody = TrustedProxies()
    assert not nobody
    assert nobody.client_address("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"
    assert nobody.client_address("::ffff:192.0.2.4", []) == "192.0.2.4"
    assert nobody.client_address(None, ["198.51.100.1"]) == UNKNOWN
    assert nobody.client_address("testclient", ["198.51.100.1"]) == "testclient"


def test_a_trusted_proxy_names_the_client_right_most_first() -> None:
    proxies = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8, fd00::/8")
    # An untrusted peer's header is ignored, whatever it says.
    assert proxies.client_address("198.51.100.9", ["203.0.113.7"]) == "198.51.100.9"
    # The proxy appended its client; what the client wrote to the left of it is ignored.
    assert proxies.client_address("127.0.0.1", ["192.0.2.1, 192.0.2.2, 203.0.113.7"]) == "203.0.113.7"
    assert proxies.client_address("127.0.0.1", ["192.0.2.1", "203.0.113.7"]) == "203.0.113.7"  # two header lines
    # A chain of trusted proxies is walked through.
    assert proxies.client_address("127.0.0.1", ["192.0.2.1, 203.0.113.7, 10.2.3.4, 10.0.0.1"]) == "203.0.113.7"
    assert proxies.client_address("fd00::2", ["[2001:db8::5]:4711, fd00::1"]) == "2001:db8::5"
    # Every hop trusted: the left-most; no header: the proxy itself.
    assert proxies.client_address("127.0.0.1", ["10.9.9.9, 10.0.0.1"]) == "10.9.9.9"
    assert proxies.client_address("127.0.0.1", []) == "127.0.0.1"
    assert proxies.client_address("127.0.0.1", [" , "]) == "127.0.0.1"
    # Not an address where the client should be: the trusted hop that passed it on.
    assert proxies.client_address("127.0.0.1", ["203.0.113.7, garbage"]) == "127.0.0.1"
    assert proxies.client_address("127.0.0.1", ["garbage, 10.0.0.1"]) == "10.0.0.1"


def test_the_setting_is_checked_when_loaded(tmp_path: Path) -> None:
    assert load_settings(environ={}, data_dir=tmp_path).trusted_proxies == ""
    settings = load_settings(environ={"ONEWINDOW_TRUSTED_PROXIES": "10.0.0.5,10.1.0.0/16"}, data_dir=tmp_path)
    assert settings.trusted_proxies == "10.0.0.5,10.1.0.0/16"
    with pytest.raises(SettingsError, match=r"trusted_proxies: 'lb\.internal' is not an IP address"):
        load_settings(environ={"ONEWINDOW_TRUSTED_PROXIES": "10.0.0.5, lb.internal"}, data_dir=tmp_path)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_leaves_forwarded_headers_to_the_gateway(
    workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn would believe ``X-Forwarded-For`` from 127.0.0.1 by default; `onewindow serve` turns that off."""
    import uvicorn

    import gateway.app
    from gateway.commands import serve

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(gateway.app, "create_app", lambda settings: object())
    # Set here so that what serve hands its workers through the environment is undone after the test.
    for name, value in {
        "ONEWINDOW_HOST": "127.0.0.1",
        "ONEWINDOW_PORT": "8000",
        "ONEWINDOW_DATA_DIR": str(tmp_path),
        "ONEWINDOW_CONFIG_DIR": str(DEFAULT_CONFIG_DIR),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ONEWINDOW_TRUSTED_PROXIES", "10.0.0.5")
    args = argparse.Namespace(host=None, port=None, data_dir=tmp_path, config=None, workers=workers)
    assert serve.run(args) == 0
    (kwargs,) = calls
    assert kwargs["proxy_headers"] is False
    assert "forwarded_allow_ips" not in kwargs
