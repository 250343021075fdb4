"""Pure builders from plain data to Screens, one per step of the wizard (no I/O here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from engine.chat import messages as m
from engine.chat.formatting import (
    first_weekday,
    format_datetime_long,
    format_day,
    format_month,
    format_time,
    month_grid,
    timezone_note,
    weekday_initials,
)
from engine.chat.screens import Action, Attachment, Button, Card, Kind, Screen
from engine.followup.calendar import CalendarEvent, google_calendar_url, ics, outlook_calendar_url

SLOTS_PER_ROW = 3


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str
    timezone: str
    locale: str
    email: str | None = None


@dataclass(frozen=True)
class CourseInfo:
    id: int
    slug: str
    title: str
    session_count: int
    session_minutes: int


@dataclass(frozen=True)
class TeacherInfo:
    id: int  # the ST's user id
    name: str
    avatar: str | None
    timezone: str
    is_active: bool
    max_days_ahead: int
    email: str | None = None


def _button(label: str, kind: Kind, arg: str = "") -> Button:
    return Button(label, Action(kind, arg))


BACK_ROW = (_button(m.BACK, Kind.BACK), _button(m.CANCEL, Kind.CANCEL))


def header(course: CourseInfo) -> str:
    return f"{m.PAGE_TITLE} {m.COURSE_CONTEXT.format(course=course.title)}"


def choose_course(courses: Sequence[CourseInfo], notice: str | None) -> Screen:
    lines = () if courses else (m.NOT_ENROLLED_ANYWHERE,)
    rows = tuple((_button(c.title, Kind.PICK_COURSE, str(c.id)),) for c in courses)
    return Screen("choose_course", m.STEP_CHOOSE_COURSE, lines, notice, buttons=rows)


def not_enrolled(course: CourseInfo, enroll_url: str, notice: str | None) -> Screen:
    return Screen(
        "not_enrolled",
        header(course),
        (m.NOT_ENROLLED,),
        notice,
        buttons=((Button(m.ENROLL_NOW, url=enroll_url),), BACK_ROW),
    )


def no_sessions_left(course: CourseInfo, notice: str | None) -> Screen:
    text = m.NO_SESSIONS_LEFT.format(count=course.session_count, course=course.title)
    return Screen("no_sessions_left", header(course), (text,), notice, buttons=(BACK_ROW,))


def choose_st(
    course: CourseInfo,
    teachers: Sequence[tuple[TeacherInfo, datetime | None]],
    viewer: Viewer,
    notice: str | None,
) -> Screen:
    cards = tuple(
        Card(
            title=teacher.name,
            lines=(
                m.TIMEZONE_LINE.format(zone=teacher.timezone),
                m.NEXT_FREE.format(when=format_datetime_long(nxt, viewer.timezone, viewer.locale))
                if nxt
                else m.NO_FREE_SOON.format(days=teacher.max_days_ahead),
            ),
            image_url=teacher.avatar,
            button=_button(m.BOOK_WITH.format(name=teacher.name), Kind.PICK_ST, str(teacher.id)),
        )
        for teacher, nxt in teachers
    )
    return Screen(
        "choose_st",
        header(course),
        (m.STEP_CHOOSE_ST,),
        notice,
        cards=cards,
        buttons=((_button(m.SCHEDULE_LATER, Kind.SCHEDULE_LATER),), BACK_ROW),
    )


def no_sts(course: CourseInfo, notice: str | None) -> Screen:
    return Screen(
        "no_sts",
        header(course),
        (m.NO_STS,),
        notice,
        buttons=((_button(m.SCHEDULE_LATER, Kind.SCHEDULE_LATER),), BACK_ROW),
    )


def teacher_line(teacher: TeacherInfo) -> str:
    return f"{m.SUMMARY_ST.format(name=teacher.name)} ({teacher.timezone})"


def calendar_grid(
    year: int, month: int, free_days: set[date], today: date, locale: str
) -> tuple[tuple[Button, ...], ...]:
    """Weekday header plus weeks; past days and days without slots are shown but inert."""
    start = first_weekday(locale)
    weeks: list[tuple[Button, ...]] = [
        tuple(Button(name, Action(Kind.NOOP), enabled=False) for name in weekday_initials(locale))
    ]
    for week in month_grid(year, month, start):
        row = []
        for day in week:
            if day is None:
                row.append(Button(" ", Action(Kind.NOOP), enabled=False))
            elif day in free_days and day >= today:
                row.append(_button(str(day.day), Kind.PICK_DATE, day.isoformat()))
            else:
                row.append(Button(str(day.day), Action(Kind.NOOP), enabled=False))
        weeks.append(tuple(row))
    return tuple(weeks)


def choose_date(
    course: CourseInfo,
    teacher: TeacherInfo,
    preselected: bool,
    year: int,
    month: int,
    free_days: set[date],
    today: date,
    can_go_back: bool,
    can_go_forward: bool,
    viewer: Viewer,
    notice: str | None,
) -> Screen:
    nav = (
        _button("‹", Kind.MONTH, _month_key(year, month, -1))
        if can_go_back
        else Button(" ", Action(Kind.NOOP), enabled=False),
        Button(format_month(year, month, viewer.locale), Action(Kind.NOOP), enabled=False),
        _button("›", Kind.MONTH, _month_key(year, month, +1))
        if can_go_forward
        else Button(" ", Action(Kind.NOOP), enabled=False),
    )
    quick = (
        _button(m.TODAY, Kind.QUICK, "today"),
        _button(m.TOMORROW, Kind.QUICK, "tomorrow"),
        _button(m.THIS_WEEK, Kind.QUICK, "week"),
        _button(m.NEXT_AVAILABLE, Kind.QUICK, "next"),
    )
    return Screen(
        "choose_date",
        header(course),
        (teacher_line(teacher), m.STEP_CHOOSE_DATE, m.CALENDAR_HINT),
        notice,
        cards=(_teacher_card(teacher),) if preselected else (),
        calendar=(nav, *calendar_grid(year, month, free_days, today, viewer.locale)),
        buttons=(quick, (_button(m.SCHEDULE_LATER, Kind.SCHEDULE_LATER),), BACK_ROW),
        prompt=None,
    )


def _teacher_card(teacher: TeacherInfo) -> Card:
    """The spec's "ST Pre-selected: show ST info" instead of the selection step."""
    return Card(
        teacher.name,
        (m.TIMEZONE_LINE.format(zone=teacher.timezone),),
        teacher.avatar,
        Button(teacher.name, Action(Kind.NOOP), enabled=False),
    )


def _month_key(year: int, month: int, delta: int) -> str:
    index = year * 12 + (month - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def choose_time(
    course: CourseInfo,
    teacher: TeacherInfo,
    day: date,
    slots: Sequence[datetime],
    viewer: Viewer,
    now: datetime,
    notice: str | None,
) -> Screen:
    labels = [format_time(slot, viewer.timezone, viewer.locale) for slot in slots]
    zone = ZoneInfo(viewer.timezone)
    # On a fall-back day one clock time happens twice: the zone abbreviation tells them apart.
    labels = [
        f"{label} {slot.astimezone(zone).strftime('%Z')}" if labels.count(label) > 1 else label
        for label, slot in zip(labels, slots, strict=True)
    ]
    buttons = [
        _button(label, Kind.PICK_SLOT, _minutes(slot))
        for label, slot in zip(labels, slots, strict=True)
    ]
    rows = tuple(
        tuple(buttons[i : i + SLOTS_PER_ROW]) for i in range(0, len(buttons), SLOTS_PER_ROW)
    )
    lines: tuple[str, ...] = (
        teacher_line(teacher),
        m.STEP_CHOOSE_TIME.format(day=format_day(day, viewer.locale)),
        timezone_note(viewer.timezone, day, viewer.locale),
    )
    if not slots:
        lines += (m.DATE_NO_SLOTS.format(day=format_day(day, viewer.locale)),)
    return Screen("choose_time", header(course), lines, notice, buttons=(*rows, BACK_ROW))


def summary_lines(
    course: CourseInfo, teacher: TeacherInfo, start: datetime, viewer: Viewer
) -> tuple[str, ...]:
    return (
        m.SUMMARY_COURSE.format(course=course.title),
        m.SUMMARY_ST.format(name=teacher.name),
        m.SUMMARY_WHEN.format(when=format_datetime_long(start, viewer.timezone, viewer.locale)),
        m.SUMMARY_LENGTH.format(minutes=course.session_minutes),
    )


def confirm(
    course: CourseInfo,
    teacher: TeacherInfo,
    start: datetime,
    reminders: bool,
    note: str | None,
    viewer: Viewer,
    notice: str | None,
) -> Screen:
    lines = (
        m.STEP_CONFIRM,
        *summary_lines(course, teacher, start, viewer),
        m.SUMMARY_REMINDERS.format(state=m.ON if reminders else m.OFF),
    )
    if note:
        lines += (m.SUMMARY_NOTE.format(name=teacher.name, note=note),)
    note_row: tuple[Button, ...] = (_button(m.EDIT_NOTE if note else m.ADD_NOTE, Kind.ADD_NOTE),)
    if note:
        note_row += (_button(m.REMOVE_NOTE, Kind.REMOVE_NOTE),)
    return Screen(
        "confirm",
        header(course),
        lines,
        notice,
        buttons=(
            (_button(m.REMINDERS_ON if reminders else m.REMINDERS_OFF, Kind.TOGGLE_REMINDERS),),
            note_row,
            (_button(m.BOOK_SESSION, Kind.CONFIRM),),
            BACK_ROW,
        ),
    )


def note_prompt(course: CourseInfo, teacher: TeacherInfo, limit: int, notice: str | None) -> Screen:
    return Screen(
        "note",
        header(course),
        (),
        notice,
        buttons=((_button(m.KEEP_NOTE, Kind.BACK),),),
        prompt=m.NOTE_PROMPT.format(name=teacher.name, limit=limit),
    )


def booking(course: CourseInfo, teacher: TeacherInfo, start: datetime, viewer: Viewer) -> Screen:
    return Screen(
        "booking",
        header(course),
        (m.BOOKING_LOADING, *summary_lines(course, teacher, start, viewer)),
        loading=True,
        toast=m.BOOKING_LOADING,
    )


def calendar_event(
    course: CourseInfo,
    teacher: TeacherInfo,
    start: datetime,
    session_id: int,
    reminders: bool,
    note: str | None,
    viewer: Viewer,
    organizer: tuple[str, str | None],
    join_url: str | None = None,
) -> CalendarEvent:
    """The invite both people get; the UID is stable so later updates replace it.

    `join_url`: the viewer's own /join link, as LOCATION and URL (as in the e-mailed invite).

    `organizer` is the tutoring service (`EMAIL_FROM`), which sends every update and the CANCEL;
    the student and the ST are the attendees (engine/calendar.py says why).
    """
    description = "\n".join(
        line
        for line in (
            m.SUMMARY_COURSE.format(course=course.title),
            m.SUMMARY_ST.format(name=teacher.name),
            m.SUMMARY_NOTE.format(name=teacher.name, note=note) if note else "",
            m.CALENDAR_JOIN,
        )
        if line
    )
    return CalendarEvent(
        uid=f"session-{session_id}@bookbot",
        start=start,
        end=start + timedelta(minutes=course.session_minutes),
        summary=m.CALENDAR_SUMMARY.format(course=course.title, name=teacher.name),
        description=description,
        location=join_url,
        url=join_url,
        organizer_email=organizer[0],
        organizer_name=organizer[1],
        attendees=tuple(
            (email, name)
            for email, name in ((viewer.email, viewer.name), (teacher.email, teacher.name))
            if email
        ),
        alarm_minutes=(60,) if reminders else (),
    )


def success(
    course: CourseInfo,
    teacher: TeacherInfo,
    start: datetime,
    session_id: int,
    reminders: bool,
    note: str | None,
    viewer: Viewer,
    dashboard_url: str,
    organizer: tuple[str, str | None],
    notice: str | None = None,
    with_invite: bool = False,
    rescheduled: bool = False,
    join_url: str | None = None,
) -> Screen:
    """ "Session Booked!"; the .ics rides along only right after booking, not on every redraw."""
    lines = (
        m.SUCCESS_BODY.format(name=teacher.name, session_id=session_id),
        *summary_lines(course, teacher, start, viewer),
        m.SUMMARY_REMINDERS.format(state=m.ON if reminders else m.OFF),
    )
    if note:
        lines += (m.SUMMARY_NOTE.format(name=teacher.name, note=note),)
    if rescheduled:
        lines += (m.RESCHEDULED,)
    lines += (m.ADD_TO_CALENDAR,)
    event = calendar_event(
        course, teacher, start, session_id, reminders, note, viewer, organizer, join_url
    )
    files = (
        (Attachment(f"session-{session_id}.ics", ics(event), "text/calendar; method=REQUEST"),)
        if with_invite
        else ()
    )
    return Screen(
        "success",
        m.SUCCESS_TITLE,
        lines,
        notice,
        buttons=(
            (
                Button(m.ADD_TO_GOOGLE, url=google_calendar_url(event)),
                Button(m.ADD_TO_OFFICE365, url=outlook_calendar_url(event, office365=True)),
                Button(m.ADD_TO_OUTLOOK, url=outlook_calendar_url(event)),
            ),
            (Button(m.BACK_TO_DASHBOARD, url=dashboard_url),),
            (_button(m.BOOK_ANOTHER, Kind.BOOK_ANOTHER),),
        ),
        final=True,
        files=files,
    )


def scheduled_later(course: CourseInfo, dashboard_url: str, notice: str | None = None) -> Screen:
    return Screen(
        "scheduled_later",
        m.SCHEDULED_LATER_TITLE,
        (m.SCHEDULED_LATER_BODY.format(course=course.title, count=course.session_count),),
        notice,
        buttons=(
            (_button(m.SCHEDULE_NOW, Kind.BOOK_ANOTHER),),
            (Button(m.BACK_TO_DASHBOARD, url=dashboard_url),),
        ),
        final=True,
    )


def ended(text: str) -> Screen:
    return Screen("idle", text, final=True)


def _minutes(moment: datetime) -> str:
    return str(int(moment.timestamp()) // 60)
