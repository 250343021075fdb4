"""Deterministic lock interleavings on PostgreSQL, for tests of FOR UPDATE and SKIP LOCKED.

A race test that starts two transactions and hopes they overlap catches a missing lock only
when the timing happens to be bad. These helpers make the overlap certain instead: one
transaction takes its locks and stays open; the second is started only then, and
`waits_for_lock` asks PostgreSQL (`pg_blocking_pids`) whether it is queued behind the first.
The answer does not depend on how long anything takes: a task that needs the held lock cannot
finish before the holder ends, and one that does not need it finishes without ever being listed
as blocked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

BLOCKED_BY = text(
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)))"
)


async def backend_pid(session: AsyncSession | AsyncConnection) -> int:
    """The server process of this transaction: what `pg_blocking_pids` reports as the holder."""
    pid = await session.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def waits_for_lock(task: asyncio.Task[Any], engine: AsyncEngine, holder: int) -> bool:
    """True as soon as `task` waits for a lock held by backend `holder`; False if it finishes.

    The loop ends on one of two facts, whichever PostgreSQL shows first; the short pause between
    looks only saves CPU and decides nothing.
    """
    async with engine.connect() as probe:
        while not task.done():
            if await probe.scalar(BLOCKED_BY, {"holder": holder}):
                return True
            await probe.rollback()  # a fresh snapshot of pg_stat_activity for the next look
            await asyncio.sleep(0.005)
    return False
