"""Alembic environment: runs migrations on the connection `flute.coordinator.store` hands over."""

from __future__ import annotations

from alembic import context

from flute.coordinator.registry_models import RegistryBase
from flute.governance.models import GovernanceBase

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=[GovernanceBase.metadata, RegistryBase.metadata], render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
