"""Alembic migrations of the hub store, shipped inside the package and applied by
`flute.hub.store` (no alembic.ini needed)."""
