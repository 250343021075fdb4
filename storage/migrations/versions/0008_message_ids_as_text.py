"""conversations: chat message ids as text (a Slack message `ts` is not a number)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Upgrade keeps every id (Telegram's numbers become their decimal text). Downgrade keeps the ids
that are numbers and forgets the others: they only name the live wizard message and its ST
cards, so a forgotten one means the next screen is sent as a new message instead of an edit.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns as this step reads and writes them (not the models, which move on).
conversations = sa.table(
    "conversations",
    sa.column("id", sa.Integer()),
    sa.column("message_id", sa.String()),
    sa.column("extra_message_ids", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.alter_column(
            "message_id",
            type_=sa.String(64),
            existing_type=sa.BigInteger(),
            existing_nullable=True,
            postgresql_using="message_id::varchar(64)",
        )
    _rewrite_extras(lambda ids: [str(i) for i in ids])


def downgrade() -> None:
    def numbers(ids: list[Any]) -> list[Any]:
        return [int(str(i)) for i in ids if str(i).isdigit()]

    _rewrite_extras(numbers)
    bind = op.get_bind()
    rows = bind.execute(sa.select(conversations.c.id, conversations.c.message_id)).all()
    for row_id, message_id in rows:
        if message_id is not None and not str(message_id).isdigit():
            bind.execute(
                conversations.update().where(conversations.c.id == row_id).values(message_id=None)
            )
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.alter_column(
            "message_id",
            type_=sa.BigInteger(),
            existing_type=sa.String(64),
            existing_nullable=True,
            postgresql_using="message_id::bigint",
        )


def _rewrite_extras(convert: Callable[[list[Any]], list[Any]]) -> None:
    """Rewrite each row's JSON list of companion message ids (JSON has no column type to alter)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(conversations.c.id, conversations.c.extra_message_ids).where(
            conversations.c.extra_message_ids.is_not(None)
        )
    ).all()
    for row_id, extras in rows:
        if extras is None:  # a JSON null
            continue
        bind.execute(
            conversations.update()
            .where(conversations.c.id == row_id)
            .values(extra_message_ids=convert(list(extras)))
        )
