"""Rules of the chat that every front end gets from the engine, on PostgreSQL and SQLite:
what /cancel means, that final screens stay, Schedule Later reusing the saved session, notes
that can always be stored, the analytics order, and what an ST opening a student link sees."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import flow
from engine.chat import messages as m
from engine.chat.dates import ParsedDate, example_day, parse_day
from engine.chat.formatting import timezone_note
from engine.chat.text import clean_text
from storage.models import AnalyticsEvent, Session
from tests.chat import Chat
from tests.factories import NOW, make_world
from tests.test_flow import to_confirm

Factory = async_sessionmaker[AsyncSession]


async def _sessions(db: Factory) -> list[Session]:
    async with db() as session:
        return list((await session.scalars(select(Session).order_by(Session.id))).all())


async def test_cancel_with_no_wizard_open_says_there_is_nothing_to_cancel(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    answer = await chat.send(flow.Cancel())
    assert answer is not None and answer.unchanged
    assert answer.notice == m.NOTHING_TO_CANCEL and "/mysessions" in m.NOTHING_TO_CANCEL


async def test_cancel_after_booking_leaves_the_session_booked(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    success = await chat.press("Book Session")
    answer = await chat.send(flow.Cancel())
    assert answer is not None and answer.unchanged and answer.notice == m.NOTHING_TO_CANCEL
    assert [s.status for s in await _sessions(db)] == ["scheduled"]
    # The success screen is still the one on screen, and its buttons still work.
    assert chat.screen is success and success.final
    again = await chat.press("Book Another Session")
    assert again.step == "choose_st"


async def test_text_after_a_final_screen_is_answered_without_redrawing_it(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("Book Session")
    answer = await chat.type("thank you")
    assert answer.unchanged and answer.notice == m.AFTER_FINAL


async def test_schedule_later_twice_reuses_the_saved_session_and_counts_once(db: Factory) -> None:
    world = await make_world(db, session_count=8)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    first = await chat.press("Schedule Later")
    assert first.step == "scheduled_later" and first.notice is None
    for _ in range(9):  # more presses than the course has sessions
        await chat.press("Schedule now")
        again = await chat.press("Schedule Later")
        assert again.step == "scheduled_later"
        assert again.notice == m.ALREADY_SAVED.format(course="Calculus I")
    saved = await _sessions(db)
    assert [s.status for s in saved] == ["unscheduled"]
    # Seven sessions are still free to book besides the saved one.
    await chat.press("Schedule now")
    assert chat.screen.step == "choose_st"


async def test_an_st_opening_a_link_for_their_own_course_is_told_they_teach_it(
    db: Factory,
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.teachers[0].id)
    screen = await chat.start(course_id=world.course.id)
    assert screen.step == "idle" and screen.title == m.YOU_TEACH.format(course="Calculus I")
    assert m.NOT_ENROLLED not in screen.text


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Chapter\x003 integrals", "Chapter3 integrals"),  # PostgreSQL refuses NUL
        ("bad bytes \udcff\udcfe here", "bad bytes \ufffd\ufffd here"),  # SQLite cannot encode
        ("bell\x07 and escape\x1b[31m", "bell and escape[31m"),
        ("line one\r\nline two\ttab", "line one\nline two\ttab"),
    ],
)
async def test_a_note_that_was_accepted_can_always_be_booked(
    db: Factory, typed: str, stored: str
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("Add a note")
    saved = await chat.type(typed)
    assert saved.notice == m.NOTE_SAVED
    booked = await chat.press("Book Session")
    assert booked.step == "success", booked.notice
    (session,) = await _sessions(db)
    assert session.note == stored


async def test_booking_attempted_is_stored_before_booking_success(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("Book Session")
    async with db() as session:
        names = (
            await session.scalars(
                select(AnalyticsEvent.name)
                .where(AnalyticsEvent.name.in_(("booking_attempted", "booking_success")))
                .order_by(AnalyticsEvent.id)
            )
        ).all()
    assert list(names) == ["booking_attempted", "booking_success"]


@given(st.text())
def test_clean_text_leaves_nothing_a_database_or_chat_refuses(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # no lone surrogates
    assert "\x00" not in cleaned and "\r" not in cleaned
    assert all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) < 0xA0) for ch in cleaned)
    assert clean_text(cleaned) == cleaned


def test_the_time_zone_note_names_both_offsets_on_a_day_the_clocks_change() -> None:
    spring = timezone_note("Europe/London", date(2027, 3, 28), "en_GB")
    assert spring == "Times shown in Europe/London (GMT, then BST from 02:00)"
    autumn = timezone_note("Europe/London", date(2026, 10, 25), "en_GB")
    assert autumn == "Times shown in Europe/London (BST, then GMT from 01:00)"
    assert timezone_note("Europe/London", date(2027, 3, 29), "en_GB").endswith("(BST)")
    assert timezone_note("Europe/London", date(2027, 3, 27), "en_GB").endswith("(GMT)")
    # Lord Howe moves by 30 minutes.
    assert ", then" in timezone_note("Australia/Lord_Howe", date(2027, 4, 4), "en_AU")


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31)))
def test_the_date_hint_always_names_a_day_ahead_that_parses(today: date) -> None:
    from datetime import UTC, datetime, time

    hint = example_day(today)
    now = datetime.combine(today, time(12, 0), tzinfo=UTC)
    parsed = parse_day(hint, now=now, timezone="UTC", locale="en")
    assert parsed == ParsedDate(today + timedelta(days=7))


async def test_the_unreadable_date_hint_in_december_suggests_a_future_day(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id, now=NOW.replace(month=12, day=2))
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    answer = await chat.type("someday")
    assert answer.notice is not None and "9 Dec" in answer.notice and "Nov" not in answer.notice
