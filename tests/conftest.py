"""Shared pytest fixtures. Each area keeps its fixtures in its own module, imported here."""

from pg import postgres_server  # noqa: F401  (session-scoped real PostgreSQL server)
