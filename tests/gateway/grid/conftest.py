from tests.gateway.intake.fixtures import gateway

__all__ = ["gateway"]
