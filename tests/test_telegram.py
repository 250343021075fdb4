"""The Telegram bot end to end: the real python-telegram-bot Application, a fake Bot API server
on 127.0.0.1, real PostgreSQL. A test acts as a user who presses only buttons the bot sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import pytest
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update

import storage.booking_tx as tx
from bots.platform import Platform
from bots.telegram.app import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    TelegramApp,
    build_application,
    register_commands,
    webhook_app,
)
from bots.telegram.platform import telegram_platform
from bots.telegram.settings import TelegramSettings
from engine.booking import BookingRequest, book_session
from engine.chat import messages as m
from engine.links import LinkClaims, sign, verify_join
from engine.settings import Settings
from storage.models import ChatIdentity, Session, StudentTeacher
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.channels import eml
from tests.chat import plain
from tests.factories import NOW, World, add_user, enroll, make_world
from tests.fake_telegram import FakeTelegram, FakeUser

Factory = async_sessionmaker[AsyncSession]
SECRET = "test-link-secret"
WEBHOOK_SECRET = "webhook-secret_42"
SAM_TG, RIVAL_TG, ADA_TG = 7001, 7002, 7003
TRANSCRIPT = Path(__file__).parent.parent / "docs" / "telegram-transcript.md"


def settings_for(fake: FakeTelegram) -> Settings:
    return Settings(link_secret=SECRET)


def telegram_settings_for(fake: FakeTelegram) -> TelegramSettings:
    return TelegramSettings(
        token=fake.token,
        api_url=fake.base_url,
        file_url=fake.base_file_url,
        bot_username=fake.username,
        webhook_secret=WEBHOOK_SECRET,
    )


def platforms_of(app: TelegramApp, fake: FakeTelegram) -> list[Platform]:
    """The running Application as the worker's Telegram platform (sender, limits, t.me links)."""
    return [telegram_platform(app, telegram_settings_for(fake))]


def payload(world: World, student_id: int | None = None, **claims: Any) -> str:
    values: dict[str, Any] = {
        "user_id": student_id or world.student.id,
        "course_id": world.course.id,
        "teacher_id": None,
        "source": "CDET",
        "expires_at": NOW + timedelta(hours=1),
        **claims,
    }
    return sign(LinkClaims(**values), SECRET)


class Bot:
    """One bot process: a PTB Application over the engine, fed updates by the test."""

    def __init__(self, app: TelegramApp, fake: FakeTelegram) -> None:
        self.app = app
        self.fake = fake

    async def deliver(self, update: dict[str, Any]) -> None:
        await self.app.process_update(Update.de_json(update, self.app.bot))

    async def say(self, user: FakeUser, text: str) -> None:
        await self.deliver(user.send_text(text))

    async def press(self, user: FakeUser, label: str) -> None:
        await self.deliver(user.press(label))


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def start_bot(fake: FakeTelegram, db: Factory) -> Bot:
    app = build_application(
        settings_for(fake), telegram_settings_for(fake), db, webhook=True, clock=lambda: NOW
    )
    await app.initialize()
    return Bot(app, fake)


@pytest.fixture
async def bot(fake: FakeTelegram, pg: Factory) -> AsyncIterator[Bot]:
    running = await start_bot(fake, pg)
    yield running
    await running.app.shutdown()


def texts(fake: FakeTelegram, chat: int) -> str:
    return "\n".join(message.text or "" for message in fake.messages(chat) if not message.deleted)


def wizard(fake: FakeTelegram, chat: int) -> str:
    """The live wizard message: the newest text message that still has buttons or text."""
    live = [msg for msg in fake.messages(chat) if not msg.deleted and msg.kind == "text"]
    return live[-1].text or ""


async def sessions(db: Factory) -> list[Session]:
    async with db() as session:
        return list((await session.scalars(select(Session).order_by(Session.id))).all())


async def book_to_confirm(bot: Bot, sam: FakeUser, world: World) -> None:
    await bot.say(sam, f"/start {payload(world)}")
    await bot.press(sam, "Book with Ada Lovelace")
    await bot.press(sam, "27")
    await bot.press(sam, "10:00 AM")


# --- booking end to end ------------------------------------------------------------------------
async def test_a_student_books_end_to_end_from_a_course_page_deep_link(
    bot: Bot, fake: FakeTelegram, pg: Factory, tmp_path: Path
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        await Repo(session).link_identity(
            "telegram", str(ADA_TG), world.teachers[0].id, str(ADA_TG)
        )
    sam = fake.user(SAM_TG, "Sam")
    fake.user(ADA_TG, "Ada")
    await register_commands(bot.app)
    assert [c["command"] for c in fake.commands()] == [
        "book",
        "mysessions",
        "cancel",
        "unlink",
        "notify",
        "help",
    ]

    await bot.say(sam, f"/start {payload(world)}")
    assert "Step 1 of 4 · Choose a Student-Teacher" in wizard(fake, SAM_TG)
    cards = [
        msg for msg in fake.messages(SAM_TG) if msg.buttons()[:1] == [["Book with Ada Lovelace"]]
    ]
    assert cards and "Next free: Wednesday, November 25, 2026, 10:00" in (cards[0].text or "")

    await bot.press(sam, "Book with Ada Lovelace")
    assert all(card.deleted for card in cards)  # the cards go once an ST is chosen
    calendar = fake.last_message(SAM_TG)
    assert "Step 2 of 4 · Pick a date" in (calendar.text or "")
    labels = [label for row in calendar.buttons() for label in row]
    assert {"‹ Back", "Today", "Tomorrow", "Next available", "November 2026", "›"} <= set(labels)

    await bot.press(sam, "27")
    assert fake.last_message(SAM_TG) is calendar  # edited in place, not a new message
    assert "Times shown in UTC (UTC)" in (calendar.text or "")
    await bot.press(sam, "10:00 AM")
    assert "Step 4 of 4 · Confirm your booking" in (calendar.text or "")
    await bot.press(sam, "Add a note")
    await bot.say(sam, "Chapter 3 integrals, please")
    confirm = fake.last_message(SAM_TG)
    assert "Note to Ada Lovelace: Chapter 3 integrals, please" in (confirm.text or "")
    await bot.press(sam, "Book Session")

    done = fake.last_message(SAM_TG)
    assert done.kind == "document" and done.document["file_name"].endswith(".ics")
    assert b"METHOD:REQUEST" in done.file.content
    # The chat's invite carries Sam's own /join link, as the e-mailed one does.
    (event,) = icalendar.Calendar.from_ical(done.file.content).walk("VEVENT")
    assert str(event["URL"]) == str(event["LOCATION"])
    base, token = str(event["LOCATION"]).split("/join/")
    assert base == Settings().public_base_url
    claims = verify_join(token, SECRET, NOW)
    assert claims.user_id == world.student.id
    success = wizard(fake, SAM_TG)
    assert "Session Booked!" in success and "When: Friday, November 27, 2026, 10:00" in success
    assert any(
        msg.history and "Booking your session" in (msg.history[-1].text or "")
        for msg in fake.messages(SAM_TG)
    )
    answers = [c.params.get("text") for c in fake.calls_to("answerCallbackQuery")]
    assert m.BOOKING_LOADING in answers
    assert fake.unanswered_callback_queries() == []
    rows = next(msg for msg in fake.messages(SAM_TG) if "Session Booked!" in (msg.text or ""))
    urls = {b["text"]: b.get("url") for row in rows.reply_markup["inline_keyboard"] for b in row}
    assert urls["📅 Google Calendar"].startswith("https://calendar.google.com/")
    assert urls["📅 Outlook"].startswith("https://outlook.live.com/")
    assert urls["Back to Dashboard"] == "https://tutoring.example.edu/dashboard"
    assert "Book Another Session" in urls

    (booked,) = await sessions(pg)
    assert (booked.created_via, booked.note) == ("telegram", "Chapter 3 integrals, please")
    from bots.worker import build_worker  # the ST's notice goes through the outbox

    settings = settings_for(fake)
    await build_worker(
        settings, pg, platforms_of(bot.app, fake), lambda: NOW, email=eml(tmp_path, settings)
    ).run_once()
    ada = fake.last_message(ADA_TG).text or ""
    assert "New booking: Sam Student booked Calculus I with you" in ada
    assert "Note from Sam Student: Chapter 3 integrals, please" in ada
    async with pg() as session:
        views = await Repo(session).events("page_view")
        assert [e.data for e in views] == [{"course_id": world.course.id, "st_preselected": False}]

    TRANSCRIPT.parent.mkdir(exist_ok=True)
    TRANSCRIPT.write_text(
        "# A booking in Telegram, as the fake Bot API server recorded it\n\n"
        "Generated by `tests/test_telegram.py::"
        "test_a_student_books_end_to_end_from_a_course_page_deep_link` "
        "(the real python-telegram-bot client against `tests/fake_telegram.py`).\n\n"
        f"```\n{fake.transcript()}\n```\n"
    )


async def test_a_deep_link_with_a_preselected_st_skips_step_one(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world, teacher_id=world.teachers[1].id, source='STPR')}")
    assert "Step 2 of 4 · Pick a date" in wizard(fake, SAM_TG)
    assert any("Bob Brown" in (msg.text or "") for msg in fake.messages(SAM_TG))
    await bot.press(sam, "Tomorrow")
    await bot.press(sam, "9:00 AM")
    await bot.press(sam, "Book Session")
    assert "Session Booked!" in wizard(fake, SAM_TG)
    (booked,) = await sessions(pg)
    assert booked.teacher_id == world.teachers[1].id
    async with pg() as session:
        views = await Repo(session).events("page_view")
        assert [e.data for e in views] == [{"course_id": world.course.id, "st_preselected": True}]


# --- the spec's errors ------------------------------------------------------------------------
async def test_a_student_not_enrolled_gets_the_enroll_now_link(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world, course_id=world.other_course.id)}")
    message = fake.last_message(SAM_TG)
    assert "You must be enrolled to book." in (message.text or "")
    enroll_now = message.reply_markup["inline_keyboard"][0][0]
    assert enroll_now == {
        "text": "Enroll now",
        "url": "https://tutoring.example.edu/courses/organic-chemistry",
    }


async def test_no_student_teachers_available_says_try_later(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        await session.execute(update(StudentTeacher).values(is_active=False))
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    assert "No Student-Teachers available. Try later." in wizard(fake, SAM_TG)
    assert sam.buttons()[0] == ["Schedule Later"]


async def test_a_slot_taken_meanwhile_shows_the_days_remaining_slots(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG, "Sam")
    rival = fake.user(RIVAL_TG, "Rita")
    async with pg() as session, session.begin():
        rita = await add_user(session, "Rita Rival")
        await enroll(session, rita, world.course)
    await book_to_confirm(bot, sam, world)
    await bot.say(rival, f"/start {payload(world, student_id=rita.id)}")
    await bot.press(rival, "Book with Ada Lovelace")
    await bot.press(rival, "27")
    await bot.press(rival, "10:00 AM")
    await bot.press(rival, "Book Session")
    await bot.press(sam, "Book Session")
    text = wizard(fake, SAM_TG)
    assert "This time is no longer available. Select another." in text
    labels = [plain(label) for row in sam.buttons() for label in row]
    assert "10:00 AM" not in labels and "11:30 AM" in labels


async def test_another_session_at_that_time_is_a_booking_conflict(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await book_to_confirm(bot, sam, world)  # Ada, Friday 10:00
    async with pg() as session, session.begin():  # meanwhile, on the web, with Bob at 10:30
        start = NOW.replace(day=27, hour=10, minute=30)
        await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[1].id,
                start,
                start + timedelta(hours=1),
                False,
                None,
                "web",
            ),
            reminder_offsets=[],
            now=NOW,
        )
    await bot.press(sam, "Book Session")
    assert "You have another session at this time." in wizard(fake, SAM_TG)


async def test_a_failed_booking_says_unable_to_book_and_can_be_retried(
    bot: Bot, fake: FakeTelegram, pg: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await book_to_confirm(bot, sam, world)

    async def broken(session: object, params: object) -> None:
        raise OSError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(tx, "lock_people", broken)
        await bot.press(sam, "Book Session")
    assert "Unable to book. Please try again." in wizard(fake, SAM_TG)
    await bot.press(sam, "Book Session")
    assert "Session Booked!" in wizard(fake, SAM_TG)


async def test_two_bot_processes_racing_two_students_for_one_slot_book_it_once(
    fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        rita = await add_user(session, "Rita Rival")
        await enroll(session, rita, world.course)
    first, second = await start_bot(fake, pg), await start_bot(fake, pg)
    try:
        sam, rival = fake.user(SAM_TG, "Sam"), fake.user(RIVAL_TG, "Rita")
        await book_to_confirm(first, sam, world)
        await second.say(rival, f"/start {payload(world, student_id=rita.id)}")
        for label in ("Book with Ada Lovelace", "27", "10:00 AM"):
            await second.press(rival, label)
        await asyncio.gather(first.press(sam, "Book Session"), second.press(rival, "Book Session"))
    finally:
        await first.app.shutdown()
        await second.app.shutdown()
    outcomes = sorted(
        "booked" if "Session Booked!" in wizard(fake, chat) else "taken"
        for chat in (SAM_TG, RIVAL_TG)
    )
    assert outcomes == ["booked", "taken"]
    assert len(await sessions(pg)) == 1
    loser = SAM_TG if "Session Booked!" not in wizard(fake, SAM_TG) else RIVAL_TG
    assert "This time is no longer available. Select another." in wizard(fake, loser)


# --- bad input and delivery ------------------------------------------------------------------
async def test_a_replayed_update_is_a_no_op(bot: Bot, fake: FakeTelegram, pg: Factory) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    press = sam.press("Schedule Later")
    await bot.deliver(press)
    calls = len(fake.calls)
    await bot.deliver(press)
    assert len(await sessions(pg)) == 1
    new_calls = [c.method for c in fake.calls[calls:]]
    assert new_calls == []  # answered and drawn the first time; nothing happens again


@pytest.mark.parametrize("data", ["forged", "1|k", "0|s|99999999999", "x" * 64, "é" * 40])
async def test_forged_or_oversized_button_data_says_expired_and_keeps_the_screen(
    bot: Bot, fake: FakeTelegram, pg: Factory, data: str
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await book_to_confirm(bot, sam, world)
    before = wizard(fake, SAM_TG)
    calls = len(fake.calls)
    await bot.deliver(sam.press_data(data))
    # One toast and nothing else: no message is edited, deleted or sent again.
    (answer,) = fake.calls[calls:]
    assert answer.method == "answerCallbackQuery" and answer.params.get("text") == m.EXPIRED
    assert wizard(fake, SAM_TG) == before
    assert await sessions(pg) == []


async def test_a_button_on_an_old_message_has_expired_and_loses_its_keyboard(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    old = fake.last_message(SAM_TG)
    stale_data = next(
        button["callback_data"]
        for row in old.reply_markup["inline_keyboard"]
        for button in row
        if button["text"] == "Schedule Later"
    )
    await bot.say(sam, "/book")  # a fresh wizard message below; the old one loses its keyboard
    old = old.message_id
    await bot.deliver(sam.press_data(stale_data, message_id=old))
    assert m.EXPIRED in [c.params.get("text") for c in fake.calls_to("answerCallbackQuery")]
    (stale,) = [msg for msg in fake.messages(SAM_TG) if msg.message_id == old]
    assert not stale.buttons()  # its keyboard is gone
    assert await sessions(pg) == []


async def test_typed_dates_and_free_text_get_clear_replies(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world, teacher_id=world.teachers[0].id)}")
    await bot.say(sam, "someday maybe")
    assert "couldn't read “someday maybe” as a date" in wizard(fake, SAM_TG)
    await bot.say(sam, "next friday")
    assert "Pick a time on Friday, November 27" in wizard(fake, SAM_TG)
    await bot.press(sam, "10:00 AM")
    await bot.say(sam, "yes")
    assert "Please choose one of the options below." in wizard(fake, SAM_TG)
    await bot.press(sam, "Add a note")
    await bot.say(sam, "x" * 501)
    assert "limited to 500 characters; yours has 501" in wizard(fake, SAM_TG)


@pytest.mark.parametrize(
    ("link", "reply"),
    [("tampered", m.LINK_INVALID), ("expired", m.LINK_EXPIRED), ("garbage!", m.LINK_INVALID)],
)
async def test_a_tampered_or_expired_link_gets_a_clear_reply(
    bot: Bot, fake: FakeTelegram, pg: Factory, link: str, reply: str
) -> None:
    world = await make_world(pg)
    good = payload(world)
    given = {
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "expired": payload(world, expires_at=NOW - timedelta(minutes=1)),
        "garbage!": "garbage!",
    }[link]
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {given}")
    assert fake.last_message(SAM_TG).text == reply
    async with pg() as session:
        assert (await session.scalars(select(ChatIdentity))).all() == []


async def test_commands_for_linked_and_unlinked_people(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, "/start")
    assert fake.last_message(SAM_TG).text == m.NOT_LINKED
    await bot.say(sam, "/book")
    assert fake.last_message(SAM_TG).text == m.NOT_LINKED
    await bot.say(sam, f"/start {payload(world)}")
    await bot.press(sam, "Schedule Later")
    await bot.say(sam, "/mysessions")
    assert "Calculus I: not scheduled yet" in (fake.last_message(SAM_TG).text or "")
    await bot.say(sam, "/book")
    assert "Which course would you like to book a session for?" in wizard(fake, SAM_TG)
    await bot.say(sam, "/cancel")
    assert "Booking cancelled" in wizard(fake, SAM_TG)
    await bot.say(sam, "/help")
    assert "/mysessions" in (fake.last_message(SAM_TG).text or "")
    await bot.say(sam, "/unknown")
    assert fake.last_message(SAM_TG).text == m.HELP


async def test_the_webhook_refuses_requests_without_the_secret(
    bot: Bot, fake: FakeTelegram, pg: Factory, unused_tcp_port: int
) -> None:
    world = await make_world(pg)
    runner = web.AppRunner(webhook_app(bot.app, WEBHOOK_SECRET))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    url = f"http://127.0.0.1:{unused_tcp_port}{WEBHOOK_PATH}"
    sam = fake.user(SAM_TG)
    try:
        await bot.app.start()
        update = sam.send_text(f"/start {payload(world)}")
        assert await fake.deliver_webhook(url, update) == 403
        assert await fake.deliver_webhook(url, update, secret="wrong") == 403
        assert fake.calls_to("sendMessage") == []
        assert await fake.deliver_webhook(url, update, secret=WEBHOOK_SECRET) == 200
        await fake.wait_until(lambda: "Step 1 of 4" in texts(fake, SAM_TG))
        async with aiohttp.ClientSession() as client:
            async with client.post(url, data=b"{", headers={SECRET_HEADER: WEBHOOK_SECRET}) as r:
                assert r.status == 400
            async with client.get(f"http://127.0.0.1:{unused_tcp_port}/healthz") as r:
                assert r.status == 200
    finally:
        await bot.app.stop()
        await runner.cleanup()


async def test_polling_serves_a_chat_like_the_webhook(fake: FakeTelegram, pg: Factory) -> None:
    world = await make_world(pg)
    app = build_application(
        settings_for(fake), telegram_settings_for(fake), pg, webhook=False, clock=lambda: NOW
    )
    sam = fake.user(SAM_TG)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        sam.send_text(f"/start {payload(world)}")
        await fake.wait_until(lambda: "Step 1 of 4" in texts(fake, SAM_TG))
        await app.updater.stop()
        await app.stop()


async def test_st_cards_show_the_avatar_as_a_photo_and_fall_back_to_text(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        for teacher in world.teachers:
            user = await session.get(type(teacher), teacher.id)
            assert user is not None
            user.avatar = f"https://tutoring.example.edu/avatars/{teacher.id}.jpg"
    fake.fail_next("sendPhoto", status=400, description="Bad Request: wrong file identifier")
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    photos = [msg for msg in fake.messages(SAM_TG) if msg.kind == "photo"]
    assert len(photos) == 1  # Bob's photo arrived; Ada's could not be fetched
    assert "Bob Brown" in (photos[0].caption or "")
    assert photos[0].buttons() == [["Book with Bob Brown"]]
    sent = fake.calls_to("sendPhoto")[-1]
    assert sent.params["photo"].endswith(f"/avatars/{world.teachers[1].id}.jpg")
    ada_card = [
        msg for msg in fake.messages(SAM_TG) if msg.buttons() == [["Book with Ada Lovelace"]]
    ]
    assert ada_card and ada_card[0].kind == "text"  # the same card, as text
    await bot.press(sam, "Book with Bob Brown")
    assert photos[0].deleted


async def test_mysessions_buttons_join_reschedule_and_cancel(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await book_to_confirm(bot, sam, world)
    await bot.press(sam, "Book Session")
    await bot.say(sam, "/mysessions")
    assert sam.buttons() == [["Join", "Reschedule", "Cancel session"]]

    await bot.press(sam, "Join")  # two days early
    answer = fake.calls_to("answerCallbackQuery")[-1].params
    assert answer["show_alert"] is True and "video room opens 10 minutes before" in answer["text"]

    await bot.press(sam, "Reschedule")
    assert "Step 2 of 4 · Pick a date" in wizard(fake, SAM_TG)
    assert "Student-Teacher: Ada Lovelace" in wizard(fake, SAM_TG)
    await bot.press(sam, "27")
    await bot.press(sam, "2:00 PM")
    await bot.press(sam, "Book Session")
    assert "Your previous time is released." in wizard(fake, SAM_TG)
    old, new = await sessions(pg)
    assert (old.status, new.status) == ("cancelled", "scheduled")
    assert new.teacher_id == old.teacher_id and new.scheduled_start.hour == 14

    await bot.say(sam, "/mysessions")
    await bot.press(sam, "Cancel session")
    question = fake.last_message(SAM_TG)
    assert "Cancel your Calculus I session with Ada Lovelace" in (question.text or "")
    await bot.press(sam, "Yes, cancel it")
    assert "is cancelled. Ada Lovelace has been told." in (question.text or "")
    assert [s.status for s in await sessions(pg)] == ["cancelled", "cancelled"]
    await bot.deliver(sam.press_data(f"S:y:{new.id}"))  # again, from a stale button
    assert fake.calls_to("answerCallbackQuery")[-1].params.get("text") == m.EXPIRED


async def test_a_forwarded_link_cannot_sign_in_another_telegram_account(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    link = payload(world)
    sam, eve = fake.user(SAM_TG, "Sam"), fake.user(RIVAL_TG, "Eve")
    await bot.say(sam, f"/start {link}")
    await bot.say(sam, f"/start {link}")  # Sam may open his own link again
    assert "Step 1 of 4" in wizard(fake, SAM_TG)
    await bot.say(eve, f"/start {link}")
    assert fake.last_message(RIVAL_TG).text == m.LINK_USED
    async with pg() as session:
        linked = (await session.scalars(select(ChatIdentity.external_id))).all()
    assert linked == [str(SAM_TG)]


async def test_the_bot_refuses_to_start_with_the_development_secrets(pg: Factory) -> None:
    from bots.server import startup_problems
    from engine.settings import insecure_defaults

    telegram = TelegramSettings(token="123:not-used", webhook_secret="change-me-webhook-secret")
    app = build_application(Settings(), telegram, pg, webhook=True)
    assert await startup_problems(Settings(), [telegram_platform(app, telegram)]) == [
        "LINK_SECRET",
        "TELEGRAM_WEBHOOK_SECRET",
    ]
    strong = "k" * 32
    assert insecure_defaults(Settings(link_secret=strong)) == []


def test_the_bot_refuses_a_link_secret_shorter_than_32_bytes() -> None:
    from engine.settings import insecure_defaults

    assert insecure_defaults(Settings(link_secret="s3cret")) == ["LINK_SECRET"]
    assert insecure_defaults(Settings(link_secret="k" * 31)) == ["LINK_SECRET"]
    # Bytes, not characters: 11 three-byte characters are 33 bytes.
    assert insecure_defaults(Settings(link_secret="€" * 11)) == []


def test_the_production_commands_refuse_a_short_link_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bots.cli import main
    from engine.settings import get_settings

    monkeypatch.setenv("LINK_SECRET", "short-secret")
    monkeypatch.setenv("TELEGRAM_TOKEN", "123:not-used")
    get_settings.cache_clear()
    try:
        for command in (["telegram", "--polling"], ["serve"]):
            with pytest.raises(SystemExit, match="at least 32 bytes"):
                main(command)
    finally:
        get_settings.cache_clear()
