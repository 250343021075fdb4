"""PostgreSQL stopped and started again while students press buttons, under `bookbot serve`.

Several students book through the Telegram webhook of the app `serve` runs (the outbox worker
included), against the fake Bot API. The database goes away in the middle: once exactly while
one student's "Book Session" sits between its two transactions (the fake stops the server when
the bot draws that student's "booking..." screen), with the other students' presses in flight.
Each pressing student then sees "Unable to book. Please try again." or the screen they had,
never a trace; no booking is left without its outbox rows; `/healthz` says 503 until the
database is back; then every student finishes booking by pressing again.

The test starts its own embedded server, even when TEST_DATABASE_URL names a shared one: a
shared server is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import storage.booking_tx as tx
from bots.server import HEALTH_PATH, ServerSettings, serve
from bots.telegram.app import WEBHOOK_PATH, build_application
from bots.telegram.platform import telegram_platform
from engine.chat import messages as m
from engine.chat.flow import LOADING_GRACE
from engine.chat.slots import day_bounds_utc
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import ReminderJob, Session, User
from storage.throwaway_pg import ThrowawayServer, throwaway_server
from tests.channels import eml
from tests.factories import NOW, World, add_user, enroll, make_world
from tests.fake_telegram import Call, FakeTelegram, FakeUser
from tests.test_telegram import WEBHOOK_SECRET, payload, settings_for, telegram_settings_for

Factory = async_sessionmaker[AsyncSession]
STUDENTS = 8
FIRST_CHAT = 9100
REMINDER_OFFSETS = [timedelta(hours=24), timedelta(hours=1)]  # Settings' default
OUR_CODE = ("bots", "engine", "storage")


@pytest.fixture(scope="module")
def own_server() -> Iterator[ThrowawayServer]:
    with throwaway_server(prefix="bookbot-faults-db-") as server:
        yield server


@pytest.fixture(scope="module")
async def own_engine(own_server: ThrowawayServer) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(own_server.url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def own_db(own_server: ThrowawayServer, own_engine: AsyncEngine) -> Factory:
    """An empty database on the test's own server, which a failed test may have left stopped."""
    if not await _answers(own_engine):
        await asyncio.to_thread(own_server.start)
    async with own_engine.begin() as connection:
        tables = await connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        names = ", ".join(f'"{name}"' for name in tables if name != "alembic_version")
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return make_sessionmaker(own_engine)


async def _answers(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@dataclass
class Student:
    user: User
    teacher: User
    chat: FakeUser
    time: str  # the time button they press on step 3
    presses: set[str] = field(default_factory=set)  # callback query ids

    def press(self, label: str) -> dict[str, Any]:
        update = self.chat.press(label)
        self.presses.add(update["callback_query"]["id"])
        return update


class Campus:
    """`bookbot serve` with Telegram on a port, and what a test needs to press through it."""

    def __init__(self, fake: FakeTelegram, port: int) -> None:
        self.fake = fake
        self.port = port

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def deliver(self, update: dict[str, Any]) -> None:
        """POST like Telegram: a refused update would be re-delivered, so it must be 200."""
        assert await self.fake.deliver_webhook(self.webhook, update, WEBHOOK_SECRET) == 200

    async def step(self, student: Student, label: str, shows: str) -> None:
        """Press a button and wait until the wizard shows `shows`."""
        await self.deliver(student.press(label))
        await self.fake.wait_until(lambda: shows in wizard(self.fake, student), 15)

    async def health(self) -> int:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{self.port}{HEALTH_PATH}") as response,
        ):
            return response.status

    async def until_health(self, status: int) -> None:
        for _ in range(400):
            try:
                if await self.health() == status:
                    return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"/healthz never answered {status}")


def wizard(fake: FakeTelegram, student: Student) -> str:
    live = [msg for msg in fake.messages(student.chat.id) if not msg.deleted and msg.kind == "text"]
    return live[-1].text or "" if live else ""


def answers(fake: FakeTelegram, student: Student) -> list[str | None]:
    """What the bot answered this student's presses with (the toast), in order."""
    return [
        call.params.get("text")
        for call in fake.calls_to("answerCallbackQuery")
        if call.ok and call.params.get("callback_query_id") in student.presses
    ]


async def students_of(db: Factory, world: World, fake: FakeTelegram) -> list[Student]:
    """STUDENTS students, each with an ST chosen by the link; two share no ST and time."""
    async with db() as session, session.begin():
        users = [world.student]
        for n in range(1, STUDENTS):
            user = await add_user(session, f"Student Number{n}")
            await enroll(session, user, world.course)
            users.append(user)
    return [
        Student(
            user,
            world.teachers[n % len(world.teachers)],
            fake.user(FIRST_CHAT + n, f"S{n}"),
            ("10:00 AM", "2:00 PM")[n // len(world.teachers)],
        )
        for n, user in enumerate(users)
    ]


class Clock:
    """The bot's and the worker's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def campus(
    own_db: Factory, tmp_path: Path, unused_tcp_port: int, clock: Clock
) -> AsyncIterator[tuple[Campus, Factory]]:
    async with FakeTelegram() as fake:
        fake.flood = None  # eight chats at human speed; flood control is another test's subject
        telegram = telegram_settings_for(fake).model_copy(
            update={"webhook_url": f"https://bots.example.edu{WEBHOOK_PATH}"}
        )
        settings = settings_for(fake)
        app = build_application(settings, telegram, own_db, webhook=True, clock=clock)
        stop = asyncio.Event()
        running = asyncio.create_task(
            serve(
                settings,
                own_db,
                [telegram_platform(app, telegram)],
                eml(tmp_path, settings),
                ServerSettings(host="127.0.0.1", port=unused_tcp_port),
                stop,
                clock=clock,
            )
        )
        here = Campus(fake, unused_tcp_port)
        try:
            await here.until_health(200)
            yield here, own_db
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)


async def test_students_pressing_through_a_database_outage_get_try_again_then_book(
    campus: tuple[Campus, Factory],
    own_server: ThrowawayServer,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    here, db = campus
    fake = here.fake
    world = await make_world(db, teachers=4)
    students = await students_of(db, world, fake)

    async def to_confirm(student: Student) -> None:
        link = payload(world, student_id=student.user.id, teacher_id=student.teacher.id)
        await here.deliver(student.chat.send_text(f"/start {link}"))
        await fake.wait_until(lambda: "Step 2 of 4" in wizard(fake, student), 15)
        await here.step(student, "27", "Step 3 of 4")
        await here.step(student, student.time, "Step 4 of 4")

    caplog.set_level(logging.INFO)
    await asyncio.gather(*(to_confirm(student) for student in students))

    # The first "booking..." screen drawn stops the database: that student's booking comes
    # after its loading step committed; every other press is before, during or after the stop.
    stopped = asyncio.Event()

    async def stop_database(_: Call) -> None:
        await asyncio.to_thread(own_server.stop)
        stopped.set()

    fake.on_next("editMessageText", stop_database)
    presses = [student.press("Book Session") for student in students]
    await asyncio.gather(*(here.deliver(update) for update in presses))
    await asyncio.wait_for(stopped.wait(), 30)
    await fake.wait_until(lambda: all(_told_to_try_again(fake, s) for s in students), 30)
    await here.until_health(503)

    # While the database is away, a press is answered "try again" and changes nothing.
    late = students[1]
    screen = wizard(fake, late)
    await here.deliver(late.press("Book Session"))
    await fake.wait_until(lambda: not fake.unanswered_callback_queries(), 30)
    assert answers(fake, late)[-1] == m.BOOKING_FAILED
    assert wizard(fake, late) == screen
    assert await here.health() == 503

    await asyncio.to_thread(own_server.start)
    await here.until_health(200)
    # The student whose booking was cut between its two steps: a press within LOADING_GRACE
    # is taken for a second click while the first books; after it, the wizard recovers.
    clock.now += LOADING_GRACE

    async def finish(student: Student) -> None:
        for _ in range(3):
            if "Session Booked!" in wizard(fake, student):
                return
            before = wizard(fake, student)
            await here.deliver(student.press("Book Session"))
            await fake.wait_until(partial(_settled, fake, student, before), 15)
        raise AssertionError(f"{student.user.name} could not book:\n{fake.transcript()}")

    await asyncio.gather(*(finish(student) for student in students))

    await _every_booking_has_its_outbox_rows(db, students)
    _no_trace_anywhere(fake, caplog)


def _settled(fake: FakeTelegram, student: Student, before: str) -> bool:
    """The press was answered and its screen drawn: a new one, not the "booking..." one."""
    shown = wizard(fake, student)
    return (
        not fake.unanswered_callback_queries()
        and shown != before
        and m.BOOKING_LOADING not in shown
    )


def _can_book(fake: FakeTelegram, student: Student) -> bool:
    live = [msg for msg in fake.messages(student.chat.id) if not msg.deleted]
    return bool(live) and any("Book Session" in row for row in live[-1].buttons())


def _told_to_try_again(fake: FakeTelegram, student: Student) -> bool:
    """The press was answered "Unable to book", or (its answer spent on the "booking..."
    screen) the screen came back saying so; either way "Book Session" is there to press."""
    said = answers(fake, student)[-1:] == [m.BOOKING_FAILED] or wizard(fake, student).startswith(
        f"⚠️ {m.BOOKING_FAILED}"
    )
    return said and _can_book(fake, student) and not fake.unanswered_callback_queries()


async def _every_booking_has_its_outbox_rows(db: Factory, students: list[Student]) -> None:
    """One session per student, each with exactly the rows its booking transaction writes."""
    async with db() as session:
        sessions = list((await session.scalars(select(Session))).all())
        jobs = list((await session.scalars(select(ReminderJob))).all())
    assert sorted(s.student_id for s in sessions) == sorted(s.user.id for s in students)
    for booked in sessions:
        assert booked.scheduled_start is not None and booked.scheduled_end is not None
        assert booked.teacher_id is not None
        request = tx.BookingRequest(
            booked.course_id,
            booked.student_id,
            booked.teacher_id,
            booked.scheduled_start,
            booked.scheduled_end,
            booked.reminders,
            booked.note,
            booked.created_via,
        )
        row = tx.BookingRow(request, day_bounds_utc, REMINDER_OFFSETS, NOW)
        written = sorted(job.kind for job in jobs if job.session_id == booked.id)
        assert written == sorted(kind for kind, _ in tx._jobs(row))
    assert {job.session_id for job in jobs} <= {s.id for s in sessions}


def _no_trace_anywhere(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    """No trace logged by our code at ERROR, and none ever sent to a person."""
    traces = [
        record
        for record in caplog.records
        if record.name.split(".")[0] in OUR_CODE
        and record.levelno >= logging.ERROR
        and (
            record.exc_info or "Traceback" in record.getMessage() or 'File "' in record.getMessage()
        )
    ]
    assert traces == [], [r.getMessage() for r in traces]
    for call in fake.calls:
        for value in call.params.values():
            assert "Traceback" not in str(value) and 'File "' not in str(value), call
