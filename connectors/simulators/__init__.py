"""Simulated department systems of Yuhu District, for `onewindow simulate`, the demo and the connector tests.

Six real HTTP servers (aiohttp), each in the API style of a system of its kind (docs/simulators.md): public security
(JSON, API key, cursor), civil affairs (HMAC-signed requests, offset), human resources (OAuth2 client credentials,
pages), disabled persons' federation (legacy XML), health (mutual TLS) and veterans affairs (plain JSON). They serve
deterministic synthetic citizens (`seed`) and certificates signed with each issuer's demo key, and inject faults on
request (`faults`). Start them with `run_simulators`.
"""

from connectors.simulators.faults import Faults, FaultSpecError, parse_fault_spec
from connectors.simulators.registry import CERTIFICATE_TYPES, DEPARTMENT_CODES, DEPARTMENTS
from connectors.simulators.runner import (
    DEFAULT_CITIZENS,
    DEFAULT_PORT,
    DEFAULT_SEED,
    Simulators,
    build_simulators,
    run_simulators,
)
from connectors.simulators.seed import Citizen, Population, demo_citizens, generate_citizens, generate_population

__all__ = [
    "CERTIFICATE_TYPES",
    "DEFAULT_CITIZENS",
    "DEFAULT_PORT",
    "DEFAULT_SEED",
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
