"""users: the staff role (is_coordinator) and where notices go (notify_platform); chat
identities: when each was last used (last_used_at)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09

`is_coordinator` is set by the web platform's data and is false for everyone already there.
`notify_platform` stays NULL until the person picks one with /notify; until then a notice goes to
the chat account they used last (`last_used_at`, NULL for accounts not used since this release).
Only columns are added, so plain ALTER TABLE works on both databases; downgrade drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("is_coordinator", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("users", sa.Column("notify_platform", sa.String(16), nullable=True))
    op.add_column(
        "chat_identities", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: SQLite's batch mode
    # rebuilds the table, and dropping `users` fails while sessions refer to its rows.
    op.drop_column("chat_identities", "last_used_at")
    op.drop_column("users", "notify_platform")
    op.drop_column("users", "is_coordinator")
