"""The reminder outbox: each due job is sent once with several workers, crashes lose nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, cast

import pytest
from sqlalchemy import Row, Table, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.followup.reminders import (
    ClaimedJob,
    JobHandler,
    Outcome,
    Pacer,
    Retry,
    Sent,
    Skip,
    Worker,
    WorkerSettings,
    backoff,
)
from storage import outbox
from storage.models import Session
from tests.factories import NOW, make_world
from tests.locks import backend_pid, waits_for_lock

Factory = async_sessionmaker[AsyncSession]
SESSIONS = cast(Table, Session.__table__)
JOBS = outbox.JOBS
LEASE = timedelta(minutes=2)


class Clock:
    """The workers' wall clock, moved by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class FakeTime:
    """A monotonic clock and a sleep that moves it, for the pacer."""

    def __init__(self, on_sleep: Callable[[float], None] = lambda _: None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(seconds)
        await asyncio.sleep(0)


async def add_due_jobs(factory: Factory, count: int) -> list[int]:
    """`count` jobs due before NOW, oldest first, two per session (as booking writes them)."""
    world = await make_world(factory, teachers=1)
    kinds = ("before_24h", "before_1h")
    sessions = [
        {
            "course_id": world.course.id,
            "student_id": world.student.id,
            "teacher_id": world.teachers[0].id,
            "scheduled_start": NOW + timedelta(days=2, hours=n),
            "scheduled_end": NOW + timedelta(days=2, hours=n, minutes=30),
            "blocked_until": NOW + timedelta(days=2, hours=n, minutes=45),
            "status": "scheduled",
            "reminders": True,
            "created_via": "test",
        }
        for n in range(-(-count // len(kinds)))
    ]
    async with factory() as session, session.begin():
        result = await session.execute(
            insert(SESSIONS).returning(SESSIONS.c.id, sort_by_parameter_order=True), sessions
        )
        session_ids = result.scalars().all()
        jobs = [
            {"session_id": session_id, "kind": kind} for session_id in session_ids for kind in kinds
        ][:count]
        for n, job in enumerate(jobs):
            job["due_at"] = NOW - timedelta(seconds=count - n)
        await session.execute(insert(JOBS), jobs)
        return list((await session.scalars(select(JOBS.c.id).order_by(JOBS.c.id))).all())


async def job_rows(factory: Factory) -> dict[int, Row[Any]]:
    async with factory() as session:
        return {row.id: row for row in await session.execute(select(JOBS))}


async def claim(factory: Factory, now: datetime, limit: int = 100) -> list[ClaimedJob]:
    async with factory() as session, session.begin():
        return await outbox.claim_due(session, now=now, limit=limit, lease=LEASE)


def sends_into(log: list[int]) -> JobHandler:
    async def handler(job: ClaimedJob, now: datetime) -> Outcome:
        await asyncio.sleep(0)
        log.append(job.id)
        return Sent()

    return handler


async def drain(worker: Worker) -> None:
    while await worker.run_once():
        pass


@contextmanager
def statements_sent(factory: Factory) -> Iterator[list[str]]:
    engine = factory.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


# --- exactly once ----------------------------------------------------------------------------
async def test_two_concurrent_workers_send_each_of_1000_due_jobs_exactly_once(pg: Factory) -> None:
    ids = await add_due_jobs(pg, 1000)
    first: list[int] = []
    second: list[int] = []
    clock = Clock()
    settings = WorkerSettings(batch=50)

    await asyncio.gather(
        drain(Worker(pg, sends_into(first), settings, clock)),
        drain(Worker(pg, sends_into(second), settings, clock)),
    )

    sent = first + second
    assert len(sent) == len(set(sent)) == 1000  # no duplicates
    assert set(sent) == set(ids)  # none lost
    assert first and second  # both workers took part
    rows = await job_rows(pg)
    assert Counter(row.status for row in rows.values()) == {"sent": 1000}
    assert {row.attempts for row in rows.values()} == {1}


async def test_two_overlapping_claims_take_different_jobs_and_neither_waits(pg: Factory) -> None:
    """Both claims are open at once: the first claims and stays open until the second has
    claimed too (a barrier). With SKIP LOCKED the second takes the other rows at once; without
    it, it queues behind the first's row locks, which PostgreSQL reports, and the test says so
    instead of hanging or depending on a timeout."""
    await add_due_jobs(pg, 4)
    both_claimed = asyncio.Barrier(2)
    first_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def claim_and_hold(limit: int) -> list[int]:
        async with pg() as session, session.begin():
            jobs = await outbox.claim_due(session, now=NOW, limit=limit, lease=LEASE)
            if not first_pid.done():
                first_pid.set_result(await backend_pid(session))
            await both_claimed.wait()  # neither commits before both have claimed
            return [job.id for job in jobs]

    first = asyncio.create_task(claim_and_hold(2))
    holder = await first_pid
    second = asyncio.create_task(claim_and_hold(10))
    engine = pg.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    waited = await waits_for_lock(second, engine, holder)
    if waited:
        await both_claimed.abort()  # roll the first back so that the second can end
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert not waited, "the second claim queued behind the first claim's row locks"
    assert results == [[1, 2], [3, 4]]


@pytest.mark.parametrize("how", ["handler raises CancelledError", "task is cancelled"])
async def test_a_worker_killed_mid_batch_loses_nothing_and_a_restart_sends_the_rest(
    pg: Factory, how: str
) -> None:
    ids = await add_due_jobs(pg, 10)
    clock = Clock()
    settings = WorkerSettings(batch=10, lease=LEASE)
    before_kill: list[int] = []
    stuck = asyncio.Event()

    async def dies_on_the_fourth(job: ClaimedJob, now: datetime) -> Outcome:
        if len(before_kill) == 3:
            if how == "handler raises CancelledError":
                raise asyncio.CancelledError
            stuck.set()
            await asyncio.sleep(3600)
        before_kill.append(job.id)
        return Sent()

    task = asyncio.create_task(Worker(pg, dies_on_the_fourth, settings, clock).run_once())
    if how == "task is cancelled":
        await stuck.wait()
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    rows = await job_rows(pg)
    assert before_kill == ids[:3]
    assert all(rows[i].status == "sent" for i in ids[:3])
    for i in ids[3:]:  # still held by the dead worker's lease
        assert (rows[i].status, rows[i].attempts) == ("pending", 1)
        assert rows[i].locked_until == NOW + LEASE > clock.now

    after_restart: list[int] = []
    restarted = Worker(pg, sends_into(after_restart), settings, clock)
    assert await restarted.run_once() == 0  # the lease still holds
    clock.advance(LEASE + timedelta(seconds=1))
    assert await restarted.run_once() == 7
    assert await restarted.run_once() == 0

    assert after_restart == ids[3:]
    rows = await job_rows(pg)
    assert Counter(row.status for row in rows.values()) == {"sent": 10}
    assert [rows[i].attempts for i in ids[3:]] == [2] * 7


async def test_a_cancelled_worker_still_records_a_send_that_already_happened(pg: Factory) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    worker = Worker(pg, sends_into([]), WorkerSettings(), Clock())
    recording = asyncio.Event()
    original = worker._record

    async def slow_record(job: ClaimedJob, outcome: Outcome) -> None:
        recording.set()
        await asyncio.sleep(0.05)
        await original(job, outcome)

    worker._record = slow_record  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run_once())
    await recording.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await job_rows(pg))[job_id].status == "sent"


# --- outcomes --------------------------------------------------------------------------------
async def test_retry_after_reschedules_the_job_and_releases_its_lease(pg: Factory) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    clock = Clock()
    outcomes: list[Outcome] = [Retry(timedelta(seconds=90), "429: retry after 90"), Sent()]

    async def handler(job: ClaimedJob, now: datetime) -> Outcome:
        return outcomes.pop(0)

    worker = Worker(pg, handler, WorkerSettings(), clock)
    assert await worker.run_once() == 1
    row = (await job_rows(pg))[job_id]
    assert (row.status, row.attempts, row.locked_until) == ("pending", 1, None)
    assert (row.due_at, row.last_error) == (NOW + timedelta(seconds=90), "429: retry after 90")

    assert await worker.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=90))
    assert await worker.run_once() == 1
    row = (await job_rows(pg))[job_id]
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, clock.now)


async def test_retry_without_after_backs_off_exponentially_then_fails(
    pg: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    clock = Clock()
    settings = WorkerSettings(
        max_attempts=5,
        base_backoff=timedelta(seconds=30),
        max_backoff=timedelta(minutes=2),
        jitter=0,
    )

    async def times_out(job: ClaimedJob, now: datetime) -> Outcome:
        return Retry(None, f"timeout #{job.attempts}")

    worker = Worker(pg, times_out, settings, clock)
    waits = []
    for _ in range(4):
        assert await worker.run_once() == 1
        row = (await job_rows(pg))[job_id]
        assert (row.status, row.locked_until) == ("pending", None)
        waits.append((row.due_at - clock.now).total_seconds())
        clock.now = row.due_at
    assert waits == [30, 60, 120, 120]

    with caplog.at_level(logging.ERROR, logger="engine.followup.reminders"):
        assert await worker.run_once() == 1
    row = (await job_rows(pg))[job_id]
    assert (row.status, row.attempts, row.last_error) == ("failed", 5, "timeout #5")
    assert f"reminder job {job_id} (before_24h, session 1) failed after 5 attempts" in caplog.text
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() -> None:
    settings = WorkerSettings(base_backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))
    plain = [backoff(n, settings, rand=lambda: 0.0).total_seconds() for n in range(1, 10)]
    assert plain == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(3, settings, rand=lambda: 1.0) == timedelta(seconds=120 * 0.8)
    assert backoff(10_000, settings) <= timedelta(hours=1)


async def test_a_job_whose_workers_keep_dying_is_failed_without_another_try(pg: Factory) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    clock = Clock()
    for _ in range(3):  # three claims whose workers never came back
        assert len(await claim(pg, clock.now)) == 1
        clock.advance(LEASE + timedelta(seconds=1))
    called: list[int] = []
    worker = Worker(pg, sends_into(called), WorkerSettings(max_attempts=3), clock)
    assert await worker.run_once() == 1
    row = (await job_rows(pg))[job_id]
    assert (row.status, row.attempts, called) == ("failed", 4, [])


async def test_a_handler_exception_is_retried_with_backoff_and_the_worker_keeps_running(
    pg: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    clock = Clock()
    stop = asyncio.Event()
    calls: list[datetime] = []

    async def flaky(job: ClaimedJob, now: datetime) -> Outcome:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("platform down")
        stop.set()
        return Sent()

    worker = Worker(pg, flaky, WorkerSettings(idle_sleep=0.01, jitter=0), clock)
    with caplog.at_level(logging.ERROR, logger="engine.followup.reminders"):
        task = asyncio.create_task(worker.run_forever(stop))
        for _ in range(200):
            if (await job_rows(pg))[job_id].last_error:
                break
            await asyncio.sleep(0.01)
        row = (await job_rows(pg))[job_id]
        assert (row.status, row.due_at) == ("pending", NOW + timedelta(seconds=30))
        assert row.last_error == "RuntimeError"  # the class only: error text may quote people
        await asyncio.sleep(0.03)  # a few idle passes: nothing due
        assert len(calls) == 1
        clock.advance(timedelta(seconds=30))
        await asyncio.wait_for(task, 5)
    assert "raised RuntimeError; retrying with backoff" in caplog.text
    assert (await job_rows(pg))[job_id].status == "sent"


async def test_skip_marks_the_job_skipped_with_its_reason(pg: Factory) -> None:
    [job_id] = await add_due_jobs(pg, 1)

    async def session_gone(job: ClaimedJob, now: datetime) -> Outcome:
        return Skip("session cancelled")

    worker = Worker(pg, session_gone, WorkerSettings(), Clock())
    assert await worker.run_once() == 1
    row = (await job_rows(pg))[job_id]
    assert (row.status, row.last_error, row.locked_until, row.sent_at) == (
        "skipped",
        "session cancelled",
        None,
        None,
    )
    assert await worker.run_once() == 0


# --- fencing ---------------------------------------------------------------------------------
async def test_completions_of_a_stale_claim_do_not_apply_after_a_reclaim(pg: Factory) -> None:
    await add_due_jobs(pg, 1)
    [stale] = await claim(pg, NOW)
    later = NOW + LEASE + timedelta(seconds=1)
    [fresh] = await claim(pg, later)
    assert (fresh.id, fresh.attempts) == (stale.id, stale.attempts + 1)

    async with pg() as session, session.begin():
        old = stale.attempts
        assert not await outbox.mark_sent(session, stale.id, now=later, attempt=old)
        assert not await outbox.mark_skipped(session, stale.id, reason="x", attempt=old)
        assert not await outbox.mark_failed(session, stale.id, error="x", attempt=old)
        assert not await outbox.retry_later(session, stale.id, at=later, error="x", attempt=old)
        assert not await outbox.release(session, stale.id, attempt=old)
    row = (await job_rows(pg))[stale.id]
    assert (row.status, row.locked_until, row.last_error) == ("pending", later + LEASE, None)

    async with pg() as session, session.begin():
        assert await outbox.mark_sent(session, fresh.id, now=later, attempt=fresh.attempts)
        assert not await outbox.mark_sent(session, fresh.id, now=later)  # done: no second mark
        assert not await outbox.retry_later(session, fresh.id, at=later, error="late")
    row = (await job_rows(pg))[fresh.id]
    assert (row.status, row.sent_at, row.last_error) == ("sent", later, None)


async def test_a_slow_worker_cannot_overwrite_the_worker_that_reclaimed_its_job(
    pg: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    [job_id] = await add_due_jobs(pg, 1)
    clock = Clock()
    release = asyncio.Event()
    claimed = asyncio.Event()

    async def slow_then_fails(job: ClaimedJob, now: datetime) -> Outcome:
        claimed.set()
        await release.wait()
        return Retry(None, "timed out")

    slow = asyncio.create_task(Worker(pg, slow_then_fails, WorkerSettings(), clock).run_once())
    await claimed.wait()
    clock.advance(LEASE + timedelta(seconds=1))
    fast: list[int] = []
    assert await Worker(pg, sends_into(fast), WorkerSettings(), clock).run_once() == 1
    release.set()
    with caplog.at_level(logging.WARNING, logger="engine.followup.reminders"):
        assert await slow == 1
    row = (await job_rows(pg))[job_id]
    assert (fast, row.status, row.last_error, row.attempts) == ([job_id], "sent", None, 2)
    assert "re-claimed meanwhile; Retry not recorded" in caplog.text


async def test_cancel_pending_cancels_only_that_sessions_unsent_jobs(pg: Factory) -> None:
    ids = await add_due_jobs(pg, 4)  # session 1: jobs 1-2, session 2: jobs 3-4
    in_flight = (await claim(pg, NOW, limit=1))[0]
    async with pg() as session, session.begin():
        assert await outbox.mark_sent(session, ids[1], now=NOW)  # already out: stays sent
    async with pg() as session, session.begin():
        assert await outbox.cancel_pending(session, 1) == 1
        assert await outbox.cancel_pending(session, 1) == 0
        assert not await outbox.mark_sent(
            session, in_flight.id, now=NOW, attempt=in_flight.attempts
        )
    rows = await job_rows(pg)
    assert [rows[i].status for i in ids] == ["cancelled", "sent", "pending", "pending"]
    assert [job.id for job in await claim(pg, NOW + LEASE * 2)] == ids[2:]


# --- pacing ----------------------------------------------------------------------------------
async def test_pacer_spaces_sends_per_chat_and_overall_on_a_fake_clock() -> None:
    fake = FakeTime()
    pacer = Pacer(per_second=10, per_chat_interval=1.0, clock=fake, sleep=fake.sleep)
    one_chat = []
    for _ in range(4):
        await pacer.wait("chat-1")
        one_chat.append(fake.now)
    assert [b - a for a, b in pairwise(one_chat)] == pytest.approx([1.0] * 3)

    many_chats = []
    for n in range(5):
        await pacer.wait(f"chat-{n + 2}")
        many_chats.append(fake.now)
    gaps = [b - a for a, b in pairwise(many_chats)]
    assert gaps == pytest.approx([0.1] * 4)

    pacer.pause(5.0)
    paused_at = fake.now
    await pacer.wait("chat-99")
    assert fake.now == pytest.approx(paused_at + 5.0)


async def test_pacer_limits_concurrent_senders_in_real_time() -> None:
    pacer = Pacer(per_second=50, per_chat_interval=0.06)
    stamps: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    every: list[float] = []

    async def send(chat: str) -> None:
        await pacer.wait(chat)
        moment = time.monotonic()
        stamps[chat].append(moment)
        every.append(moment)

    await asyncio.gather(*(send(chat) for _ in range(4) for chat in stamps))
    slack = 1e-3
    for chat_stamps in stamps.values():
        assert all(b - a >= 0.06 - slack for a, b in pairwise(chat_stamps))
    every.sort()
    assert all(b - a >= 0.02 - slack for a, b in pairwise(every))

    pacer.pause(0.05)
    start = time.monotonic()
    await pacer.wait("d")
    assert time.monotonic() - start >= 0.05 - slack


async def test_worker_paces_sends_and_a_retry_after_pauses_all_of_them(pg: Factory) -> None:
    await add_due_jobs(pg, 3)
    fake = FakeTime()
    pacer = Pacer(per_second=1000, per_chat_interval=1.0, clock=fake, sleep=fake.sleep)
    outcomes: list[Outcome] = [Retry(timedelta(seconds=7), "429"), Sent(), Sent()]

    async def handler(job: ClaimedJob, now: datetime) -> Outcome:
        return outcomes.pop(0)

    worker = Worker(pg, handler, WorkerSettings(), Clock(), pacer, chat_key=lambda job: "one")
    assert await worker.run_once() == 3
    assert fake.sleeps == pytest.approx([7.0, 1.0])  # the 429's pause, then the chat's interval


async def test_a_batch_held_past_half_its_lease_hands_back_the_untried_jobs(pg: Factory) -> None:
    ids = await add_due_jobs(pg, 3)
    clock = Clock()
    fake = FakeTime(on_sleep=lambda seconds: clock.advance(timedelta(seconds=seconds)))
    pacer = Pacer(per_second=1000, per_chat_interval=0, clock=fake, sleep=fake.sleep)

    async def rate_limited(job: ClaimedJob, now: datetime) -> Outcome:
        return Retry(LEASE, "429: retry after 120")

    worker = Worker(pg, rate_limited, WorkerSettings(lease=LEASE), clock, pacer)
    assert await worker.run_once() == 1
    rows = await job_rows(pg)
    assert (rows[ids[0]].due_at, rows[ids[0]].last_error) == (NOW + LEASE, "429: retry after 120")
    # The rest are free for any worker now, not only when the lease runs out; still due as before.
    assert [(rows[i].status, rows[i].locked_until) for i in ids[1:]] == [("pending", None)] * 2
    assert [rows[i].due_at for i in ids[1:]] == [
        NOW - timedelta(seconds=2),
        NOW - timedelta(seconds=1),
    ]


async def test_stopping_run_forever_hands_back_the_rest_of_the_batch(pg: Factory) -> None:
    ids = await add_due_jobs(pg, 3)
    stop = asyncio.Event()

    async def stopped_after_one(job: ClaimedJob, now: datetime) -> Outcome:
        stop.set()
        return Sent()

    worker = Worker(pg, stopped_after_one, WorkerSettings(), Clock())
    await asyncio.wait_for(worker.run_forever(stop), 5)
    rows = await job_rows(pg)
    assert [(rows[i].status, rows[i].locked_until) for i in ids] == [
        ("sent", None),
        ("pending", None),
        ("pending", None),
    ]


# --- SQLite ----------------------------------------------------------------------------------
async def test_claim_works_on_sqlite_without_for_update(sqlite: Factory) -> None:
    ids = await add_due_jobs(sqlite, 60)
    with statements_sent(sqlite) as seen:
        claimed = await claim(sqlite, NOW, limit=5)
    assert [job.id for job in claimed] == ids[:5]
    assert claimed[0].due_at == NOW - timedelta(seconds=60)
    assert claimed[0].attempts == 1
    [sql] = [sql for sql in seen if sql.lstrip().upper().startswith("UPDATE")]
    assert "FOR UPDATE" not in sql.upper() and "SKIP LOCKED" not in sql.upper()
    assert await claim(sqlite, NOW, limit=5) != claimed  # leased ones are skipped

    first: list[int] = []
    second: list[int] = []
    settings = WorkerSettings(batch=10)
    clock = Clock(NOW + LEASE * 2)
    await asyncio.gather(
        drain(Worker(sqlite, sends_into(first), settings, clock)),
        drain(Worker(sqlite, sends_into(second), settings, clock)),
    )
    assert sorted(first + second) == ids
    assert Counter(row.status for row in (await job_rows(sqlite)).values()) == {"sent": 60}
