"""After booking, end to end: the outbox worker sends the confirmation e-mail (real Resend SDK to
a fake Resend), reminders with buttons and the video room (real PTB to the fake Bot API), once."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import vobject
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from engine.booking import Booked, BookingRequest, book_session
from engine.followup import manage
from storage.models import ReminderJob
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.channels import eml, resend_to
from tests.factories import NOW, World, make_world
from tests.fake_resend import FakeResend
from tests.fake_telegram import FakeTelegram
from tests.test_telegram import ADA_TG, SAM_TG, platforms_of, settings_for, start_bot

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
            UnitOfWork.over(session),
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


def stamps(data: bytes) -> tuple[datetime, datetime]:
    """DTSTAMP as icalendar and vobject, two independent parsers, read it."""
    (event,) = icalendar.Calendar.from_ical(data).events
    return event.decoded("DTSTAMP"), vobject.readOne(data.decode()).vevent.dtstamp.value


def organizer(data: bytes) -> str:
    (event,) = icalendar.Calendar.from_ical(data).events
    found = str(event["ORGANIZER"])
    assert found == vobject.readOne(data.decode()).vevent.organizer.value
    return found


def manage_url(email: dict[str, Any]) -> str:
    """The "Manage in Telegram" link of a sent e-mail (the one t.me link in it)."""
    (url,) = {u for u in re.findall(r"https://t\.me/\S+", email["text"])}
    assert f'href="{url}"' in email["html"]
    return str(url)


async def statuses(db: Factory) -> dict[str, str]:
    async with db() as session:
        rows = (await session.scalars(select(ReminderJob))).all()
        return {row.kind: row.status for row in rows}


async def test_the_worker_sends_each_message_once_at_its_time(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    world, session_id = await linked_world(pg)
    sam, ada = fake.user(SAM_TG, "Sam"), fake.user(ADA_TG, "Ada")
    settings = settings_for(fake)
    bot = await start_bot(fake, pg)
    clock = Clock(NOW)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), clock, email=resend_to(resend, settings)
    )
    try:
        # Both confirmation e-mails and Ada's notice, at once.
        assert await worker.run_once() == 3
        assert "New booking: Sam Student booked Calculus I with you" in (
            ada.last_message().text or ""
        )
        assert "Note from Sam Student: Bring the exam" in (ada.last_message().text or "")
        email = next(e for e in resend.emails if e["to"] == ["sam.student@example.edu"])
        (attachment,) = email["attachments"]
        assert b"METHOD:REQUEST" in base64.b64decode(attachment["content"])
        keys = sorted(r.header("Idempotency-Key") or "" for r in resend.requests)
        assert keys == [
            f"session-{session_id}-confirmation-0",
            f"session-{session_id}-confirmation-0-{world.teachers[0].id}",
        ]

        clock.now = FRIDAY_10 - timedelta(hours=24) + timedelta(minutes=1)
        assert await worker.run_once() == 3  # Sam: chat and e-mail; Ada: chat
        assert await worker.run_once() == 0  # exactly once
        reminder_mail = resend.emails[-1]
        assert reminder_mail["subject"].startswith("Session reminder: Calculus I with Ada")
        assert "in 1 day" in reminder_mail["text"]
        assert manage_url(reminder_mail) == manage_url(email)  # the same "Manage in Telegram"
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
    # Both confirmations and Sam's 24 h reminder; the 1 h one came too late.
    assert len(resend.emails) == 3


async def test_a_cancellation_tells_the_other_side_and_sends_calendar_cancels(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    world, session_id = await linked_world(pg)
    ada = fake.user(ADA_TG, "Ada")
    fake.user(SAM_TG, "Sam")
    settings = settings_for(fake)
    bot = await start_bot(fake, pg)
    clock = Clock(NOW)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), clock, email=resend_to(resend, settings)
    )
    try:
        while await worker.run_once():  # the invites go out first
            pass
        cancelled_at = NOW + timedelta(hours=3, minutes=7, seconds=11)
        clock.now = cancelled_at
        cancelled = await manage.cancel(
            pg, session_id, world.student.id, cancelled_at, timedelta(hours=2)
        )
        assert isinstance(cancelled, manage.Cancelled)
        while await worker.run_once():
            pass
        assert "❌ Sam Student cancelled the Calculus I session" in (ada.last_message().text or "")
        cancels = {e["to"][0]: e for e in resend.emails if "cancel" in e["subject"].lower()}
        assert sorted(cancels) == ["ada.lovelace@example.edu", "sam.student@example.edu"]
        for email in cancels.values():
            data = base64.b64decode(email["attachments"][0]["content"])
            assert b"METHOD:CANCEL" in data and b"SEQUENCE:1" in data
            # DTSTAMP is when the session was cancelled, not when it was booked.
            assert stamps(data) == (cancelled_at, cancelled_at)
            assert organizer(data) == "mailto:bookings@tutoring.example.edu"
        # Each copy is written for its reader and says who cancelled.
        ada_copy = cancels["ada.lovelace@example.edu"]
        assert ada_copy["subject"].startswith("Session cancelled: Calculus I with Sam Student, ")
        assert "Hi Ada Lovelace," in ada_copy["text"]
        assert "Sam Student cancelled your session." in ada_copy["text"]
        assert "\nStudent:          Sam Student\n" in ada_copy["text"]
        assert "\nCancelled by:     Sam Student\n" in ada_copy["text"]
        assert "/book" not in ada_copy["text"] and "Student-Teacher" not in ada_copy["text"]
        sam_copy = cancels["sam.student@example.edu"]
        assert sam_copy["subject"].startswith("Session cancelled: Calculus I with Ada Lovelace, ")
        assert "You cancelled your session with Ada Lovelace." in sam_copy["text"]
        assert "\nCancelled by:     You\n" in sam_copy["text"]
        assert "Want another time? Send /book" in sam_copy["text"]
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
    settings = settings_for(fake)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), clock, email=eml(tmp_path, settings)
    )
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
    settings = settings_for(fake)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), clock, email=eml(tmp_path, settings)
    )
    try:
        driver = Bot(bot.app, fake)
        await driver.say(sam, f"/start {payload(world)}")
        await driver.press(sam, "Schedule Later")
        assert await worker.run_once() == 1
        nudge = sam.last_message()
        assert "You saved a session of Calculus I to schedule later" in (nudge.text or "")
        await driver.press(sam, "Schedule now")
        assert "Step 1 of 4 · Choose a Student-Teacher" in wizard(fake, SAM_TG)
    finally:
        await bot.app.shutdown()


async def test_both_people_get_the_invite_by_email_each_written_for_them(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    """The service organizes, the student and the ST attend, and each gets a REQUEST e-mail
    addressed and written to them, with every link in both the HTML and the text part."""
    world, session_id = await linked_world(pg)
    fake.user(SAM_TG, "Sam")
    fake.user(ADA_TG, "Ada")
    settings = settings_for(fake)
    bot = await start_bot(fake, pg)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), Clock(NOW), email=resend_to(resend, settings)
    )
    try:
        while await worker.run_once():
            pass
    finally:
        await bot.app.shutdown()
    mails = {e["to"][0]: e for e in resend.emails}
    assert sorted(mails) == ["ada.lovelace@example.edu", "sam.student@example.edu"]
    invites = []
    for address, email in mails.items():
        (attachment,) = email["attachments"]
        assert attachment["content_type"] == "text/calendar; method=REQUEST"
        data = base64.b64decode(attachment["content"])
        invites.append(data)
        calendar = icalendar.Calendar.from_ical(data)
        assert str(calendar["METHOD"]) == "REQUEST"
        (event,) = calendar.events
        assert str(event["UID"]) == f"session-{session_id}@bookbot"
        assert organizer(data) == "mailto:bookings@tutoring.example.edu"
        attendees = {str(a): a.params for a in event.attendees}
        assert sorted(attendees) == [
            "mailto:ada.lovelace@example.edu",
            "mailto:sam.student@example.edu",
        ]
        for params in attendees.values():
            assert (params["ROLE"], params["PARTSTAT"], params["RSVP"]) == (
                "REQ-PARTICIPANT",
                "ACCEPTED",
                "FALSE",
            )
        assert f"mailto:{address}" in attendees
        hrefs = set(re.findall(r'href="([^"]+)"', email["html"]))
        texts = set(re.findall(r"https?://\S+", email["text"]))
        assert {h.replace("&amp;", "&") for h in hrefs} == texts
        assert any(u.startswith("https://outlook.office.com/calendar/") for u in texts)
        assert any(u.startswith("https://outlook.live.com/calendar/") for u in texts)
        assert manage_url(email).startswith(f"https://t.me/{fake.username}?start=")
    # One invite, the same for both people but for each one's own join link (LOCATION, URL).
    events = [icalendar.Calendar.from_ical(data).events[0] for data in invites]
    links = [str(event.pop("LOCATION")) for event in events]
    assert [str(event.pop("URL")) for event in events] == links
    assert links[0] != links[1] and all("/join/" in link for link in links)
    assert events[0].to_ical() == events[1].to_ical()
    sam, ada = mails["sam.student@example.edu"], mails["ada.lovelace@example.edu"]
    assert sam["subject"].startswith("Session Booked! Calculus I with Ada Lovelace, ")
    assert (
        "Hi Sam Student," in sam["text"]
        and "Your session with Ada Lovelace is booked." in (sam["text"])
    )
    assert ada["subject"].startswith("Session Booked! Calculus I with Sam Student, ")
    assert "Hi Ada Lovelace," in ada["text"]
    assert "Sam Student booked a session with you." in ada["text"]
    assert "Note from Sam Student:\nBring the exam" in ada["text"]
    assert manage_url(sam) != manage_url(ada)  # each signs in its own reader
    assert world.teachers[0].email == "ada.lovelace@example.edu"


async def test_manage_in_telegram_from_the_email_links_the_chat_and_opens_mysessions(
    fake: FakeTelegram, resend: FakeResend, pg: Factory
) -> None:
    """Sam has never opened the bot: the e-mail's link signs him in and shows /mysessions."""
    from tests.test_telegram import Bot

    world = await make_world(pg)
    async with pg() as session, session.begin():
        outcome = await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[0].id,
                FRIDAY_10,
                FRIDAY_10 + timedelta(hours=1),
                True,
                None,
                "web",
            ),
            reminder_offsets=[timedelta(hours=24)],
            now=NOW,
        )
    assert isinstance(outcome, Booked)
    settings = settings_for(fake)
    bot = await start_bot(fake, pg)
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), Clock(NOW), email=resend_to(resend, settings)
    )
    try:
        while await worker.run_once():
            pass
        email = next(e for e in resend.emails if e["to"] == ["sam.student@example.edu"])
        url = manage_url(email)
        payload = url.split("?start=", 1)[1]
        sam = fake.user(SAM_TG, "Sam")
        driver = Bot(bot.app, fake)
        await driver.say(sam, "/mysessions")
        assert "not linked" in (sam.last_message().text or "")

        await driver.say(sam, f"/start {payload}")
        texts = [m.text or "" for m in sam.messages()]
        assert "Your upcoming sessions" in texts[-2]
        assert "Calculus I with Ada Lovelace" in texts[-1]
        assert sam.last_message().buttons() == [["Join", "Reschedule", "Cancel session"]]
        async with pg() as session:
            assert await Repo(session).identity("telegram", str(SAM_TG)) is not None
        # Linked now: /mysessions answers the same without the link.
        await driver.say(sam, "/mysessions")
        assert "Calculus I with Ada Lovelace" in (sam.last_message().text or "")
        # And the buttons act on the session.
        await driver.press(sam, "Cancel session")
        assert "Cancel your Calculus I session with Ada Lovelace" in (sam.last_message().text or "")
    finally:
        await bot.app.shutdown()
