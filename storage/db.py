"""Engine and session factory for PostgreSQL (asyncpg) and the embedded SQLite default."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalize_url(url: str) -> str:
    """Accept the plain `postgresql://` and `sqlite:///` URLs people paste, with async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 10
"""Per process at most 20 connections: five bookbot processes stay under PostgreSQL's default
max_connections (100, of which 3 are reserved for superusers). The README states the rule."""

# SQLSTATEs meaning "no usable server": class 08 (connection exception), and the server shutting
# down (57P01 admin, 57P02 crash) or still starting (57P03 cannot connect now).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def make_engine(
    url: str,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    **kwargs: Any,
) -> AsyncEngine:
    """SQLite gets BEGIN IMMEDIATE so that writers serialise instead of failing mid-transaction.

    SQLite has no row locks and no exclusion constraints; one writer at a time gives the booking
    transaction the same guarantee there that `FOR UPDATE` plus the constraints give on PostgreSQL.
    Bound parameters stay out of error messages (`hide_parameters`): they carry students' notes
    and addresses, and error messages end up in logs. PostgreSQL connections are pinged when
    taken from the pool, so a server restart costs a reconnect instead of a failed event.
    """
    url = normalize_url(url)
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let the BEGIN below be the only BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) means the database cannot be reached right now.

    The server is down, restarting or cut the connection, or the pool waited too long: trying
    the same event again later can succeed, so callers answer "try again" instead of crashing.
    """
    for link in _causes(error):
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, OSError | exc.TimeoutError):  # refused, no socket, connect timeout
            return True
        sqlstate = getattr(link, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


def is_busy(error: BaseException) -> bool:
    """True when SQLite gave up waiting for another writer ("database is locked")."""
    return any(
        type(link).__name__ == "OperationalError"
        and type(link).__module__ == "sqlite3"
        and ("database is locked" in str(link) or "database is busy" in str(link))
        for link in _causes(error)
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what SQLAlchemy wrapped (`orig`) and its causes, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        todo += [
            link.__cause__,
            link.__context__,
            orig if isinstance(orig, BaseException) else None,
        ]


async def ping(factory: async_sessionmaker[AsyncSession], seconds: float = 2.0) -> bool:
    """Whether the database answers a trivial query within `seconds` (readiness checks)."""
    try:
        async with asyncio.timeout(seconds), factory() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # unreachable, refused, timed out: all mean "not ready"
        return False
    return True
