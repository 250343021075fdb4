"""The Alembic migration builds exactly the models' schema, on PostgreSQL and on SQLite."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, inspect, null, select, table, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import make_engine
from storage.migrate import downgrade, upgrade
from storage.models import Base

# What PostgreSQL reads back from the migration: the ST's range ends at `blocked_until` (the
# session plus the ST's buffer), the student's at `scheduled_end`; only scheduled sessions count.
# Names alone would pass with the wrong column, so the whole definitions are compared.
EXCLUSION_CONSTRAINTS = {
    "ex_sessions_student_no_overlap": (
        "EXCLUDE USING gist (student_id WITH =, "
        "tstzrange(scheduled_start, scheduled_end, '[)'::text) WITH &&) "
        "WHERE (((status)::text = 'scheduled'::text))"
    ),
    "ex_sessions_teacher_no_overlap": (
        "EXCLUDE USING gist (teacher_id WITH =, "
        "tstzrange(scheduled_start, blocked_until, '[)'::text) WITH &&) "
        "WHERE (((status)::text = 'scheduled'::text))"
    ),
}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def _check_round_trip(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    await downgrade(engine)
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
    await upgrade(engine)


async def test_the_migration_matches_the_models_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    try:
        await _check_round_trip(engine)
    finally:
        await engine.dispose()


async def test_the_migration_matches_the_models_and_adds_exact_exclusion_constraints_on_postgresql(
    pg_server: str,
) -> None:
    name = f"bookbot_migration_{secrets.token_hex(3)}"
    admin_dsn = make_url(pg_server).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(
        make_url(pg_server)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        await _check_round_trip(engine)
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE contype = 'x' ORDER BY conname"
                )
            )
            assert {name: definition for name, definition in found} == EXCLUSION_CONSTRAINTS
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# --- data across the chat-seam migrations (0008 message ids as text, 0009 who booked) --------
# The tables as those revisions see them, not as the models describe them today.
USERS = table("users", column("id"), column("name"), column("timezone"), column("locale"))
COURSES = table(
    "courses",
    column("id"),
    column("slug"),
    column("title"),
    column("session_count"),
    column("session_minutes"),
)
SESSIONS = table(
    "sessions",
    column("id"),
    column("course_id"),
    column("student_id"),
    column("status"),
    column("reminders"),
    column("created_via"),
    column("created_by"),
    column("cancel_reason"),
)
CONVERSATIONS = table(
    "conversations",
    column("id"),
    column("platform"),
    column("chat_id"),
    column("state", JSON()),
    column("version"),
    column("message_id"),
    column("extra_message_ids", JSON()),
)


async def _rows(engine: AsyncEngine, query: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(query)]


async def _columns(engine: AsyncEngine, name: str) -> set[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda c: inspect(c).get_columns(name))
    return {c["name"] for c in found}


async def _check_chat_seam_data(engine: AsyncEngine) -> None:
    """Telegram's numeric ids survive as text and back; a Slack `ts` is kept as text and only
    forgotten by a downgrade; existing sessions are recorded as booked by their student."""
    await upgrade(engine, "0007")
    async with engine.begin() as connection:
        await connection.execute(
            USERS.insert(),
            [
                {"id": 1, "name": "Sam", "timezone": "UTC", "locale": "en"},
                {"id": 2, "name": "Coordinator", "timezone": "UTC", "locale": "en"},
            ],
        )
        await connection.execute(
            COURSES.insert().values(id=1, slug="c", title="C", session_count=4, session_minutes=60)
        )
        await connection.execute(
            SESSIONS.insert().values(
                id=1,
                course_id=1,
                student_id=1,
                status="unscheduled",
                reminders=True,
                created_via="telegram",
            )
        )
        await connection.execute(
            CONVERSATIONS.insert(),
            [
                {
                    "id": 1,
                    "platform": "telegram",
                    "chat_id": "100",
                    "state": {},
                    "version": 0,
                    "message_id": 42,
                    "extra_message_ids": [43, 44],
                },
                {
                    "id": 2,
                    "platform": "telegram",
                    "chat_id": "101",
                    "state": {},
                    "version": 0,
                    "message_id": None,
                    "extra_message_ids": null(),  # SQL NULL, not JSON null
                },
            ],
        )

    await upgrade(engine, "0008")
    ids = CONVERSATIONS.c.id, CONVERSATIONS.c.message_id, CONVERSATIONS.c.extra_message_ids
    by_id = select(*ids).order_by(CONVERSATIONS.c.id)
    assert await _rows(engine, by_id) == [(1, "42", ["43", "44"]), (2, None, None)]
    async with engine.begin() as connection:
        await connection.execute(
            CONVERSATIONS.update()
            .where(CONVERSATIONS.c.id == 2)
            .values(message_id="1700000000.123456", extra_message_ids=["1700000000.2", "45"])
        )

    await upgrade(engine, "0009")
    who = select(SESSIONS.c.created_by, SESSIONS.c.cancel_reason)
    assert await _rows(engine, who) == [(1, None)]  # booked by the student, as all were
    async with engine.begin() as connection:  # a coordinator, through a longer channel name
        await connection.execute(
            SESSIONS.insert().values(
                id=2,
                course_id=1,
                student_id=1,
                status="unscheduled",
                reminders=True,
                created_via="slack:coordinator-home-tab",
                created_by=2,
                cancel_reason="Exam moved",
            )
        )
    assert {"created_by", "cancel_reason"} <= await _columns(engine, "sessions")

    await downgrade(engine, "0008")
    assert not {"created_by", "cancel_reason"} & await _columns(engine, "sessions")
    await downgrade(engine, "0007")
    assert await _rows(engine, by_id) == [(1, 42, [43, 44]), (2, None, [45])]
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) != []  # the models moved on since 0007
    await upgrade(engine)
    assert await _rows(engine, by_id) == [(1, "42", ["43", "44"]), (2, None, ["45"])]


async def test_message_ids_and_who_booked_migrate_up_and_down_with_their_data_on_sqlite(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data.db'}")
    try:
        await _check_chat_seam_data(engine)
    finally:
        await engine.dispose()


async def test_message_ids_and_who_booked_migrate_up_and_down_with_their_data_on_postgresql(
    pg_server: str,
) -> None:
    name = f"bookbot_migration_{secrets.token_hex(3)}"
    admin_dsn = make_url(pg_server).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(
        make_url(pg_server)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        await _check_chat_seam_data(engine)
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
