"""Reads sized to the screen, not to the campus: the statements an event runs do not grow with
the number of STs (or their sessions). Counted with SQLAlchemy's before_cursor_execute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.booking import BookingRequest, book_session
from engine.chat import flow
from storage.uow import UnitOfWork
from tests.chat import Chat
from tests.factories import NOW, add_teacher, add_user, enroll, make_world

Factory = async_sessionmaker[AsyncSession]
NAMES = [f"Teacher {i:02d}" for i in range(40)]


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _campus(db: Factory, sts: int) -> tuple[Chat, int]:
    """A course with `sts` STs, each with a few sessions of other students."""
    world = await make_world(db, teachers=1)
    async with db() as session, session.begin():
        others = [world.teachers[0]]
        for name in NAMES[: sts - 1]:
            others.append(await add_teacher(session, world.course, name))
        student = await add_user(session, "Busy Bee", "UTC", "en")
        await enroll(session, student, world.course)
    for i, teacher in enumerate(others):
        async with db() as session, session.begin():
            start = NOW.replace(hour=9) + timedelta(days=2 + i % 5)
            await book_session(
                UnitOfWork.over(session),
                BookingRequest(
                    world.course.id,
                    student.id,
                    teacher.id,
                    start + timedelta(hours=i % 3),
                    start + timedelta(hours=i % 3, minutes=60),
                    True,
                    None,
                    "test",
                ),
                reminder_offsets=[],
                now=NOW,
            )
    return Chat(db, world.student.id), world.course.id


Step = Callable[[Chat, int], Awaitable[object]]


async def _per_event(db: Factory, sts: int) -> dict[str, int]:
    chat, course_id = await _campus(db, sts)
    engine = db.kw["bind"]
    steps: list[tuple[str, Step]] = [
        ("start", lambda c, course: c.start(course_id=course)),
        ("pick ST", lambda c, _: c.press("Book with Ada Lovelace")),
        ("next month", lambda c, _: c.press("›")),
        ("previous month", lambda c, _: c.press("‹")),
        ("typed date", lambda c, _: c.type("next friday")),
        ("back", lambda c, _: c.press("‹ Back")),
        ("pick date", lambda c, _: c.press("27")),
        ("pick time", lambda c, _: c.press("2:00 PM")),
        ("reminders", lambda c, _: c.press("☑ Reminders")),
        ("book", lambda c, _: c.press("Book Session")),
        ("my sessions", lambda c, _: c.send(flow.MySessions())),
        ("book another", lambda c, _: c.press("Book Another Session")),
        ("schedule later", lambda c, _: c.press("Schedule Later")),
    ]
    counts: dict[str, int] = {}
    for name, step in steps:
        with counting(engine) as statements:
            await step(chat, course_id)
        counts[name] = len(statements)
    return counts


async def test_statements_per_event_do_not_grow_with_the_number_of_sts(pg: Factory) -> None:
    few = await _per_event(pg, 2)
    from tests.conftest import _truncate

    await _truncate(pg.kw["bind"])
    many = await _per_event(pg, 20)
    assert many == few, {k: (few[k], many[k]) for k in few if few[k] != many[k]}
    # And small in absolute terms: the first screen (which also creates the chat's row) was 88
    # statements with a few STs before reads were set-based. Each event also notes that its chat
    # account was just used (one UPDATE: where notices go until /notify is set).
    assert few["start"] <= 19, few
    assert max(few.values()) <= 31, few
