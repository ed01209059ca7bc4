"""Events out of the gateway: the transactional outbox (`outbox.emit`), webhook subscriptions and their signed,
retried deliveries (`dispatcher`), and the live stream for consoles (`stream`). See docs/events.md."""
