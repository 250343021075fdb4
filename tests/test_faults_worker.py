"""A `bookbot worker` process killed with SIGKILL in the middle of a batch of reminders.

The worker runs as a real process (its own database pool, its own PTB Bot) against the fake
Bot API, which answers slowly so that the kill lands mid-batch. The kill comes exactly when
one message has reached Telegram but its answer has not reached the worker (the fake holds
that answer back): the one repeat the outbox cannot avoid, since "sent" is written after the
platform accepted the message. Another worker then sends every row the dead one left, once
its lease (WORKER_LEASE_SECONDS, short here) has run out: nothing is lost, and the repeats are
counted, one per send in flight at the kill (the worker sends one message at a time).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from engine.clock import utc_now
from engine.settings import Settings
from storage.jobs import Job
from storage.models import ReminderJob, Session
from storage.repositories import Repo
from tests.factories import add_user, make_world
from tests.fake_telegram import Call, FakeTelegram
from tests.test_telegram import platforms_of, start_bot

Factory = async_sessionmaker[AsyncSession]
SESSIONS = cast(Table, Session.__table__)
JOBS = cast(Table, ReminderJob.__table__)
STUDENTS = 30
FIRST_CHAT = 8100
LEASE_SECONDS = 4  # the kill comes well inside the first half, when a worker stops starting sends
STRONG_SECRET = "a-link-secret-of-more-than-32-bytes-for-this-test"
REMINDER = Job.reminder("student", timedelta(hours=1)).format()


async def due_reminders(
    db: Factory,
    chats: list[str],
    now: datetime,
    platform: str = "telegram",
    accounts: list[str] | None = None,
) -> dict[int, str]:
    """One due reminder per student, each in a chat of its own: {job id: chat id}.

    The sessions are hours after `now` (for the worker process: the real clock), the reminders
    an hour before, already due. `accounts`: the platform's user ids (default: the chat ids).
    """
    world = await make_world(db, teachers=1)
    async with db() as session, session.begin():
        repo = Repo(session)
        students = [await add_user(session, f"Student Number{n}") for n in range(len(chats))]
        for student, account, chat in zip(students, accounts or chats, chats, strict=True):
            await repo.link_identity(platform, account, student.id, chat)
        starts = [now + timedelta(hours=2 + n) for n in range(len(chats))]
        rows = [
            {
                "course_id": world.course.id,
                "student_id": student.id,
                "teacher_id": world.teachers[0].id,
                "scheduled_start": start,
                "scheduled_end": start + timedelta(minutes=30),
                "blocked_until": start + timedelta(minutes=45),
                "status": "scheduled",
                "reminders": True,
                "created_via": "test",
            }
            for student, start in zip(students, starts, strict=True)
        ]
        result = await session.execute(
            insert(SESSIONS).returning(SESSIONS.c.id, sort_by_parameter_order=True), rows
        )
        session_ids = list(result.scalars())
        jobs = [
            {
                "session_id": session_id,
                "kind": REMINDER,
                "due_at": now - timedelta(minutes=1, seconds=len(chats) - n),
            }
            for n, session_id in enumerate(session_ids)
        ]
        ids = await session.execute(
            insert(JOBS).returning(JOBS.c.id, sort_by_parameter_order=True), jobs
        )
        return dict(zip(ids.scalars(), chats, strict=True))


async def statuses(db: Factory) -> Counter[str]:
    async with db() as session:
        return Counter((await session.scalars(select(JOBS.c.status))).all())


async def unsent(db: Factory) -> dict[int, int]:
    """The rows not sent yet, with how often each was claimed."""
    async with db() as session:
        rows = await session.execute(
            select(JOBS.c.id, JOBS.c.attempts).where(JOBS.c.status != "sent")
        )
        return {job_id: attempts for job_id, attempts in rows.all()}


def worker_process(fake: FakeTelegram, pg_url: str, folder: Path) -> subprocess.Popen[bytes]:
    """`bookbot worker` in a folder of its own (no .env), Telegram its only platform."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "DATABASE_URL": pg_url,
        "LINK_SECRET": STRONG_SECRET,
        "TELEGRAM_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.base_url,
        "TELEGRAM_FILE_URL": fake.base_file_url,
        "WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "LOG_LEVEL": "INFO",
    }
    log = (folder / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "bots.launcher", "worker"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def received(fake: FakeTelegram) -> Counter[str]:
    """Messages each chat got (what a student saw), whoever sent them."""
    return Counter(str(call.params["chat_id"]) for call in fake.calls_to("sendMessage") if call.ok)


async def test_a_worker_killed_mid_batch_loses_no_reminder_and_repeats_only_the_one_in_flight(
    pg: Factory, pg_url: str, tmp_path: Path
) -> None:
    chats = await due_reminders(pg, [str(FIRST_CHAT + n) for n in range(STUDENTS)], utc_now())
    async with FakeTelegram() as fake:
        for chat in chats.values():
            fake.user(int(chat))
        fake.slow_down("sendMessage", 0.2)  # a batch takes seconds: the kill lands inside it
        first = worker_process(fake, pg_url, tmp_path)
        try:
            await fake.wait_until(lambda: sum(received(fake).values()) >= 5, 60)
            # The next message reaches the chat, but its answer is held until the kill.
            reached = asyncio.Event()
            held: list[Call] = []

            def hold(call: Call) -> None:
                held.append(call)
                reached.set()

            fake.on_next("sendMessage", hold)
            fake.delay_next("sendMessage", 60, accepted=True)
            await asyncio.wait_for(reached.wait(), 30)
            await fake.wait_until(lambda: held[0].ok, 30)
        finally:
            first.send_signal(signal.SIGKILL)
            assert first.wait(30) == -signal.SIGKILL, (tmp_path / "worker.log").read_text()
        fake.slow_down("sendMessage", 0)

        left = await unsent(pg)
        assert left, "the kill came after the batch"  # mid-batch indeed
        in_flight = 1  # the killed worker's sends in flight: it sends one message at a time

        bot = await start_bot(fake, pg)
        settings = Settings(link_secret=STRONG_SECRET, worker_lease_seconds=LEASE_SECONDS)
        second = build_worker(settings, pg, platforms_of(bot.app, fake), utc_now, email=None)
        stop = asyncio.Event()
        running = asyncio.create_task(second.run_forever(stop))
        try:
            for _ in range(600):
                if (await statuses(pg))["sent"] == len(chats):
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
            await bot.app.shutdown()

    assert await statuses(pg) == Counter({"sent": len(chats)}), "a reminder was lost"
    got = received(fake)
    assert set(got) == set(chats.values())  # every student got the reminder
    repeats = sum(count - 1 for count in got.values())
    # The known repeat: the held message went out twice, to the chat it was for; no other.
    assert repeats == in_flight
    assert got[str(held[0].params["chat_id"])] == 2
    async with pg() as session:
        attempts = dict((await session.execute(select(JOBS.c.id, JOBS.c.attempts))).all())
    # Each row the dead worker left was claimed again, by the other worker, and sent.
    assert all(attempts[job_id] > claims for job_id, claims in left.items())


@pytest.fixture(autouse=True)
def _no_dotenv_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings() in this process must not read the checkout's .env either."""
    monkeypatch.chdir(tmp_path)
