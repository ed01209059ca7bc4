"""Operating the gateway: Prometheus metrics (`metrics`), structured JSON logs with a request id (`logs`), the
per-request wrapper that records both (`requests`) and the protected ``GET /metrics`` route (`controllers`)."""
