"""Realistic demo data for the local terminal chat: courses, STs in several zones, a student.

Existing sessions are placed relative to "now" so the demo always shows a partly booked week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Availability,
    AvailabilityOverride,
    ChatIdentity,
    Course,
    Enrollment,
    Session,
    StudentTeacher,
    User,
)

DEMO_STUDENT_EMAIL = "alex.kim@student.example.edu"

COURSES = [
    # slug, title, session_count, minutes
    ("calculus-1", "Calculus I", 8, 60),
    ("intro-programming", "Intro to Programming", 10, 45),
    ("organic-chemistry", "Organic Chemistry", 6, 60),
    ("academic-writing", "Academic Writing", 4, 30),
]

# name, email, zone, locale, weekly windows (weekday, start, end), courses taught
TEACHERS = [
    (
        "Priya Sharma",
        "priya.sharma@student.example.edu",
        "Asia/Kolkata",
        "en_IN",
        [(d, time(17, 0), time(21, 30)) for d in range(0, 5)],
        ["calculus-1", "organic-chemistry"],
    ),
    (
        "Lukas Becker",
        "lukas.becker@student.example.edu",
        "Europe/Berlin",
        "de_DE",
        [(d, time(9, 0), time(13, 0)) for d in (0, 2, 4)] + [(5, time(10, 0), time(14, 0))],
        ["calculus-1", "intro-programming"],
    ),
    (
        "Maya Johnson",
        "maya.johnson@student.example.edu",
        "America/New_York",
        "en_US",
        [(d, time(18, 0), time(0, 0)) for d in (1, 3)] + [(4, time(22, 0), time(2, 0))],
        ["intro-programming", "calculus-1"],
    ),
    (
        "Kenji Tanaka",
        "kenji.tanaka@student.example.edu",
        "Asia/Tokyo",
        "ja_JP",
        [(d, time(8, 0), time(11, 0)) for d in range(0, 6)],
        ["organic-chemistry"],
    ),
]


@dataclass(frozen=True)
class DemoIds:
    student_id: int
    other_student_id: int


async def load_demo(session: AsyncSession, now: datetime) -> DemoIds:
    """Idempotent: a database that already has the demo student is left as it is."""
    existing = await session.scalar(select(User).where(User.email == DEMO_STUDENT_EMAIL))
    if existing is not None:
        other_id = await session.scalar(
            select(User.id).where(User.email == "sam.rivera@student.example.edu")
        )
        return DemoIds(existing.id, int(other_id or 0))

    courses = {
        slug: Course(slug=slug, title=title, session_count=count, session_minutes=minutes)
        for slug, title, count, minutes in COURSES
    }
    session.add_all(courses.values())
    student = User(
        name="Alex Kim",
        email=DEMO_STUDENT_EMAIL,
        timezone="Europe/London",
        locale="en_GB",
        avatar=None,
    )
    other = User(
        name="Sam Rivera",
        email="sam.rivera@student.example.edu",
        timezone="America/Chicago",
        locale="en_US",
    )
    session.add_all([student, other])
    await session.flush()

    for slug in ("calculus-1", "intro-programming", "academic-writing"):
        session.add(Enrollment(student_id=student.id, course_id=courses[slug].id))
    for slug in courses:
        session.add(Enrollment(student_id=other.id, course_id=courses[slug].id))
    session.add(ChatIdentity(platform="console", external_id="demo", user_id=student.id))

    teachers: list[User] = []
    for name, email, zone, locale, windows, taught in TEACHERS:
        slug_name = name.split()[0].lower()
        teacher = User(
            name=name,
            email=email,
            timezone=zone,
            locale=locale,
            avatar=f"https://tutoring.example.edu/avatars/{slug_name}.jpg",
        )
        session.add(teacher)
        await session.flush()
        teachers.append(teacher)
        for slug in taught:
            session.add(StudentTeacher(user_id=teacher.id, course_id=courses[slug].id))
        for weekday, start, end in windows:
            session.add(
                Availability(
                    user_id=teacher.id,
                    day_of_week=weekday,
                    start_time=start,
                    end_time=end,
                    timezone=zone,
                )
            )
    # Academic Writing has an ST who is on leave: the "No STs available" state.
    writer = User(
        name="Noor Haddad",
        email="noor.haddad@student.example.edu",
        timezone="Asia/Dubai",
        locale="en",
    )
    session.add(writer)
    # Campus staff: the platform's data marks coordinators; the Slack app will let them act
    # for students. Stored and shown in the user's record only, for now.
    session.add(
        User(
            name="Dana Okafor",
            email="dana.okafor@staff.example.edu",
            timezone="Europe/London",
            locale="en",
            is_coordinator=True,
        )
    )
    await session.flush()
    session.add(
        StudentTeacher(user_id=writer.id, course_id=courses["academic-writing"].id, is_active=False)
    )

    # Lukas takes next Friday off; Priya has special hours the day after tomorrow.
    berlin_today = now.astimezone(ZoneInfo("Europe/Berlin")).date()
    session.add(
        AvailabilityOverride(
            user_id=teachers[1].id,
            date=_next_weekday(berlin_today, 4),
            timezone="Europe/Berlin",
        )
    )
    session.add(
        AvailabilityOverride(
            user_id=teachers[0].id,
            date=now.astimezone(ZoneInfo("Asia/Kolkata")).date() + timedelta(days=2),
            start_time=time(10, 0),
            end_time=time(12, 0),
            timezone="Asia/Kolkata",
        )
    )
    await session.flush()
    _book_existing(session, now, other, teachers, courses)
    await session.flush()
    return DemoIds(student.id, other.id)


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7 or 7)


def _book_existing(
    session: AsyncSession,
    now: datetime,
    other: User,
    teachers: list[User],
    courses: dict[str, Course],
) -> None:
    """Sam already booked a few sessions, so some of the STs' slots are taken."""
    plan = [
        (teachers[0], "calculus-1", 1, time(18, 0)),
        (teachers[1], "intro-programming", 2, time(10, 0)),
        (teachers[2], "intro-programming", 3, time(19, 0)),
        (teachers[3], "organic-chemistry", 4, time(9, 0)),
    ]
    taken: list[tuple[datetime, datetime]] = []
    for teacher, slug, days_ahead, at in plan:
        zone = ZoneInfo(teacher.timezone)
        day = now.astimezone(zone).date() + timedelta(days=days_ahead)
        start = datetime.combine(day, at, zone).astimezone(ZoneInfo("UTC"))
        course = courses[slug]
        length = timedelta(minutes=course.session_minutes)
        # The STs' zones make "day N at HH:00" the same UTC hour on some days and at some
        # times of day: the student cannot be in two sessions, so move on by the hour.
        while any(
            start < busy_end and busy_start < start + length for busy_start, busy_end in taken
        ):
            start += timedelta(hours=1)
        end = start + length
        taken.append((start, end + timedelta(minutes=15)))
        session.add(
            Session(
                course_id=course.id,
                student_id=other.id,
                teacher_id=teacher.id,
                scheduled_start=start,
                scheduled_end=end,
                blocked_until=end + timedelta(minutes=15),
                status="scheduled",
                reminders=True,
                created_via="web",
            )
        )
