"""After booking, end to end: the outbox worker sends the confirmation e-mail (real Resend SDK to
a fake Resend), reminders with buttons and the video room (real PTB to the fake Bot API), once."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from engine import manage
from engine.booking import Booked, BookingRequest, book_session
from storage.models import ReminderJob
from storage.repositories import Repo
from tests.factories import NOW, World, make_world
from tests.fake_resend import FakeResend
from tests.fake_telegram import FakeTelegram
from tests.test_telegram import ADA_TG, SAM_TG, settings_for, start_bot

Factory = async_sessionmaker[AsyncSession]
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def resend() -> AsyncIterator[FakeResend]:
    async with FakeResend() as server:
        yield server


async def linked_world(
    db: Factory, start: datetime = FRIDAY_10, now: datetime = NOW
) -> tuple[World, int]:
    world = await make_world(db)
    async with db() as session, session.begin():
        repo = Repo(session)
        await repo.link_identity("telegram", str(SAM_TG), world.student.id, str(SAM_TG))
        await repo.link_identity("telegram", str(ADA_TG), world.teachers[0].id, str(ADA_TG))
        outcome = await book_session(
            session,
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[0].id,
                start,
                start + timedelta(hours=1),
                True,
                "Bring the exam",
                "telegram",
            ),
            reminder_offsets=[timedelta(hours=24), timedelta(hours=1)],
            now=now,
        )
    assert isinstance(outcome, Booked)
    return world, outcome.session_id


async def statuses(db: Factory) -> dict[str, str]:
    async with db() as session:
        rows = (await session.scalars(select(ReminderJob))).all()
        return {row.kind: row.status for row in rows}


async def test_the_worker_sends_each_message_once_at_its_time(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    _, session_id = await linked_world(pg)
    sam, ada = fake.user(SAM_TG, "Sam"), fake.user(ADA_TG, "Ada")
    settings = settings_for(fake).model_copy(
        update={"resend_api_key": resend.api_key, "resend_api_url": resend.url}
    )
    bot = await start_bot(fake, pg)
    clock = Clock(NOW)
    worker = build_worker(settings, pg, bot.app.bot, clock)
    try:
        assert await worker.run_once() == 2  # the confirmation e-mail and Ada's notice, at once
        assert "New booking: Sam Student booked Calculus I with you" in (
            ada.last_message().text or ""
        )
        assert "Note from Sam Student: Bring the exam" in (ada.last_message().text or "")
        (email,) = resend.emails
        assert email["to"] == ["sam.student@example.edu"]
        (attachment,) = email["attachments"]
        assert b"METHOD:REQUEST" in base64.b64decode(attachment["content"])
        assert (
            resend.requests[-1].header("Idempotency-Key") == f"session-{session_id}-confirmation-0"
        )

        clock.now = FRIDAY_10 - timedelta(hours=24) + timedelta(minutes=1)
        assert await worker.run_once() == 3  # Sam: chat and e-mail; Ada: chat
        assert await worker.run_once() == 0  # exactly once
        reminder_mail = resend.emails[-1]
        assert reminder_mail["subject"].startswith("Session reminder: Calculus I with Ada")
        assert "in 1 day" in reminder_mail["text"]
        reminder = sam.last_message()
        assert "Reminder: your Calculus I session with Ada Lovelace starts in 1 day" in (
            reminder.text or ""
        )
        assert reminder.buttons() == [["Join", "Reschedule", "Cancel session"]]
        assert ada.last_message().buttons() == [["Join", "Cancel session"]]
        assert "with Sam Student" in (ada.last_message().text or "")

        clock.now = FRIDAY_10 + timedelta(minutes=1)  # the worker was down at 09:00
        await worker.run_once()
        jobs = await statuses(pg)
        assert jobs["student:before_1h"] == "skipped"  # too late to be useful
        assert jobs["student:start"] == jobs["teacher:start"] == "sent"
        room = sam.last_message().reply_markup["inline_keyboard"][0][0]["url"]
        assert room == ada.last_message().reply_markup["inline_keyboard"][0][0]["url"]
        assert room.startswith("https://meet.jit.si/Tutoring-")
    finally:
        await bot.app.shutdown()
    assert len(resend.emails) == 2  # the confirmation and the 24 h reminder; 1 h came too late


async def test_a_cancellation_tells_the_other_side_and_sends_calendar_cancels(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    world, session_id = await linked_world(pg)
    ada = fake.user(ADA_TG, "Ada")
    fake.user(SAM_TG, "Sam")
    settings = settings_for(fake).model_copy(
        update={"resend_api_key": resend.api_key, "resend_api_url": resend.url}
    )
    bot = await start_bot(fake, pg)
    clock = Clock(NOW)
    worker = build_worker(settings, pg, bot.app.bot, clock)
    try:
        cancelled = await manage.cancel(pg, session_id, world.student.id, NOW, timedelta(hours=2))
        assert isinstance(cancelled, manage.Cancelled)
        while await worker.run_once():
            pass
        assert "❌ Sam Student cancelled the Calculus I session" in (ada.last_message().text or "")
        cancels = [e for e in resend.emails if "cancel" in e["subject"].lower()]
        assert sorted(e["to"][0] for e in cancels) == [
            "ada.lovelace@example.edu",
            "sam.student@example.edu",
        ]
        ics = base64.b64decode(cancels[0]["attachments"][0]["content"])
        assert b"METHOD:CANCEL" in ics and b"SEQUENCE:1" in ics
        clock.now = FRIDAY_10 - timedelta(hours=1)
        assert await worker.run_once() == 0  # the reminders were cancelled with the session
    finally:
        await bot.app.shutdown()


async def test_a_telegram_429_is_retried_after_retry_after(
    fake: FakeTelegram, pg: Factory, tmp_path: Path
) -> None:
    await linked_world(pg)
    sam = fake.user(SAM_TG, "Sam")
    fake.user(ADA_TG, "Ada")
    bot = await start_bot(fake, pg)
    clock = Clock(FRIDAY_10 - timedelta(hours=1) + timedelta(seconds=5))
    settings = settings_for(fake).model_copy(update={"email_outbox_dir": str(tmp_path)})
    worker = build_worker(settings, pg, bot.app.bot, clock)
    try:
        fake.fail_next("sendMessage", retry_after=7)
        await worker.run_once()
        async with pg() as session:
            jobs = {j.kind: j for j in (await session.scalars(select(ReminderJob))).all()}
        retried = [j for j in jobs.values() if j.last_error and j.status == "pending"]
        assert len(retried) == 1 and retried[0].due_at >= clock.now + timedelta(seconds=7)
        clock.now += timedelta(seconds=8)
        await worker.run_once()
        texts = [m.text or "" for m in sam.messages()]
        assert sum("starts in 1 hour" in t for t in texts) == 1  # the late 24 h one is skipped
        assert os.listdir(tmp_path)  # no API key: the e-mail went to the outbox folder as .eml
    finally:
        await bot.app.shutdown()


async def test_reminders_are_due_in_real_time_before_a_session_across_dst(pg: Factory) -> None:
    """Berlin moves its clocks on 2026-03-29: 24 h before Monday 10:00 CEST is Sunday 09:00 CET
    on the wall clock, 24 real hours earlier in UTC."""
    start = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST
    await linked_world(pg, start, now=datetime(2026, 3, 1, tzinfo=UTC))
    async with pg() as session:
        due = {j.kind: j.due_at for j in (await session.scalars(select(ReminderJob))).all()}
    assert due["student:before_24h"] == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    assert due["student:before_1h"] == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


async def test_schedule_later_gets_a_nudge_that_resumes_the_wizard(
    fake: FakeTelegram, pg: Factory, tmp_path: Path
) -> None:
    from tests.test_telegram import Bot, payload, wizard

    world = await make_world(pg)
    sam = fake.user(SAM_TG, "Sam")
    bot = await start_bot(fake, pg)
    clock = Clock(NOW + timedelta(hours=24, minutes=1))
    settings = settings_for(fake).model_copy(update={"email_outbox_dir": str(tmp_path)})
    worker = build_worker(settings, pg, bot.app.bot, clock)
    try:
        driver = Bot(bot.app, fake)
        await driver.say(sam, f"/start {payload(world)}")
        await driver.press(sam, "Schedule Later")
        assert await worker.run_once() == 1
        nudge = sam.last_message()
        assert "You saved a Calculus I session to schedule later" in (nudge.text or "")
        await driver.press(sam, "Schedule now")
        assert "Step 1 of 4 · Choose a Student-Teacher" in wizard(fake, SAM_TG)
    finally:
        await bot.app.shutdown()
