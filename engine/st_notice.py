"""What an ST is told about a new booking, in the ST's own zone and locale."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import messages as m
from engine.formatting import format_datetime_long, normalize_locale
from storage.repositories import Repo


@dataclass(frozen=True)
class Notice:
    platform: str
    chat_id: str
    text: str


async def booking_notices(
    factory: async_sessionmaker[AsyncSession], session_id: int
) -> list[Notice]:
    """One notice per chat account the ST has linked; none when the ST has no chat account."""
    async with factory() as session:
        repo = Repo(session)
        booked = await repo.session_by_id(session_id)
        if booked is None or booked.teacher_id is None or booked.scheduled_start is None:
            return []
        teacher = await repo.user(booked.teacher_id)
        student = await repo.user(booked.student_id)
        course = await repo.course(booked.course_id)
        identities = await repo.identities_of(booked.teacher_id)
    assert teacher is not None and student is not None and course is not None
    when = format_datetime_long(
        booked.scheduled_start, teacher.timezone, normalize_locale(teacher.locale)
    )
    lines = [m.ST_NEW_BOOKING.format(student=student.name, course=course.title, when=when)]
    if booked.note:
        lines.append(m.ST_NOTE.format(student=student.name, note=booked.note))
    text = "\n".join(lines)
    return [Notice(i.platform, i.chat_id, text) for i in identities if i.chat_id]
