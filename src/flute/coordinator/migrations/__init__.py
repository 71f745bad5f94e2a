"""Alembic migrations of the coordinator database, shipped inside the package and applied by
`flute.coordinator.store` (no alembic.ini needed)."""
