"""Simulated department systems of Yuhu District, for `onewindow simulate`, the demo and the connector tests.

Six real HTTP servers (aiohttp), each in the API style of a system of its kind (docs/simulators.md): public security
(JSON, API key, cursor), civil affairs (HMAC-signed requests, offset), human resources (OAuth2 client credentials,
pages), disabled persons' federation (legacy XML), health (mutual TLS) and veterans affairs (plain JSON). They serve
deterministic synthetic citizens (`seed`) and certificates signed with each issuer's demo key, and inject faults on
request (`faults`). Start them with `run_simulators`; its defaults (seed, population) are those of
``onewindow simulate`` (`gateway.commands.simulate`).

The servers and the seeding (aiohttp, cryptography) load on first use of one of their names, not on import of this
package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from demokit.simulators.faults import Faults, FaultSpecError, parse_fault_spec
from demokit.simulators.registry import CERTIFICATE_TYPES, DEPARTMENT_CODES, DEPARTMENTS

if TYPE_CHECKING:
    from demokit.simulators.runner import Simulators, build_simulators, run_simulators
    from demokit.simulators.seed import Citizen, Population, demo_citizens, generate_citizens, generate_population

#: Names served lazily, by the module that defines them.
_LAZY = {
    "Simulators": "demokit.simulators.runner",
    "build_simulators": "demokit.simulators.runner",
    "run_simulators": "demokit.simulators.runner",
    "Citizen": "demokit.simulators.seed",
    "Population": "demokit.simulators.seed",
    "demo_citizens": "demokit.simulators.seed",
    "generate_citizens": "demokit.simulators.seed",
    "generate_population": "demokit.simulators.seed",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


__all__ = [
    "CERTIFICATE_TYPES",
    "DEPARTMENTS",
    "DEPARTMENT_CODES",
    "Citizen",
    "FaultSpecError",
    "Faults",
    "Population",
    "Simulators",
    "build_simulators",
    "demo_citizens",
    "generate_citizens",
    "generate_population",
    "parse_fault_spec",
    "run_simulators",
]
