"""The data every benchmark books against: courses, STs with weekly hours, enrolled students and
sessions already on the calendars.

One set of helpers for the engine benchmarks (`run.py`) and the chat benchmarks (`chat.py`), so
an ST or an enrollment is made the same way everywhere and a model change is followed once.
Every campus carries a `tag` in its slugs and e-mail addresses: several campuses share one
database (one per chat run), and a worker process finds its campus by the tag alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Availability, Course, Enrollment, Session, StudentTeacher, User

Factory = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday morning in the first week of term
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney")
WEEKDAYS = range(5)
ALL_WEEK = range(7)
OFFICE_HOURS = (clock(9, 0), clock(17, 0))
ALL_DAY = (clock(0, 0), clock(0, 0))  # end <= start: the whole day


async def add_course(session: AsyncSession, slug: str, title: str, sessions: int = 10_000) -> int:
    """A course whose session allowance never stops a benchmark's student from booking again."""
    course = Course(slug=slug, title=title, session_count=sessions)
    session.add(course)
    await session.flush()
    return course.id


async def add_people(session: AsyncSession, people: Sequence[tuple[str, str, str]]) -> list[int]:
    """Users from (name, e-mail, time zone), flushed so that their ids can be used."""
    users = [User(name=name, email=email, timezone=zone) for name, email, zone in people]
    session.add_all(users)
    await session.flush()
    return [user.id for user in users]


def add_st(
    session: AsyncSession,
    teacher: int,
    course: int,
    zone: str,
    *,
    days: Iterable[int] = WEEKDAYS,
    hours: tuple[clock, clock] = OFFICE_HOURS,
    buffer_minutes: int = 15,
) -> None:
    """`teacher` teaches `course` on `days` between `hours`, in their own zone."""
    session.add(StudentTeacher(user_id=teacher, course_id=course, buffer_minutes=buffer_minutes))
    session.add_all(
        Availability(
            user_id=teacher, day_of_week=d, start_time=hours[0], end_time=hours[1], timezone=zone
        )
        for d in days
    )


def enroll(session: AsyncSession, students: Iterable[int], course: int) -> None:
    session.add_all(Enrollment(student_id=s, course_id=course) for s in students)


def add_session(
    session: AsyncSession, course: int, student: int, teacher: int, start: datetime
) -> None:
    """A scheduled one-hour session (with the default 15-minute buffer) booked on the web."""
    session.add(
        Session(
            course_id=course,
            student_id=student,
            teacher_id=teacher,
            scheduled_start=start,
            scheduled_end=start + timedelta(hours=1),
            blocked_until=start + timedelta(hours=1, minutes=15),
            status="scheduled",
            reminders=True,
            created_via="web",
            created_by=student,
        )
    )


# --- the campus the chats book on -----------------------------------------------------------------
COURSES = 4


@dataclass(frozen=True)
class Campus:
    courses: list[int]
    students: list[tuple[int, int]]  # (student, a course they are enrolled in)
    teachers: list[int]


STS, STUDENTS, SESSIONS = 20, 300, 300
CAMPUS = (
    f"{STS} STs in {len(ZONES)} zones, {COURSES} courses, {STUDENTS} students in 3 zones, "
    f"{SESSIONS} sessions booked"
)


async def seed_campus(
    factory: Factory,
    tag: str,
    *,
    sts: int = STS,
    students: int = STUDENTS,
    sessions: int = SESSIONS,
) -> Campus:
    """The first week of term: STs in five zones teaching four courses, weekdays 9-17 in their
    own zone; students in three zones enrolled in one or two courses; `sessions` already booked
    over the next three weeks (on even UTC hours, one per ST and per student an hour)."""
    rng = random.Random(7)
    async with factory() as session, session.begin():
        courses = [
            await add_course(session, f"{tag}-course-{i}", f"Course {i}") for i in range(COURSES)
        ]
        teachers = await add_people(
            session,
            [(f"ST {tag}{i}", f"st{i}@{tag}.bench", ZONES[i % len(ZONES)]) for i in range(sts)],
        )
        people = await add_people(
            session,
            [(f"Student {tag}{i}", f"s{i}@{tag}.bench", ZONES[i % 3]) for i in range(students)],
        )
        for i, teacher in enumerate(teachers):
            add_st(session, teacher, courses[i % COURSES], ZONES[i % len(ZONES)])
        enrolled: list[tuple[int, int]] = []
        for i, person in enumerate(people):
            for course in sorted({courses[i % COURSES], courses[rng.randrange(COURSES)]}):
                enroll(session, [person], course)
                enrolled.append((person, course))
        await session.flush()
        used: set[tuple[int, datetime]] = set()
        placed = 0
        while placed < sessions:
            i = rng.randrange(sts)
            course = courses[i % COURSES]
            student, _ = rng.choice([e for e in enrolled if e[1] == course])
            start = NOW + timedelta(hours=2 * rng.randrange(12 * 21))
            if (teachers[i], start) in used or (student, start) in used:
                continue
            used |= {(teachers[i], start), (student, start)}
            add_session(session, course, student, teachers[i], start)
            placed += 1
    return Campus(courses, enrolled, teachers)


async def load_campus(factory: Factory, tag: str) -> Campus:
    """The campus `seed_campus` made with `tag`, as a worker process finds it."""
    async with factory() as session:
        courses = (
            await session.scalars(
                text("SELECT id FROM courses WHERE slug LIKE :p ORDER BY id"),
                {"p": f"{tag}-course-%"},
            )
        ).all()
        teachers = (
            await session.scalars(
                text("SELECT id FROM users WHERE email LIKE :p ORDER BY id"),
                {"p": f"st%@{tag}.bench"},
            )
        ).all()
        rows = (
            await session.execute(
                text(
                    "SELECT e.student_id, e.course_id FROM enrollments e JOIN users u"
                    " ON u.id = e.student_id WHERE u.email LIKE :p ORDER BY e.id"
                ),
                {"p": f"s%@{tag}.bench"},
            )
        ).all()
    return Campus(list(courses), [(int(s), int(c)) for s, c in rows], list(teachers))


# --- the first screen with 5 and with 50 STs ------------------------------------------------------
async def seed_first_screen(
    factory: Factory, st_counts: Sequence[int], *, students: int, sessions_per_st: int
) -> tuple[list[int], dict[int, int]]:
    """One course per ST count, with the same students enrolled in all of them and the same
    calendar for the k-th ST of every course (zone, hours, `sessions_per_st` sessions at the same
    local times), so that the courses differ only in how many STs they have.

    The sessions are held by a student of their own per ST, so the measured students' calendars
    stay identical (empty) across the courses. Returns the students and {ST count: course}.
    """
    async with factory() as session, session.begin():
        measured = await add_people(
            session,
            [(f"First {i}", f"first{i}@first.bench", ZONES[i % 3]) for i in range(students)],
        )
        courses: dict[int, int] = {}
        for count in st_counts:
            course = await add_course(session, f"first-{count}", f"{count} STs")
            courses[count] = course
            enroll(session, measured, course)
            teachers = await add_people(
                session,
                [
                    (f"ST {count}.{k}", f"st{k}@first{count}.bench", ZONES[k % 5])
                    for k in range(count)
                ],
            )
            holders = await add_people(
                session,
                [(f"Busy {count}.{k}", f"b{k}@first{count}.bench", "UTC") for k in range(count)],
            )
            enroll(session, holders, course)
            for k, (teacher, holder) in enumerate(zip(teachers, holders, strict=True)):
                zone = ZONES[k % 5]
                add_st(session, teacher, course, zone)
                for start in _local_starts(zone, sessions_per_st):
                    add_session(session, course, holder, teacher, start)
    return measured, courses


def _local_starts(zone: str, count: int) -> list[datetime]:
    """`count` one-hour sessions inside weekday office hours of `zone`, from tomorrow on: the
    same local times for every ST of that zone."""
    starts: list[datetime] = []
    day = NOW.date() + timedelta(days=1)
    while len(starts) < count:
        if day.weekday() < 5:
            for hour in (10, 13, 15):
                if len(starts) < count:
                    starts.append(_at(day, hour, zone))
        day += timedelta(days=1)
    return starts


def _at(day: date, hour: int, zone: str) -> datetime:
    return datetime.combine(day, clock(hour), tzinfo=ZoneInfo(zone)).astimezone(UTC)


# --- one slot, many students ----------------------------------------------------------------------
async def seed_race(factory: Factory, tag: str, racers: int) -> tuple[int, int, list[int]]:
    """A course with one ST (every day, all day, UTC) and `racers` enrolled students with empty
    calendars: (course, ST, students)."""
    async with factory() as session, session.begin():
        course = await add_course(session, f"race-{tag}", f"Race {tag}", sessions=10)
        (teacher,) = await add_people(session, [(f"Racing ST {tag}", f"st@{tag}.race", "UTC")])
        add_st(session, teacher, course, "UTC", days=ALL_WEEK, hours=ALL_DAY)
        students = await add_people(
            session, [(f"Racer {i}", f"r{i}@{tag}.race", "UTC") for i in range(racers)]
        )
        enroll(session, students, course)
    return course, teacher, students
