"""/mysessions: the student's upcoming sessions, in their zone and locale."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import messages as m
from engine.formatting import format_datetime_long, normalize_locale
from engine.screens import Screen
from storage.repositories import Repo


async def my_sessions(
    factory: async_sessionmaker[AsyncSession], user_id: int, now: datetime
) -> Screen:
    async with factory() as session:
        repo = Repo(session)
        user = await repo.user(user_id)
        if user is None:
            raise LookupError(f"no user {user_id}")
        rows = await repo.upcoming_with_names(user_id, now)
    locale = normalize_locale(user.locale)
    lines = []
    for booked, course, teacher in rows:
        if booked.scheduled_start is None or teacher is None:
            lines.append(m.UNSCHEDULED_LINE.format(course=course.title, slug=course.slug))
        else:
            when = format_datetime_long(booked.scheduled_start, user.timezone, locale)
            lines.append(m.UPCOMING_LINE.format(when=when, course=course.title, name=teacher.name))
    return Screen("my_sessions", m.MY_SESSIONS_TITLE, tuple(lines) or (m.NO_UPCOMING,))
