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


async def test_the_migration_matches_the_models_and_adds_exclusion_constraints_on_postgresql(
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
            found = await connection.scalars(
                text("SELECT conname FROM pg_constraint WHERE contype = 'x' ORDER BY conname")
            )
            assert list(found) == [
                "ex_sessions_student_no_overlap",
                "ex_sessions_teacher_no_overlap",
            ]
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
