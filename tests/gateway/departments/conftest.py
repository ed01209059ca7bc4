from tests.gateway.departments.fixtures import live_gateway

__all__ = ["live_gateway"]
