"""link_uses.expires_at: a link's first-use record may be pruned only after the link expired

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Rows written before this column get NULL (their expiry was never stored) and are kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("link_uses") as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("link_uses") as batch_op:
        batch_op.drop_column("expires_at")
