"""Alembic environment: runs migrations on the connection `flute.synth.workspace.store` hands over."""

from __future__ import annotations

from alembic import context

from flute.synth.workspace.models import WorkspaceBase

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=WorkspaceBase.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
