"""Version 1 of the governance schema, as Alembic operations. Both the coordinator's and the
hubs' migration chains apply it (each has its own revision that calls these functions), so the
two databases get the same tables. Frozen: a later schema change is a new module and new
revisions, never an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.String(32)
DIGEST = sa.String(64)
NAME = sa.String(64)
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "gov_organisation",
        sa.Column("id", NAME, primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "gov_user",
        sa.Column("id", ID, primary_key=True),
        sa.Column("username", NAME, nullable=False, unique=True),
        sa.Column("org_id", NAME, sa.ForeignKey("gov_organisation.id"), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("totp_pending", sa.Text(), nullable=True),
        sa.Column("last_totp_step", sa.BigInteger(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "gov_user_role",
        sa.Column("user_id", ID, sa.ForeignKey("gov_user.id"), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
    )
    op.create_table(
        "gov_session",
        sa.Column("id", ID, primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("gov_user.id"), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_gov_session_user_id", "gov_session", ["user_id"])
    op.create_table(
        "gov_refresh_token",
        sa.Column("token_hash", DIGEST, primary_key=True),
        sa.Column("session_id", ID, sa.ForeignKey("gov_session.id"), nullable=False),
        sa.Column("issued_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_gov_refresh_token_session_id", "gov_refresh_token", ["session_id"])
    op.create_table(
        "gov_api_token",
        sa.Column("id", ID, primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("gov_user.id"), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("token_hash", DIGEST, nullable=False, unique=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_gov_api_token_user_id", "gov_api_token", ["user_id"])
    op.create_table(
        "gov_login_throttle",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TIMESTAMP, nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=True),
    )
    op.create_table(
        "gov_audit_entry",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", NAME, nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", DIGEST, nullable=False),
        sa.Column("hash", DIGEST, nullable=False),
        sa.Column("mac", DIGEST, nullable=True),
    )
    op.create_index("ix_gov_audit_entry_action", "gov_audit_entry", ["action"])
    op.create_table(
        "gov_audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", DIGEST, nullable=False),
        sa.Column("mac", DIGEST, nullable=True),
    )
    # The genesis head exists from the start, so concurrent first appends serialise on its row.
    op.execute(sa.text(f"INSERT INTO gov_audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')"))


def downgrade() -> None:
    op.drop_table("gov_audit_head")
    op.drop_index("ix_gov_audit_entry_action", "gov_audit_entry")
    op.drop_table("gov_audit_entry")
    op.drop_table("gov_login_throttle")
    op.drop_index("ix_gov_api_token_user_id", "gov_api_token")
    op.drop_table("gov_api_token")
    op.drop_index("ix_gov_refresh_token_session_id", "gov_refresh_token")
    op.drop_table("gov_refresh_token")
    op.drop_index("ix_gov_session_user_id", "gov_session")
    op.drop_table("gov_session")
    op.drop_table("gov_user_role")
    op.drop_table("gov_user")
    op.drop_table("gov_organisation")
