"""sessions: when a session was cancelled and by whom (calendar CANCEL DTSTAMP, e-mail wording)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cancelled_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_sessions_cancelled_by_users", "users", ["cancelled_by"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_constraint("fk_sessions_cancelled_by_users", type_="foreignkey")
        batch_op.drop_column("cancelled_by")
        batch_op.drop_column("cancelled_at")
