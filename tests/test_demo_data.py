"""The demo data loads whatever the day and the hour: its STs sit in zones far apart, so "in N
days at HH:00" in each one's zone can fall on the same UTC hour for the one student who booked
them, which PostgreSQL's no-overlap constraint refuses (it did, on 1 December 2026 at 05:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.demo_data import load_demo

Factory = async_sessionmaker[AsyncSession]
START = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday


async def test_the_demo_loads_at_every_hour_of_a_week(pg: Factory) -> None:
    for hours in range(0, 7 * 24 + 1):
        now = START + timedelta(hours=hours, minutes=7)
        async with pg() as session:
            transaction = await session.begin()
            await load_demo(session, now)
            await session.flush()  # the constraints are checked here
            await transaction.rollback()
