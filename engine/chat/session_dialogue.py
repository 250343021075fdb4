"""The dialogues about booked sessions: /mysessions and the buttons on its entries, on reminders
and on notices (join, cancel with its question, keep, reschedule, schedule now).

Their buttons sit on messages outside the wizard, so they are checked by who presses them and by
the session as it is now, never by the wizard's nonce: a reminder's Cancel still works after the
student has used the wizard since. Every answer is a Screen (with its toast or alert); starting
the wizard (reschedule, schedule now) is a `flow.Start` the conversation applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine.booking import other_party
from engine.chat import campus, flow
from engine.chat import messages as m
from engine.chat.formatting import (
    format_clock,
    format_datetime_long,
    format_day,
    format_time,
    normalize_locale,
    viewer_timezone,
    weekday_name,
)
from engine.chat.screens import Button, Placement, Screen, nothing_changed
from engine.followup import manage
from engine.followup.manage import manage_data
from engine.followup.video import VideoProvider
from storage.repositories import Repo

WEEK = timedelta(days=7)
DAYS_OFF_AHEAD = timedelta(days=60)


@dataclass(frozen=True)
class Desk:
    """What the session dialogues need, inside the conversation's unit of work."""

    repo: Repo
    user_id: int
    now: datetime
    cutoff: timedelta
    video: VideoProvider
    # The zone the person's chat client shows them (Slack's profile), when it says; else
    # their own row's zone is used.
    zone: str | None = None


def _row(session_id: int, *, reschedule: bool) -> tuple[Button, ...]:
    """A session's buttons: Join, (Reschedule, only for its student), Cancel session."""
    join = Button(m.JOIN, payload=manage_data("j", session_id))
    cancel = Button(m.CANCEL_SESSION, payload=manage_data("c", session_id))
    if not reschedule:
        return (join, cancel)
    return (join, Button(m.RESCHEDULE, payload=manage_data("r", session_id)), cancel)


async def my_sessions(desk: Desk) -> Screen:
    """A heading and one message per session, so each session's buttons stay next to it."""
    user = await desk.repo.user(desk.user_id)
    if user is None:
        raise LookupError(f"no user {desk.user_id}")
    rows = await desk.repo.upcoming_with_people(desk.user_id, desk.now)
    locale = normalize_locale(user.locale)
    entries: list[Screen] = []
    for booked, course, student, teacher in rows:
        other = other_party(desk.user_id, student.id, student, teacher) if teacher else None
        buttons: tuple[tuple[Button, ...], ...]
        if booked.scheduled_start is None or other is None:
            line = m.UNSCHEDULED_LINE.format(course=course.title, slug=course.slug)
            label = m.SCHEDULE_NOW_COURSE.format(course=course.title)
            buttons = ((Button(label, payload=manage_data("n", course.id)),),)
        else:
            zone = viewer_timezone(desk.zone, user.timezone)
            when = format_datetime_long(booked.scheduled_start, zone, locale)
            teaching = booked.teacher_id == desk.user_id  # then only its student reschedules
            template = m.TEACHING_LINE if teaching else m.UPCOMING_LINE
            line = template.format(when=when, course=course.title, name=other.name)
            buttons = (_row(booked.id, reschedule=not teaching),)
        entries.append(Screen("my_session", line, buttons=buttons, placement=Placement.NEW))
    lines = () if rows else (m.NO_UPCOMING,)
    return Screen(
        "my_sessions", m.MY_SESSIONS_TITLE, lines, placement=Placement.NEW, more=tuple(entries)
    )


async def act(op: str, target: int, desk: Desk) -> Screen | flow.Start:
    """One press on a session's button; `target` is re-validated against the presser."""
    if op == "now":
        return flow.Start(course_id=target, source="reminder")
    if op == "join":
        return await _join(target, desk)
    if op == "reschedule":
        checked = await manage.check_reschedule_in(
            desk.repo, target, desk.user_id, desk.now, desk.cutoff
        )
        if not isinstance(checked, manage.CanReschedule):
            return _refusal(checked, desk.user_id)
        info = checked.info
        return flow.Start(
            course_id=info.course_id,
            teacher_id=info.teacher_id,
            source="reschedule",
            reschedule=info.id,
        )
    if op == "ask_cancel":
        described = await manage.describe_in(desk.repo, target, desk.user_id)
        if isinstance(described, manage.Unavailable):
            return nothing_changed(m.EXPIRED)
        question = m.CANCEL_CONFIRM.format(
            course=described.course_title,
            name=described.other_name(desk.user_id),
            when=described.when,
        )
        answers = (
            Button(m.YES_CANCEL, payload=manage_data("y", target)),
            Button(m.KEEP_IT, payload=manage_data("k", target)),
        )
        return Screen("cancel_question", question, buttons=(answers,), placement=Placement.PRESSED)
    if op == "keep":
        if isinstance(
            await manage.describe_in(desk.repo, target, desk.user_id), manage.Unavailable
        ):
            return nothing_changed(m.EXPIRED)
        return Screen("kept", m.KEPT, placement=Placement.PRESSED, toast=m.KEPT)
    cancelled = await manage.cancel_in(desk.repo, target, desk.user_id, desk.now, desk.cutoff)
    if not isinstance(cancelled, manage.Cancelled):
        return _refusal(cancelled, desk.user_id)
    info = cancelled.info
    done = m.SESSION_CANCELLED.format(
        course=info.course_title, when=info.when, name=info.other_name(desk.user_id)
    )
    return Screen("cancelled", done, placement=Placement.PRESSED)


async def _join(target: int, desk: Desk) -> Screen:
    joined = await manage.join_in(desk.repo, target, desk.user_id, desk.now, desk.video)
    if isinstance(joined, manage.RoomReady):
        return Screen(
            "room",
            m.ROOM_READY.format(course=joined.info.course_title),
            buttons=((Button(m.OPEN_ROOM, url=joined.url),),),
            placement=Placement.NEW,
        )
    if isinstance(joined, manage.TooEarly):
        minutes = int(manage.ROOM_OPENS_BEFORE.total_seconds() // 60)
        return nothing_changed(
            m.ROOM_TOO_EARLY.format(minutes=minutes, when=joined.opens_at), alert=True
        )
    return nothing_changed(m.SESSION_OVER if joined.ended else m.EXPIRED)


def _refusal(outcome: manage.TooLate | manage.Unavailable, user_id: int) -> Screen:
    if isinstance(outcome, manage.TooLate):
        name = outcome.info.other_name(user_id)  # "please contact <them> directly"
        hours = f"{outcome.cutoff_hours:g}"
        return nothing_changed(m.TOO_LATE.format(hours=hours, name=name), alert=True)
    return nothing_changed(m.EXPIRED)


async def staff_home(desk: Desk) -> Screen:
    """A staff member's home: today's and this week's sessions (with the note and Join /
    Cancel), their weekly hours and upcoming days off, all in their own zone and locale.
    A coordinator also gets today across campus; one who teaches nothing gets only that, not an
    empty day, week, hours and days off of their own."""
    user = await desk.repo.user(desk.user_id)
    if user is None:
        raise LookupError(f"no user {desk.user_id}")
    across = await campus.section(campus.Desk(desk.repo, desk.user_id, desk.now, desk.zone))
    if across and not await desk.repo.teaches_any(desk.user_id):
        return Screen("home", user.name, placement=Placement.NEW, more=across)
    zone_name = viewer_timezone(desk.zone, user.timezone)
    zone, locale = ZoneInfo(zone_name), normalize_locale(user.locale)
    today = desk.now.astimezone(zone).date()
    today_entries: list[Screen] = []
    week_entries: list[Screen] = []
    for booked, course, student, teacher in await desk.repo.upcoming_with_people(
        desk.user_id, desk.now
    ):
        if booked.scheduled_start is None or teacher is None:
            continue
        day = booked.scheduled_start.astimezone(zone).date()
        if day > today + WEEK:
            continue
        other = other_party(desk.user_id, student.id, student, teacher)
        when = (
            format_time(booked.scheduled_start, zone_name, locale)
            if day == today
            else format_datetime_long(booked.scheduled_start, zone_name, locale)
        )
        line = m.HOME_SESSION.format(time=when, course=course.title, name=other.name)
        notes = (m.ST_NOTE.format(student=student.name, note=booked.note),) if booked.note else ()
        buttons = (_row(booked.id, reschedule=False),)
        entry = Screen("home_session", line, notes, buttons=buttons, placement=Placement.NEW)
        (today_entries if day == today else week_entries).append(entry)
    hours = sorted(
        await desk.repo.availability([desk.user_id]), key=lambda a: (a.day_of_week, a.start_time)
    )
    hour_lines = tuple(
        m.HOME_HOURS_LINE.format(
            day=weekday_name(a.day_of_week, locale),
            start=format_clock(a.start_time, locale),
            end=format_clock(a.end_time, locale),
            zone=a.timezone,
        )
        for a in hours
    ) or (m.HOME_NO_HOURS,)
    overrides = await desk.repo.overrides([desk.user_id], today, today + DAYS_OFF_AHEAD)
    off = sorted({o.date for o in overrides if o.start_time is None})
    off_lines = tuple(format_day(d, locale) for d in off) or (m.HOME_NO_DAYS_OFF,)

    def heading(title: str, entries: list[Screen]) -> Screen:
        return Screen("home_heading", title, () if entries else (m.HOME_NOTHING,))

    return Screen(
        "home",
        user.name,
        placement=Placement.NEW,
        # A coordinator's campus comes first: a long week of their own must not push it out
        # of a home that has room for only so much (Slack: 100 blocks).
        more=(
            *across,
            heading(m.HOME_TODAY, today_entries),
            *today_entries,
            heading(m.HOME_WEEK, week_entries),
            *week_entries,
            Screen("home_hours", m.HOME_HOURS, hour_lines),
            Screen("home_days_off", m.HOME_DAYS_OFF, off_lines),
        ),
    )
