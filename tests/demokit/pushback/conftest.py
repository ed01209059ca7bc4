from tests.gateway.departments.fixtures import live_gateway
from tests.gateway.intake.fixtures import shared_simulators

__all__ = ["live_gateway", "shared_simulators"]
