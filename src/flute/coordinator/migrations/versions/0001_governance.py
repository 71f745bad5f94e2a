"""Coordinator database: organisations, users, roles, sessions, tokens, login throttle and the
hash-chained audit log (F-PIL-20/21, F-SRS-8); the same tables as a hub's.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from flute.governance import schema_0001

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema_0001.upgrade()


def downgrade() -> None:
    schema_0001.downgrade()
