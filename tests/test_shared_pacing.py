"""One send rate per bot, shared by every outbox worker in every process (storage/send_rate.py,
engine/followup/pacing.py).

The bucket's arithmetic is explored with hypothesis; the statement that runs it is checked
against that same arithmetic on PostgreSQL and SQLite; pools of their own (as separate processes
have) take turns at once and never exceed the rate by the database's own clock; a 429's pause
written by one is obeyed by the others; an unreachable database leaves a process pacing alone
with one log line; and two real workers over the fake Bot API send 100 reminders once each
without going over the configured rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bots.telegram.platform import LIMITS as TELEGRAM_LIMITS
from bots.telegram.platform import telegram_platform
from bots.telegram.settings import TelegramSettings
from bots.worker import build_worker
from engine.followup.pacing import SharedPacer
from engine.followup.reminders import Pacers
from engine.followup.senders import RateLimits
from storage import send_rate
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import ChatIdentity, ReminderJob, Session, User
from storage.send_rate import FLOATS, Bucket, Rate, SendRates, Turn
from tests.factories import NOW, make_world
from tests.fake_telegram import FakeTelegram
from tests.test_outbox import FakeTime
from tests.test_telegram import settings_for, start_bot, telegram_settings_for

Factory = async_sessionmaker[AsyncSession]
EPSILON = 1e-6
EPOCH_ROUNDING = 1e-3  # turns: seconds since 1970 as doubles are exact to about 0.2 µs


def most_in_a_window(times: list[float], rate: Rate) -> float:
    """How far the busiest stretch of `times` goes over what the rate allows there (<= 0: never
    over): for every pair, the turns between them minus `burst + per_second * span`."""
    ordered = sorted(times)
    return max(
        (
            last - first + 1 - rate.burst - (ordered[last] - ordered[first]) * rate.per_second
            for first in range(len(ordered))
            for last in range(first, len(ordered))
        ),
        default=0.0,
    )


def new_key() -> str:
    """A bucket of the test's own: tests share the database but never a bucket."""
    return f"test-{secrets.token_hex(4)}"


# --- the arithmetic, on floats -------------------------------------------------------------
rates = st.builds(
    Rate,
    per_second=st.floats(min_value=0.2, max_value=100),
    burst=st.integers(min_value=1, max_value=8),
)
takes_and_pauses = st.lists(
    st.tuples(
        # Seconds since the previous take. Slightly negative too: a take whose clock was read
        # before it waited for the row lock reaches the row after a later reading.
        st.floats(min_value=-0.05, max_value=5),
        st.none() | st.floats(min_value=0, max_value=30),  # a 429's pause just before it
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(rate=rates, events=takes_and_pauses)
def test_no_interval_ever_holds_more_turns_than_the_burst_plus_the_rate(
    rate: Rate, events: list[tuple[float, float | None]]
) -> None:
    """For any interleaving of takes and pauses (from any number of workers, in the order they
    reach the row): no turn starts before it was taken or inside a pause known by then, turns
    come in the order taken, and any t seconds hold at most `burst + per_second * t` of them."""
    now = 0.0
    bucket = rate.full(now, FLOATS)
    paused_until = -math.inf
    starts: list[float] = []
    for gap, pause in events:
        now += gap
        if pause is not None:
            bucket = rate.pause(bucket, now, pause, FLOATS)
            paused_until = max(paused_until, now + pause)
        bucket = rate.take(bucket, now, FLOATS)
        start = rate.start(bucket)
        assert start >= now and start >= paused_until
        starts.append(start)
    assert starts == sorted(starts)
    assert most_in_a_window(starts, rate) <= EPSILON


def turns(rate: Rate, bucket: Bucket[float], times: list[float]) -> list[float]:
    starts = []
    for now in times:
        bucket = rate.take(bucket, now, FLOATS)
        starts.append(rate.start(bucket))
    return starts


def test_a_quiet_bot_sends_its_burst_at_once_then_one_per_interval() -> None:
    rate = Rate(per_second=10, burst=3)
    assert turns(rate, rate.full(0.0, FLOATS), [0.0] * 5) == pytest.approx(
        [0.0, 0.0, 0.0, 0.1, 0.2]
    )
    # A second later the queue has gone and a tenth of a second refilled one token.
    assert turns(rate, rate.full(0.0, FLOATS), [0.0] * 5 + [1.0, 1.0]) == pytest.approx(
        [0.0, 0.0, 0.0, 0.1, 0.2, 1.0, 1.0]
    )


def test_a_pause_holds_every_turn_then_lets_one_through_per_interval() -> None:
    rate = Rate(per_second=10, burst=3)
    paused = rate.pause(rate.full(0.0, FLOATS), 0.0, 5.0, FLOATS)
    assert turns(rate, paused, [1.0, 1.0, 1.0]) == pytest.approx([5.0, 5.1, 5.2])


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    rate = Rate(per_second=10)
    bucket = rate.pause(rate.full(0.0, FLOATS), 0.0, 30.0, FLOATS)
    bucket = rate.pause(bucket, 1.0, 2.0, FLOATS)
    assert bucket.paused_until == 30.0
    assert turns(rate, bucket, [2.0]) == pytest.approx([30.0])


def test_a_rate_must_be_positive_with_a_burst_of_one_at_least() -> None:
    for wrong in ({"per_second": 0}, {"per_second": -1}, {"per_second": 1, "burst": 0}):
        with pytest.raises(ValueError):
            Rate(**wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RateLimits(per_second=30, burst=0)


# --- the statement, on both databases ------------------------------------------------------
async def test_the_statement_computes_what_the_arithmetic_says(db: Factory) -> None:
    """The same takes and pauses, at the same (given) times, through SQL and on floats."""
    rate, key, chance = Rate(per_second=7, burst=3), new_key(), random.Random(11)
    now = 1_000.0
    model = rate.full(now, FLOATS)
    for _ in range(120):
        now += chance.choice([0.0, 0.0, 0.01, 0.1, 0.5, 2.0, -0.02])
        async with db() as session, session.begin():
            if chance.random() < 0.1:
                seconds = chance.choice([0.5, 3.0])
                await send_rate.pause(session, key, rate, seconds, now=now)
                model = rate.pause(model, now, seconds, FLOATS)
                continue
            turn = await send_rate.take(session, key, rate, now=now)
        model = rate.take(model, now, FLOATS)
        assert turn.start == pytest.approx(rate.start(model), abs=1e-6)


async def test_turns_are_reckoned_in_seconds_on_the_databases_clock(db: Factory) -> None:
    rates, key = SendRates(db), new_key()
    slow = Rate(per_second=0.01, burst=2)  # one turn every 100 s
    first, second, third = [await rates.take(key, slow) for _ in range(3)]
    assert abs(first.now - time.time()) < 60  # epoch seconds (the database runs here)
    assert first.delay == second.delay == 0.0  # the burst
    assert 90 < third.delay <= 100  # a hundred seconds, less the moments the takes took


# --- several pools, as several processes --------------------------------------------------
@pytest.fixture(params=["postgresql", "sqlite"])
async def pools(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, pg_engine: AsyncEngine
) -> AsyncIterator[list[Factory]]:
    """Three engines with pools of their own on one migrated database."""
    url = pg_url
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bookbot.db'}"
        first = make_engine(url)
        await upgrade(first)
        await first.dispose()
    engines = [make_engine(url) for _ in range(3)]
    yield [make_sessionmaker(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


async def test_workers_in_separate_pools_taking_at_once_never_exceed_the_rate(
    pools: list[Factory],
) -> None:
    """150 turns taken at once by six tasks over three pools: by the database's own clock no
    stretch holds more than the burst plus the rate (the turns, not the machine's speed, are
    what is counted, so a slow machine cannot make this fail)."""
    rate, key = Rate(per_second=50, burst=5), new_key()
    given: list[Turn] = []

    async def worker(rates: SendRates) -> None:
        for _ in range(25):
            given.append(await rates.take(key, rate))

    await asyncio.gather(*(worker(SendRates(pool)) for pool in pools for _ in range(2)))
    starts = [turn.start for turn in given]
    assert len(set(starts)) >= len(starts) - rate.burst  # a turn each, none handed out twice
    assert most_in_a_window(starts, rate) <= EPOCH_ROUNDING


async def test_a_pause_written_by_one_worker_holds_the_others(pools: list[Factory]) -> None:
    rate, key = Rate(per_second=30), new_key()
    one, other = SendRates(pools[0]), SendRates(pools[1])
    await other.take(key, rate)
    await one.pause(key, rate, 60.0)
    turn = await other.take(key, rate)
    assert 55 < turn.delay <= 60

    # The same through the worker's Pacers, as the Dispatcher uses them on a 429.
    fake, platform = FakeTime(), new_key()
    limits = {platform: RateLimits(per_second=30, per_chat_interval=1.0)}
    paused = Pacers(limits, shared=one, clock=fake, sleep=fake.sleep)
    waiting = Pacers(limits, shared=SendRates(pools[2]), clock=fake, sleep=fake.sleep)
    await paused.pause(platform, 120.0)  # a 429 in one process...
    await waiting.wait(platform, "7001")  # ...holds a send in another
    (slept,) = fake.sleeps
    assert 115 < slept <= 120


async def test_a_429_while_a_send_waits_for_its_turn_sends_it_behind_the_pause(
    db: Factory,
) -> None:
    """The turn it was given falls inside the pause: it is given up, and a new one taken."""
    fake, asleep, held, key = FakeTime(), asyncio.Event(), asyncio.Event(), new_key()

    async def sleep(seconds: float) -> None:
        if not fake.sleeps:  # the first wait (for the turn) lasts until the test says
            fake.sleeps.append(seconds)
            asleep.set()
            await held.wait()
            fake.now += seconds
            return
        await fake.sleep(seconds)

    pacer = SharedPacer(
        key, RateLimits(per_second=0.5), SendRates(db), clock=fake, sleep=sleep
    )  # a turn every 2 s
    await pacer.wait("7001")  # the burst: at once
    waiting = asyncio.create_task(pacer.wait("7002"))
    await asleep.wait()
    assert 0 < fake.sleeps[0] <= 2  # its turn, two seconds after the first
    await pacer.pause(60.0)  # meanwhile a 429 (this worker's own)
    held.set()
    await waiting
    # It waited out the pause here, then took a new turn, which the database put after the
    # pause too (the fake clock ran ahead of the database's: that wait is still nearly all of it).
    assert len(fake.sleeps) == 3 and fake.sleeps[1] == pytest.approx(60 - fake.sleeps[0])
    assert 55 < fake.sleeps[2] <= 60


# --- the database away ---------------------------------------------------------------------
class Switchable:
    """The shared buckets of whichever database `rates` points at now."""

    def __init__(self, rates: SendRates) -> None:
        self.rates = rates

    async def take(self, key: str, rate: Rate) -> Turn:
        return await self.rates.take(key, rate)

    async def pause(self, key: str, rate: Rate, seconds: float) -> None:
        await self.rates.pause(key, rate, seconds)


async def test_without_the_database_a_worker_paces_alone_and_says_so_once(
    db: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = make_engine("postgresql://bookbot@127.0.0.1:1/bookbot")  # refused at once
    shared = Switchable(SendRates(make_sessionmaker(nowhere)))
    fake = FakeTime()
    key = new_key()
    pacer = SharedPacer(
        key, RateLimits(per_second=10), shared, clock=fake, sleep=fake.sleep, retry_shared_after=5
    )
    try:
        with caplog.at_level(logging.INFO, logger="engine.followup.pacing"):
            for chat in range(5):
                await pacer.wait(str(chat))
            assert fake.sleeps == pytest.approx([0.1] * 4)  # its own rate, in this process
            await pacer.pause(1.0)  # a 429 meanwhile: still honoured here
            await pacer.wait("5")
            fake.now += 10  # past retry_shared_after: the database is asked again, still away
            await pacer.wait("6")
            assert [r.levelname for r in caplog.records] == ["WARNING"]
            assert "pacing this process alone at 10/s" in caplog.records[0].getMessage()

            shared.rates = SendRates(db)  # the database is back
            fake.now += 10
            await pacer.wait("7")
            async with db() as session:
                assert (
                    await session.scalar(
                        select(send_rate.RATES.c.key).where(send_rate.RATES.c.key == key)
                    )
                    == key
                )  # the turn came from the shared bucket
            assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    finally:
        await nowhere.dispose()


# --- two real workers, one bot -------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def due_reminders(db: Factory, count: int, now: datetime) -> list[int]:
    """`count` students with a Telegram chat each and a reminder due now; their chat ids."""
    world = await make_world(db, teachers=1)
    chats = [8_000 + n for n in range(count)]
    async with db() as session, session.begin():
        students = [User(name=f"Student {n}", email=f"s{n}@example.edu") for n in chats]
        session.add_all(students)
        await session.flush()
        booked = []
        for n, (chat, student) in enumerate(zip(chats, students, strict=True)):
            session.add(
                ChatIdentity(
                    platform="telegram",
                    external_id=str(chat),
                    chat_id=str(chat),
                    user_id=student.id,
                )
            )
            start = now + timedelta(hours=1 + 2 * n)  # one ST: the sessions may not overlap
            booked.append(
                Session(
                    course_id=world.course.id,
                    student_id=student.id,
                    teacher_id=world.teachers[0].id,
                    scheduled_start=start,
                    scheduled_end=start + timedelta(hours=1),
                    blocked_until=start + timedelta(hours=1, minutes=15),
                    created_via="test",
                )
            )
        session.add_all(booked)
        await session.flush()
        session.add_all(
            ReminderJob(session_id=s.id, kind="student:before_1h", due_at=now) for s in booked
        )
    return chats


async def test_two_workers_in_two_pools_send_each_reminder_once_within_the_shared_rate(
    pg: Factory, pg_url: str
) -> None:
    """Each worker alone would keep to 20/s and send 40/s together; sharing, they keep to 20.

    Arrivals at the fake server are counted in every one-second stretch. A send leaves when
    its turn comes, but a busy event loop can hold one back until the next is due too, so the
    allowance is the burst, plus what the rate gives in the longest stall this test saw, plus
    one message for the HTTP path; the turns themselves are checked exactly above.
    """
    now = NOW
    chats = await due_reminders(pg, 100, now)
    engines = [make_engine(pg_url) for _ in range(2)]
    async with FakeTelegram() as fake:
        for chat in chats:
            fake.user(chat, "Student")
        limits_20 = telegram_settings_for(fake).model_copy(update={"send_rate": 20.0})
        bots = [await start_bot(fake, make_sessionmaker(engine)) for engine in engines]
        workers = [
            build_worker(
                settings_for(fake),
                make_sessionmaker(engine),
                [telegram_platform(bot.app, limits_20)],
                Clock(now),
                email=None,
            )
            for bot, engine in zip(bots, engines, strict=True)
        ]
        stop, stall = asyncio.Event(), 0.0

        async def watch_the_loop() -> None:
            nonlocal stall
            while not stop.is_set():
                before = time.monotonic()
                await asyncio.sleep(0.005)
                stall = max(stall, time.monotonic() - before - 0.005)

        running = [asyncio.create_task(w.run_forever(stop)) for w in workers]
        watching = asyncio.create_task(watch_the_loop())
        try:
            await fake.wait_until(lambda: len(fake.calls_to("sendMessage")) >= 100, seconds=120)
            for _ in range(200):  # the last outcomes are being written
                async with pg() as session:
                    states = set(await session.scalars(select(ReminderJob.status)))
                if states == {"sent"}:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*running, watching)
            for bot in bots:
                await bot.app.shutdown()
            for engine in engines:
                await engine.dispose()

        assert states == {"sent"}
        sent_to = sorted(call.params["chat_id"] for call in fake.calls_to("sendMessage"))
        assert sent_to == chats  # each reminder once
        arrivals = [call.at for call in fake.calls_to("sendMessage")]
        allowed = 20 * 1.0 + TELEGRAM_LIMITS.burst + 1 + math.ceil(20 * stall)
        busiest = max(sum(start <= at < start + 1.0 for at in arrivals) for start in arrivals)
        assert busiest <= allowed, (busiest, stall)


def test_the_telegram_rate_is_a_setting_defaulting_to_thirty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TelegramSettings().send_rate == TELEGRAM_LIMITS.per_second == 30.0
    monkeypatch.setenv("TELEGRAM_SEND_RATE", "12.5")
    assert TelegramSettings().send_rate == 12.5
    monkeypatch.setenv("TELEGRAM_SEND_RATE", "0")
    with pytest.raises(ValueError):
        TelegramSettings()
