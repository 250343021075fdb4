"""/away: time off becomes overrides at once; sessions inside it are cancelled only when the ST
says so, and their students are told with a button to book another time. Through
ConversationService on PostgreSQL and SQLite, and through the Slack app."""

from __future__ import annotations

from datetime import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import flow
from engine.chat import messages as m
from engine.chat.screens import Screen
from storage.models import AvailabilityOverride, ReminderJob
from tests.chat import Chat
from tests.factories import make_world
from tests.test_session_dialogues import _book, _statuses

Factory = async_sessionmaker[AsyncSession]


async def _overrides(db: Factory) -> list[tuple[str, time | None, time | None]]:
    async with db() as session:
        rows = await session.execute(
            select(
                AvailabilityOverride.date,
                AvailabilityOverride.start_time,
                AvailabilityOverride.end_time,
            ).order_by(AvailabilityOverride.date)
        )
        return [(d.isoformat(), s, e) for d, s, e in rows]


async def _away(chat: Chat, text: str) -> Screen:
    screen = await chat.send(flow.Away(text))
    assert screen is not None
    return screen


async def test_a_free_day_off_is_marked_at_once(db: Factory) -> None:
    world = await make_world(db)
    ada = Chat(db, world.teachers[0].id)
    done = await _away(ada, "2 Dec")
    assert done.title == m.AWAY_DONE.format(days="Wednesday, December 2")
    assert await _overrides(db) == [("2026-12-02", None, None)]


async def test_a_range_and_special_hours(db: Factory) -> None:
    world = await make_world(db)
    ada = Chat(db, world.teachers[0].id)
    await _away(ada, "1 Dec to 3 Dec")
    hours = await _away(ada, "2 Dec 10:00-12:00")
    assert hours.title.startswith("Special hours on Wednesday, December 2")
    assert await _overrides(db) == [
        ("2026-12-01", None, None),
        ("2026-12-02", time(10, 0), time(12, 0)),
        ("2026-12-03", None, None),
    ]


async def test_only_student_teachers_set_time_off(db: Factory) -> None:
    world = await make_world(db)
    answer = await _away(Chat(db, world.student.id), "2 Dec")
    assert answer.title == m.AWAY_NOT_ST
    assert await _overrides(db) == []


async def test_bad_input_gets_the_usage_and_changes_nothing(db: Factory) -> None:
    world = await make_world(db)
    ada = Chat(db, world.teachers[0].id)
    for text in ("", "someday", "2 Dec 12:00-10:00", "1 Dec to 30 Mar"):
        answer = await _away(ada, text)
        assert answer.title in (m.AWAY_USAGE, m.AWAY_TOO_LONG.format(days=60)), text
    assert await _overrides(db) == []


async def test_booked_sessions_in_new_time_off_are_cancelled_only_when_the_st_says_so(
    db: Factory,
) -> None:
    world = await make_world(db)
    await _book(db, world)  # Friday 27 November, 10:00
    ada = Chat(db, world.teachers[0].id)
    question = await _away(ada, "27 Nov")
    assert question.title.startswith("Marked off: Friday, November 27. These sessions")
    assert "Calculus I with Sam Student" in question.lines[0]
    assert await _statuses(db) == ["scheduled"]  # nothing cancelled silently
    keep = question.buttons[0][1]
    kept = await ada.send(flow.Press(question.data(keep)))
    assert kept is not None and kept.title == m.AWAY_KEPT
    assert await _statuses(db) == ["scheduled"]
    cancel = question.buttons[0][0]
    done = await ada.send(flow.Press(question.data(cancel)))
    assert done is not None and done.title == m.AWAY_CANCELLED.format(count=1)
    assert await _statuses(db) == ["cancelled"]
    async with db() as session:
        kinds = set(await session.scalars(select(ReminderJob.kind)))
    assert f"cancelled:chat:{world.student.id}" in kinds  # the student is told
    # Someone else pressing the same answer cancels nothing of theirs.
    other = Chat(db, world.teachers[1].id, chat_id="chat-2")
    again = await other.send(flow.Press(question.data(cancel)))
    assert again is not None and again.title == m.AWAY_CANCELLED.format(count=0)
