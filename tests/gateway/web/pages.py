"""Helpers of the page tests: sign in through the console's own form, read hidden fields back from a page."""

from __future__ import annotations

import re
from html import unescape

import httpx

from tests.gateway.intake.fixtures import Gateway

_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)"')


def hidden(html: str, name: str) -> str:
    """The value of the first hidden field ``name`` of a page."""
    for match in _HIDDEN.finditer(html):
        if match.group("name") == name:
            return unescape(match.group("value"))
    raise AssertionError(f"no hidden field {name}")


async def sign_in(gateway: Gateway, who: str, client: httpx.AsyncClient | None = None) -> str:
    """Sign ``who`` in through the form; returns the session's CSRF token (read from the console's page)."""
    client = client or gateway.client
    form = await client.get("/console")
    assert form.status_code == 200, form.text
    response = await client.post(
        "/console/sign-in",
        data={"csrf": hidden(form.text, "csrf"), "next": "/console", "token": gateway.tokens[who]},
    )
    assert response.status_code == 303, response.text
    home = await client.get("/console")
    assert home.status_code == 200, home.text
    return hidden(home.text, "csrf")


__all__ = ["hidden", "sign_in"]
