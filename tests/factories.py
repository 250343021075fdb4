"""Builders for test data: a small campus with a course, STs, a student and weekly hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Availability, Course, Enrollment, StudentTeacher, User

# A Wednesday morning; every test clock starts here unless it says otherwise.
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@dataclass
class World:
    course: Course
    teachers: list[User]
    student: User
    other_course: Course


async def add_user(
    session: AsyncSession, name: str, timezone: str = "UTC", locale: str = "en"
) -> User:
    user = User(
        name=name,
        email=f"{name.lower().replace(' ', '.')}@example.edu",
        timezone=timezone,
        locale=locale,
    )
    session.add(user)
    await session.flush()
    return user


async def add_teacher(
    session: AsyncSession,
    course: Course,
    name: str,
    timezone: str = "UTC",
    hours: tuple[time, time] = (time(9, 0), time(17, 0)),
    days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6),
    **settings: object,
) -> User:
    teacher = await add_user(session, name, timezone)
    session.add(StudentTeacher(user_id=teacher.id, course_id=course.id, **settings))
    for day in days:
        session.add(
            Availability(
                user_id=teacher.id,
                day_of_week=day,
                start_time=hours[0],
                end_time=hours[1],
                timezone=timezone,
            )
        )
    await session.flush()
    return teacher


async def enroll(session: AsyncSession, student: User, course: Course) -> None:
    session.add(Enrollment(student_id=student.id, course_id=course.id))
    await session.flush()


async def make_world(
    factory: async_sessionmaker[AsyncSession],
    *,
    teachers: int = 2,
    session_count: int = 8,
    student_timezone: str = "UTC",
    student_locale: str = "en",
) -> World:
    async with factory() as session, session.begin():
        course = Course(slug="calculus-1", title="Calculus I", session_count=session_count)
        other = Course(slug="organic-chemistry", title="Organic Chemistry", session_count=4)
        session.add_all([course, other])
        await session.flush()
        names = ["Ada Lovelace", "Bob Brown", "Chen Wei", "Dana Scully"]
        staff = [await add_teacher(session, course, names[i]) for i in range(teachers)]
        student = await add_user(session, "Sam Student", student_timezone, student_locale)
        await enroll(session, student, course)
        return World(course, staff, student, other)
