"""Defaults of `onewindow simulate` and `run_simulators`, importable without the servers.

The command line builds its parser from these on every start; keeping them apart from `runner` (aiohttp, seeding,
PKI) keeps ``onewindow --help`` and every other command from paying for the simulators.
"""

from __future__ import annotations

#: Seed of the synthetic citizens; the demo and the connector tests use it too.
DEFAULT_SEED = 20200501
DEFAULT_CITIZENS = 500
#: Control port; the departments listen on the next six ports (docs/simulators.md).
DEFAULT_PORT = 8100
