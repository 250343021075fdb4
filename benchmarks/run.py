"""`bookbot bench`: the performance targets of the booking engine, measured on PostgreSQL.

Prints figures and ratios against baselines measured in the same run (never absolute timings in
tests): slot computation for 60 days of an ST with 1,000 sessions, booking transactions per second
at 1/8/32 clients next to a single-row insert transaction, and the 100-way race's wall time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock

import asyncpg
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.booking import BookingRequest, book_session
from engine.chat.slots import Interval, SlotRules, WeeklyRule, day_bounds_utc, free_slots
from storage.booking_tx import ANALYTICS, BookingRow, book, book_in_session
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import (
    Availability,
    Course,
    Enrollment,
    StudentTeacher,
    User,
)
from storage.throwaway_pg import throwaway_server
from storage.uow import UnitOfWork

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
TARGET_SLOTS_MS = 5.0
TARGET_BOOKING_RATIO = 0.5
TARGET_RACE_S = 1.0
CLIENTS = (1, 8, 32)
SECONDS_PER_RUN = 1.0
WARM_UP_SECONDS = 0.3
ROUNDS = 3
STUDENTS_PER_CLIENT = 50

Factory = async_sessionmaker[AsyncSession]


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The given server, TEST_DATABASE_URL, or a throwaway embedded server."""
    url = url or os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with throwaway_server("bookbot-bench-") as server:
        yield server.url


def median_ms(fn: Callable[[], object], repeat: int = 50) -> float:
    fn()  # warm caches (zoneinfo, bisect structures)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_slots() -> tuple[float, float]:
    """60 days of an ST with 1,000 sessions, against the same ST with an empty calendar."""
    rules = [WeeklyRule(d, clock(8, 0), clock(22, 0), "Europe/Berlin") for d in range(7)]
    settings = SlotRules(session_minutes=60, buffer_minutes=15, step_minutes=30, max_per_day=20)
    busy = [
        Interval(NOW + timedelta(minutes=83 * i), NOW + timedelta(minutes=83 * i + 60))
        for i in range(1000)
    ]
    student = busy[::50]
    end = NOW + timedelta(days=60)

    def run(st_busy: list[Interval]) -> list[datetime]:
        return free_slots(rules, [], settings, st_busy, student, NOW, NOW, end, "Europe/Berlin")

    return median_ms(lambda: run(busy)), median_ms(lambda: run([]))


async def seed(factory: Factory, people: int) -> tuple[int, list[int], list[list[int]]]:
    """An ST per client and a pool of students per client, as in a real course.

    Each booking checks the student's count of sessions in the course; spreading bookings over a
    pool keeps those counts realistic (a course has a handful of sessions, not thousands).
    """
    async with factory() as session, session.begin():
        course = Course(slug="bench", title="Benchmark 101", session_count=10_000)
        session.add(course)
        await session.flush()
        teachers, pools = [], []
        for i in range(people):
            teacher = User(name=f"ST {i}", email=f"st{i}@bench.test", timezone="UTC")
            pool = [
                User(name=f"Student {i}.{k}", email=f"s{i}.{k}@bench.test", timezone="UTC")
                for k in range(STUDENTS_PER_CLIENT)
            ]
            session.add_all([teacher, *pool])
            await session.flush()
            session.add(StudentTeacher(user_id=teacher.id, course_id=course.id, buffer_minutes=0))
            session.add_all(Enrollment(student_id=s.id, course_id=course.id) for s in pool)
            session.add_all(
                Availability(
                    user_id=teacher.id,
                    day_of_week=d,
                    start_time=clock(0, 0),
                    end_time=clock(0, 0),
                    timezone="UTC",
                )
                for d in range(7)
            )
            teachers.append(teacher.id)
            pools.append([s.id for s in pool])
        return course.id, teachers, pools


ATTEMPTS = itertools.count()  # unique per attempt in the whole run: every booking gets its own hour


async def analyze(engine: AsyncEngine) -> None:
    """Fresh tables have no statistics; production has autovacuum's, so plans match them."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("ANALYZE")


async def throughput(
    clients: int, work: Callable[[int, int], Awaitable[None]], seconds: float = SECONDS_PER_RUN
) -> float:
    """Transactions per second with `clients` concurrent workers for `seconds`."""
    deadline = time.perf_counter() + seconds
    done = [0] * clients

    async def worker(client: int) -> None:
        while time.perf_counter() < deadline:
            await work(client, next(ATTEMPTS))
            done[client] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(clients)))
    return sum(done) / (time.perf_counter() - started)


def booking_row(course_id: int, student_id: int, teacher_id: int, start: datetime) -> BookingRow:
    request = BookingRequest(
        course_id=course_id,
        student_id=student_id,
        teacher_id=teacher_id,
        start=start,
        end=start + timedelta(minutes=60),
        reminders=True,
        note=None,
        platform="bench",
    )
    return BookingRow(
        request,
        day_bounds_utc,
        reminder_offsets=[timedelta(hours=24), timedelta(hours=1)],
        now=NOW,
    )


async def bench_booking(engine: AsyncEngine) -> list[tuple[int, float, float, float]]:
    """Each client books its own ST for its own students: every attempt succeeds."""
    factory = make_sessionmaker(engine)
    course_id, teachers, pools = await seed(factory, max(CLIENTS))
    await analyze(engine)
    results = []
    for clients in CLIENTS:

        def make_own(base: datetime) -> Callable[[int, int], Awaitable[None]]:
            async def own(client: int, n: int) -> None:
                start = base + timedelta(hours=n)
                row = booking_row(
                    course_id, pools[client][n % STUDENTS_PER_CLIENT], teachers[client], start
                )
                result = await book(engine, row)
                assert result.session_id is not None, result

            return own

        def make_in_chat(base: datetime) -> Callable[[int, int], Awaitable[None]]:
            async def in_chat(client: int, n: int) -> None:
                start = base + timedelta(hours=n)
                row = booking_row(
                    course_id, pools[client][n % STUDENTS_PER_CLIENT], teachers[client], start
                )
                async with factory() as session, session.begin():
                    result = await book_in_session(session, row)
                assert result.session_id is not None, result

            return in_chat

        async def baseline(client: int, n: int) -> None:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(ANALYTICS),
                    {"name": "baseline", "data": {"n": n}, "platform": "bench"},
                )

        workloads = (make_own(NOW), make_in_chat(NOW), baseline)
        for work in workloads:  # warm up: pool connections, prepared statements, plans
            await throughput(clients, work, WARM_UP_SECONDS)
        await analyze(engine)
        # Interleaved rounds, medians: a noisy second hits baseline and booking alike.
        rounds = [
            tuple([await throughput(clients, work) for work in workloads]) for _ in range(ROUNDS)
        ]
        medians = [statistics.median(column) for column in zip(*rounds, strict=True)]
        results.append((clients, medians[0], medians[1], medians[2]))
    return results


async def bench_race(factory: Factory) -> tuple[float, Counter[str]]:
    async with factory() as session, session.begin():
        course = Course(slug="race", title="Race 101", session_count=10)
        teacher = User(name="Racing ST", email="race-st@bench.test", timezone="UTC")
        session.add_all([course, teacher])
        await session.flush()
        session.add(StudentTeacher(user_id=teacher.id, course_id=course.id))
        racers = [User(name=f"Racer {i}", email=f"r{i}@bench.test") for i in range(100)]
        session.add_all(racers)
        await session.flush()
        session.add_all(Enrollment(student_id=r.id, course_id=course.id) for r in racers)
    slot = NOW + timedelta(days=3)

    async def attempt(student_id: int) -> str:
        async with factory() as session, session.begin():
            outcome = await book_session(
                UnitOfWork.over(session),
                BookingRequest(
                    course.id,
                    student_id,
                    teacher.id,
                    slot,
                    slot + timedelta(hours=1),
                    True,
                    None,
                    "bench",
                ),
                reminder_offsets=[],
                now=NOW,
            )
        return type(outcome).__name__

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(attempt(r.id) for r in racers))
    return time.perf_counter() - started, Counter(outcomes)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def run_benchmarks(url: str | None) -> bool:
    slots_ms, empty_ms = bench_slots()
    print("Slot computation, 60 days, ST with 1,000 sessions (pure engine/slots.py)")
    print(
        f"  {slots_ms:.2f} ms median; empty calendar {empty_ms:.2f} ms "
        f"(ratio {slots_ms / empty_ms:.2f}x)  target < {TARGET_SLOTS_MS} ms: "
        f"{verdict(slots_ms < TARGET_SLOTS_MS)}"
    )
    ok = slots_ms < TARGET_SLOTS_MS
    with postgres(url) as server:
        name = f"bookbot_bench_{secrets.token_hex(4)}"
        admin_dsn = make_url(server).set(drivername="postgresql").render_as_string(False)
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(
            make_url(server)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False),
            # One process drives every client: a connection per client, and at most 64 in all
            # (the race's 100 students queue for them) so the server's 100 are never exceeded.
            pool_size=max(CLIENTS),
            max_overflow=max(CLIENTS),
        )
        try:
            await upgrade(engine)
            factory = make_sessionmaker(engine)
            print(
                "Booking transactions per second (lock, checks, session + 2 reminder jobs + "
                "analytics) vs. a single-row insert transaction, same database, same run"
            )
            for clients, own, chat, base in await bench_booking(engine):
                ratio = own / base
                ok &= ratio >= TARGET_BOOKING_RATIO
                print(
                    f"  {clients:>2} clients: booking {own:6.0f}/s  baseline {base:6.0f}/s  "
                    f"ratio {ratio:4.0%}  target >= {TARGET_BOOKING_RATIO:.0%}: "
                    f"{verdict(ratio >= TARGET_BOOKING_RATIO)}   "
                    f"(inside a chat transaction, savepoint: {chat:6.0f}/s, {chat / base:4.0%})"
                )
            seconds, outcomes = await bench_race(factory)
            ok &= seconds < TARGET_RACE_S and outcomes["Booked"] == 1
            print(
                f"100 students racing for one slot: {seconds * 1000:.0f} ms wall, "
                f"{dict(outcomes)}  target < {TARGET_RACE_S:.0f} s and one booking: "
                f"{verdict(seconds < TARGET_RACE_S and outcomes['Booked'] == 1)}"
            )
        finally:
            await engine.dispose()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return ok
