"""The Alembic migration builds exactly the models' schema, on PostgreSQL and on SQLite."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
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
