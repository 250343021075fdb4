"""A pacer per platform: each platform's own rate limits, and a 429 that pauses only its sender.

Pure pacing on a fake clock, then the Dispatcher on PostgreSQL with two recording senders
("telegram" and a second platform standing for Slack) so that a Retry-After from one platform
is seen not to hold back the other.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.telegram.platform import LIMITS as TELEGRAM_LIMITS
from engine.booking import Booked, BookingRequest, book_session
from engine.followup.dispatch import Dispatcher
from engine.followup.reminders import Pacers, Retry, Sent
from engine.followup.senders import OutMessage, RateLimits, SendError
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.models import ReminderJob
from storage.outbox import ClaimedJob
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.factories import NOW, make_world
from tests.test_outbox import FakeTime
from tests.test_reminders import FRIDAY_10

Factory = async_sessionmaker[AsyncSession]
SLACK_LIKE = RateLimits(per_second=None, per_chat_interval=1.0)  # about 1/s per channel


def pacers(fake: FakeTime) -> Pacers:
    return Pacers({"telegram": TELEGRAM_LIMITS, "slack": SLACK_LIKE}, clock=fake, sleep=fake.sleep)


def test_telegram_declares_thirty_messages_a_second_and_one_a_second_per_chat() -> None:
    assert TELEGRAM_LIMITS == RateLimits(per_second=30.0, per_chat_interval=1.0)


async def test_telegram_sends_to_many_chats_are_held_to_thirty_a_second() -> None:
    fake = FakeTime()
    paced = pacers(fake)
    for chat in range(61):
        await paced.wait("telegram", str(chat))
    assert fake.now == pytest.approx(60 / 30)  # 61 sends: 60 gaps of 1/30 s


async def test_telegram_sends_to_one_chat_are_a_second_apart() -> None:
    fake = FakeTime()
    paced = pacers(fake)
    times = []
    for _ in range(3):
        await paced.wait("telegram", "7001")
        times.append(fake.now)
    assert [b - a for a, b in pairwise(times)] == pytest.approx([1.0, 1.0])


async def test_another_platform_keeps_its_own_rate_and_ignores_telegrams_budget() -> None:
    fake = FakeTime()
    paced = pacers(fake)
    for chat in range(30):  # Telegram's whole second used up...
        await paced.wait("telegram", str(chat))
    before = fake.now
    for channel in range(100):  # ...a platform without an overall limit goes on at once
        await paced.wait("slack", f"C{channel}")
    assert fake.now == before
    await paced.wait("slack", "C0")  # but one channel still gets one message a second
    assert fake.now == pytest.approx(before + 1.0)


async def test_a_retry_after_pauses_only_the_platform_that_asked() -> None:
    fake = FakeTime()
    paced = pacers(fake)
    await paced.pause("slack", 10)
    await paced.wait("telegram", "7001")
    assert fake.sleeps == []  # Telegram is not held back by Slack's 429
    await paced.wait("slack", "C1")
    assert fake.now == pytest.approx(10)


async def test_a_platform_without_declared_limits_gets_conservative_defaults() -> None:
    fake = FakeTime()
    paced = Pacers({}, clock=fake, sleep=fake.sleep)
    await paced.wait("matrix", "room")
    await paced.wait("matrix", "room")
    assert fake.now == pytest.approx(1.0)
    with pytest.raises(ValueError):
        RateLimits(per_second=0)


class Recording:
    """A ChatSender that records sends and can answer the next one with a 429."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.sent: list[str] = []
        self.retry_after: float | None = None

    async def send(self, chat_id: str, message: OutMessage) -> None:
        if self.retry_after is not None:
            wait, self.retry_after = self.retry_after, None
            raise SendError("429 Too Many Requests", retry_after=wait)
        self.sent.append(chat_id)


async def test_the_dispatcher_pauses_only_the_platform_that_answered_429(pg: Factory) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        repo = Repo(session)
        await repo.link_identity("slack", "U-SAM", world.student.id, "D-SAM")
        await repo.link_identity("telegram", "7003", world.teachers[0].id, "7003")
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
                "slack",
            ),
            reminder_offsets=[timedelta(hours=1)],
            now=NOW,
        )
    assert isinstance(outcome, Booked)
    async with pg() as session:
        kinds = {j.kind for j in await session.scalars(select(ReminderJob))}
    assert {"student:before_1h", "teacher:before_1h"} <= kinds

    fake = FakeTime()
    slack, telegram = Recording("slack"), Recording("telegram")
    dispatcher = Dispatcher(
        pg,
        Settings(reminder_offsets_minutes=[60]),
        [slack, telegram],
        None,
        JitsiProvider("https://meet.example.edu"),
        pacers(fake),
    )
    now = FRIDAY_10 - timedelta(minutes=30)

    def job(kind: str) -> ClaimedJob:
        return ClaimedJob(id=0, session_id=outcome.session_id, kind=kind, due_at=now, attempts=1)

    slack.retry_after = 5
    assert await dispatcher(job("student:before_1h"), now) == Retry(
        timedelta(seconds=5), "SendError retry_after=5"
    )
    assert await dispatcher(job("teacher:before_1h"), now) == Sent()
    assert (telegram.sent, fake.sleeps) == (["7003"], [])  # Telegram went at once
    assert await dispatcher(job("student:before_1h"), now) == Sent()
    assert slack.sent == ["D-SAM"] and fake.now == pytest.approx(5)  # Slack waited its 5 s
