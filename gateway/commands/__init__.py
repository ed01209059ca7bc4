"""`onewindow` sub-command groups. Each module exposes `register(subparsers)`; `gateway.cli` wires them."""
