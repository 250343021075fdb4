"""A PostgreSQL restart or outage between two events of one conversation, in the terminal chat
and in Telegram: the student is told "Unable to book. Please try again." while the database is
away, and the conversation goes on where it was once it is back.

Each test starts its own embedded server, even when TEST_DATABASE_URL names a shared one: a
shared server is never restarted or stopped.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TextIO, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots import console
from engine.chat import messages as m
from engine.chat.conversation import ConversationService, utc_now
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.demo_data import load_demo
from storage.migrate import upgrade
from storage.models import Session
from storage.throwaway_pg import ThrowawayServer, throwaway_server
from tests.factories import make_world
from tests.fake_telegram import FakeTelegram
from tests.test_telegram import SAM_TG, book_to_confirm, start_bot, wizard

Factory = async_sessionmaker[AsyncSession]
Step = str | Callable[[], None]


@pytest.fixture
def own_server() -> Iterator[ThrowawayServer]:
    with throwaway_server(prefix="bookbot-outage-") as server:
        yield server


@pytest.fixture
async def own_db(own_server: ThrowawayServer) -> AsyncIterator[Factory]:
    engine = make_engine(own_server.url)
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


class ScriptedInput(io.TextIOBase):
    """Standard input for the terminal chat; a callable step runs (say, a restart) in between."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    def readline(self, size: int | None = -1) -> str:
        while self.steps:
            step = self.steps.pop(0)
            if callable(step):
                step()
                continue
            return step + "\n"
        return ""


async def chat_in_terminal(db: Factory, steps: list[Step]) -> str:
    service = ConversationService(db, Settings())
    async with db() as session, session.begin():
        ids = await load_demo(session, utc_now())
    out: list[str] = []
    stdin = cast(TextIO, ScriptedInput(steps))
    await console.run(service, ids.student_id, "en_GB", stdin, out.append)
    return "\n".join(out)


async def booked_in_terminal(db: Factory) -> int:
    async with db() as session:
        count = await session.scalar(
            select(func.count()).select_from(Session).where(Session.created_via == "console")
        )
        return int(count or 0)


TO_CONFIRM = ["2", "1", "1", "1"]  # Calculus I, first ST, first free day, first time
BOOK_SESSION = "3"


async def test_the_terminal_chat_books_after_a_database_restart_between_two_events(
    own_server: ThrowawayServer, own_db: Factory
) -> None:
    out = await chat_in_terminal(own_db, [*TO_CONFIRM, own_server.restart, BOOK_SESSION])
    assert "Step 4 of 4" in out
    assert "== Session Booked! ==" in out
    assert await booked_in_terminal(own_db) == 1


async def test_the_terminal_chat_says_unable_to_book_while_the_database_is_down_then_books(
    own_server: ThrowawayServer, own_db: Factory
) -> None:
    steps: list[Step] = [*TO_CONFIRM, own_server.stop, BOOK_SESSION, own_server.start]
    out = await chat_in_terminal(own_db, [*steps, BOOK_SESSION])
    unable = out.index(m.BOOKING_FAILED)
    assert "Step 4 of 4" in out[:unable]
    assert "== Session Booked! ==" in out[unable:]  # the same number, pressed again, books
    assert "Traceback" not in out
    assert await booked_in_terminal(own_db) == 1


async def test_telegram_books_after_a_database_restart_between_two_events(
    own_server: ThrowawayServer, own_db: Factory, fake: FakeTelegram
) -> None:
    world = await make_world(own_db)
    bot = await start_bot(fake, own_db)
    try:
        sam = fake.user(SAM_TG)
        await book_to_confirm(bot, sam, world)
        own_server.restart()
        await bot.press(sam, "Book Session")
        assert "Session Booked!" in wizard(fake, SAM_TG)
    finally:
        await bot.app.shutdown()


async def test_telegram_says_unable_to_book_while_the_database_is_down_then_books(
    own_server: ThrowawayServer, own_db: Factory, fake: FakeTelegram
) -> None:
    world = await make_world(own_db)
    bot = await start_bot(fake, own_db)
    try:
        sam = fake.user(SAM_TG)
        await book_to_confirm(bot, sam, world)
        own_server.stop()
        await bot.press(sam, "Book Session")
        answers = [call.params.get("text") for call in fake.calls_to("answerCallbackQuery")]
        assert answers[-1] == m.BOOKING_FAILED
        assert "Step 4 of 4" in wizard(fake, SAM_TG)  # the screen is kept for another press
        assert fake.unanswered_callback_queries() == []

        own_server.start()
        await bot.press(sam, "Book Session")
        assert "Session Booked!" in wizard(fake, SAM_TG)
    finally:
        await bot.app.shutdown()
