"""Telegram's per-chat flood control, as the fake models it (a short burst, then about one message
a second, then 429 with retry_after): what the bot does when a chat is over the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from engine.booking import Booked, BookingRequest, book_session
from storage.models import ReminderJob
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.channels import eml
from tests.factories import NOW, add_teacher, make_world
from tests.fake_telegram import FakeTelegram
from tests.telegram_rules import FloodControl
from tests.test_telegram import (
    ADA_TG,
    SAM_TG,
    payload,
    platforms_of,
    settings_for,
    start_bot,
    wizard,
)

Factory = async_sessionmaker[AsyncSession]
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves: the worker's (datetime) or the fake's flood control (seconds)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def test_the_worker_waits_out_a_429_for_a_chat_over_its_flood_limit(
    fake: FakeTelegram, pg: Factory, tmp_path: Path
) -> None:
    """Ada's chat has just had a burst of messages when her new-booking notice is due: Telegram
    answers 429 with retry_after, and the worker sends the notice once that time has passed."""
    world = await make_world(pg)
    async with pg() as session, session.begin():
        await Repo(session).link_identity(
            "telegram", str(ADA_TG), world.teachers[0].id, str(ADA_TG)
        )
        booked = await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[0].id,
                FRIDAY_10,
                FRIDAY_10 + timedelta(hours=1),
                False,
                None,
                "telegram",
            ),
            reminder_offsets=[],
            now=NOW,
        )
    assert isinstance(booked, Booked)
    ada = fake.user(ADA_TG, "Ada")
    clock = Clock(NOW)
    fake.clock = clock.seconds  # flood control on the test's clock: no real second decides
    bot = await start_bot(fake, pg)
    settings = settings_for(fake)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), clock, email=eml(tmp_path, settings)
    )
    try:
        for n in range(FloodControl().burst):  # the default limits, nothing tightened
            await bot.app.bot.send_message(ADA_TG, f"earlier message {n}")
        await worker.run_once()
        (refused,) = [c for c in fake.calls_to("sendMessage") if not c.ok]
        assert (refused.status, refused.result) == (429, "Too Many Requests: retry after 1")
        async with pg() as session:
            job = await session.scalar(
                select(ReminderJob).where(ReminderJob.kind == "teacher:booked")
            )
        assert job is not None and job.status == "pending"
        assert job.due_at >= NOW + timedelta(seconds=1) and job.last_error
        assert len(ada.messages()) == FloodControl().burst

        clock.now += timedelta(seconds=1)  # retry_after has passed, for Telegram and the worker
        await worker.run_once()
        assert "New booking: Sam Student booked Calculus I" in (ada.last_message().text or "")
        assert [c.status for c in fake.calls_to("sendMessage")][-2:] == [429, 200]
    finally:
        await bot.app.shutdown()


async def test_a_course_with_more_sts_than_the_burst_allows_still_shows_the_wizard(
    fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg, teachers=4)
    async with pg() as session, session.begin():
        for name in ("Eve Fifth", "Finn Sixth"):
            await add_teacher(session, world.course, name)
    bot = await start_bot(fake, pg)
    try:
        sam = fake.user(SAM_TG)
        await bot.say(sam, f"/start {payload(world)}")
        assert "Step 1 of 4 · Choose a Student-Teacher" in wizard(fake, SAM_TG)
        assert all(c.status == 200 for c in fake.calls)  # no 429 on the way
        # Six STs are listed inside the wizard message, each with its button.
        assert "Finn Sixth" in wizard(fake, SAM_TG)
        await bot.press(sam, "Book with Finn Sixth")
        assert "Step 2 of 4" in wizard(fake, SAM_TG)
    finally:
        await bot.app.shutdown()
