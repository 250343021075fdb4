"""/mysessions: the sessions a person takes or teaches, in their zone and locale, with actions.

One screen for the heading and one per session, so each session's buttons stay next to it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import messages as m
from engine.formatting import format_datetime_long, normalize_locale
from engine.manage import manage_data
from engine.screens import Button, Screen
from storage.repositories import Repo


async def my_sessions(
    factory: async_sessionmaker[AsyncSession], user_id: int, now: datetime
) -> list[Screen]:
    async with factory() as session:
        repo = Repo(session)
        user = await repo.user(user_id)
        if user is None:
            raise LookupError(f"no user {user_id}")
        rows = await repo.upcoming_with_names(user_id, now)
    locale = normalize_locale(user.locale)
    screens = [Screen("my_sessions", m.MY_SESSIONS_TITLE, () if rows else (m.NO_UPCOMING,))]
    for booked, course, other in rows:
        buttons: tuple[tuple[Button, ...], ...]
        if booked.scheduled_start is None or other is None:
            line = m.UNSCHEDULED_LINE.format(course=course.title, slug=course.slug)
            label = m.SCHEDULE_NOW_COURSE.format(course=course.title)
            buttons = ((Button(label, payload=manage_data("n", course.id)),),)
        else:
            when = format_datetime_long(booked.scheduled_start, user.timezone, locale)
            join = Button(m.JOIN, payload=manage_data("j", booked.id))
            cancel = Button(m.CANCEL_SESSION, payload=manage_data("c", booked.id))
            if booked.teacher_id == user_id:
                # A session this person teaches: only its student reschedules.
                line = m.TEACHING_LINE.format(when=when, course=course.title, name=other.name)
                buttons = ((join, cancel),)
            else:
                line = m.UPCOMING_LINE.format(when=when, course=course.title, name=other.name)
                reschedule = Button(m.RESCHEDULE, payload=manage_data("r", booked.id))
                buttons = ((join, reschedule, cancel),)
        screens.append(Screen("my_session", line, buttons=buttons))
    return screens
