"""send_rates: one token bucket per bot, shared by every outbox worker

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10

Workers paced themselves per process, so two of them could send a bot's messages twice as fast
as the platform allows; the shared bucket is one row per bot (storage/send_rate.py). A new table
only: the first take creates its row, and downgrade drops the table (the budget is rebuilt in a
second, nothing is lost).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_rates",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("counted_at", sa.Double(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("send_rates")
