"""The data `bookbot bench load` starts from: a campus whose students hold signed deep links,
coordinators known to Slack by e-mail, and, for the reminder part, 10,000 reminders due at once.

The campus is `benchmarks/seeding.py`'s (STs in five zones, four courses, sessions already
booked), so the load benchmark books against the same calendars as the chat benchmark. Deep links
are minted exactly as `bookbot link` mints them (`Accounts.mint_payload`), with the run's secret.
The reminders are written in bulk: each is a session of its own an hour short of a day away, with
a due "24 hours before" reminder for its student, whose only chat is a Telegram chat of their
own (so Telegram's one-message-a-second per chat never paces them, only the per-bot rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, text

from benchmarks.seeding import Factory, add_course, add_people, enroll, seed_campus
from engine.accounts import Accounts
from engine.settings import Settings
from storage.models import ChatIdentity, Course, ReminderJob, Session, User

STUDENT_CHATS = 10_000_000  # Telegram user (and chat) ids of the simulated students start here
REMINDER_CHATS = 20_000_000  # and those of the reminders' students here
REMINDER_STS = 100


@dataclass(frozen=True)
class Student:
    """A simulated student: their Telegram account and the deep link's start payload."""

    user_id: int
    telegram_id: int
    payload: str


async def seed_students(
    factory: Factory, link_secret: str, tag: str, count: int, now: datetime
) -> list[Student]:
    """`count` students of a fresh campus, each with a link to one of their courses."""
    campus = await seed_campus(factory, tag, students=count)
    async with factory() as session:
        slugs = dict((await session.execute(select(Course.id, Course.slug))).tuples().all())
    accounts = Accounts(factory, Settings(link_secret=link_secret))
    first: dict[int, int] = {}
    for student, course in campus.students:
        first.setdefault(student, course)
    return [
        Student(
            student,
            STUDENT_CHATS + i,
            await accounts.mint_payload(student, slugs[course], None, "SDSH", now),
        )
        for i, (student, course) in enumerate(sorted(first.items()))
    ]


@dataclass(frozen=True)
class Coordinator:
    slack_id: str
    email: str
    name: str


async def seed_coordinators(factory: Factory, tag: str, count: int) -> list[Coordinator]:
    """Campus staff allowed to book for students; Slack finds them by their e-mail address."""
    people = [
        Coordinator(f"U0CO{i:05d}", f"coordinator{i}@{tag}.bench", f"Coordinator {tag}{i}")
        for i in range(count)
    ]
    async with factory() as session, session.begin():
        ids = await add_people(session, [(c.name, c.email, "UTC") for c in people])
        await session.execute(
            text("UPDATE users SET is_coordinator = true WHERE id = ANY(:ids)"), {"ids": ids}
        )
    return people


async def seed_reminders(factory: Factory, count: int, now: datetime) -> list[int]:
    """`count` sessions with a student reminder due now; returns the students' chat ids."""
    start = now + timedelta(hours=23)
    async with factory() as session, session.begin():
        course = await add_course(session, "reminders", "Reminders")
        teachers = await add_people(
            session,
            [(f"Reminding ST {i}", f"st{i}@reminders.bench", "UTC") for i in range(REMINDER_STS)],
        )
        students = list(
            (
                await session.scalars(
                    insert(User).returning(User.id),
                    [
                        {"name": f"Reminded {i}", "email": f"r{i}@reminders.bench"}
                        for i in range(count)
                    ],
                )
            ).all()
        )
        enroll(session, students, course)
        chats = [REMINDER_CHATS + i for i in range(count)]
        await session.execute(
            insert(ChatIdentity),
            [
                {
                    "platform": "telegram",
                    "external_id": str(chat),
                    "chat_id": str(chat),
                    "user_id": student,
                }
                for chat, student in zip(chats, students, strict=True)
            ],
        )
        # One ST holds a session every two hours: no ST and no student is ever double-booked.
        sessions = list(
            (
                await session.scalars(
                    insert(Session).returning(Session.id),
                    [
                        {
                            "course_id": course,
                            "student_id": student,
                            "teacher_id": teachers[i % REMINDER_STS],
                            "scheduled_start": start + timedelta(hours=2 * (i // REMINDER_STS)),
                            "scheduled_end": start + timedelta(hours=2 * (i // REMINDER_STS) + 1),
                            "blocked_until": start + timedelta(hours=2 * (i // REMINDER_STS) + 1),
                            "status": "scheduled",
                            "reminders": True,
                            "created_via": "web",
                        }
                        for i, student in enumerate(students)
                    ],
                )
            ).all()
        )
        await session.execute(
            insert(ReminderJob),
            [
                {
                    "session_id": s,
                    "kind": "student:before_24h",
                    "due_at": now - timedelta(minutes=1),
                    "status": "pending",
                    "attempts": 0,
                }
                for s in sessions
            ],
        )
    return chats


async def reminder_statuses(factory: Factory) -> dict[str, int]:
    async with factory() as session:
        rows = await session.execute(
            text("SELECT status, count(*) FROM reminder_jobs GROUP BY status")
        )
        return {str(status): int(n) for status, n in rows.tuples().all()}
