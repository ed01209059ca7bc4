"""Backups: `onewindow backup` and `onewindow restore` for the embedded deployment, keys kept apart
(`gateway.backups.archive`). PostgreSQL deployments use pg_dump/pg_restore (docs/resilience.md)."""

from __future__ import annotations
