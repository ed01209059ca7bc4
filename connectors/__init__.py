"""Department systems -> verified e-certificates. Knows the catalog, never the gateway's database."""
