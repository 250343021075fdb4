"""What every part of `bookbot bench` shares: the server, a database of the run's own, the
targets' verdicts and percentiles.

Each part measures in a database it creates and drops, so a run never reads another run's rows
and never leaves any behind, whichever server it is pointed at.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import make_engine
from storage.migrate import upgrade
from storage.throwaway_pg import throwaway_server


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The given server, TEST_DATABASE_URL, or a throwaway embedded server."""
    url = url or os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with throwaway_server("bookbot-bench-") as server:
        yield server.url


def plain_dsn(url: str, database: str | None = None) -> str:
    """postgresql://… for asyncpg and libpq tools, whatever driver suffix the URL carries."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def asyncpg_url(url: str, database: str) -> str:
    """The SQLAlchemy URL of `database` on the server of `url`."""
    parsed = make_url(url).set(drivername="postgresql+asyncpg", database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(server: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on `server` (its name), dropped afterwards even when connected."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(plain_dsn(server))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def bench_database(
    server: str, prefix: str, **pool: Any
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A migrated database of the run's own: its URL (for worker processes) and an engine."""
    async with scratch_database(server, prefix) as name:
        url = asyncpg_url(server, name)
        engine = make_engine(url, **pool)
        try:
            await upgrade(engine)
            yield url, engine
        finally:
            await engine.dispose()


async def analyze(engine: AsyncEngine) -> None:
    """Fresh tables have no statistics; production has autovacuum's, so plans match them."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("ANALYZE")


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the value below which `share` of the values lie (p99 of 100 values is the
    99th, not an interpolation that no event actually took)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


@dataclass(frozen=True)
class Target:
    """One line of the README's table: what was measured, the figure, the goal, met or not.

    Printed at the end of a run in the table's own Markdown, so updating the README after a
    re-measurement is a paste, not a transcription.
    """

    what: str
    figure: str
    goal: str
    met: bool

    @property
    def verdict(self) -> str:
        return "met" if self.met else "missed"

    def row(self) -> str:
        verdict = "met" if self.met else "**missed**"
        return f"| {self.what} | {self.figure} | {self.goal} | {verdict} |"


def print_targets(targets: list[Target]) -> None:
    print("\nTargets (the README table's rows):")
    print("| Target | Measured | Goal | Verdict |")
    print("|---|---|---|---|")
    for target in targets:
        print(target.row())
