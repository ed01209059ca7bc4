"""One set of department simulators per test process for every ``gateway`` fixture (tests/gateway/intake)."""

from tests.gateway.intake.fixtures import shared_simulators

__all__ = ["shared_simulators"]
