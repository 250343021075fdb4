"""sessions: who booked (created_by), a wider created_via, and the cancellation's reason

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Every session written so far was booked by its student, so `created_by` is filled in from
`student_id`. Downgrade drops both new columns and cuts `created_via` back to 16 characters.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.alter_column(
            "created_via",
            type_=sa.String(64),
            existing_type=sa.String(16),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_sessions_created_by_users", "users", ["created_by"], ["id"])
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.execute("UPDATE sessions SET created_by = student_id WHERE created_by IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("cancel_reason")
        batch_op.drop_constraint("fk_sessions_created_by_users", type_="foreignkey")
        batch_op.drop_column("created_by")
        batch_op.alter_column(
            "created_via",
            type_=sa.String(16),
            existing_type=sa.String(64),
            existing_nullable=False,
            postgresql_using="created_via::varchar(16)",
        )
