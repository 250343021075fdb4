"""sessions: index for the per-course session count checked in every booking

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_student_course", "sessions", ["student_id", "course_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_sessions_student_course", table_name="sessions")
