"""/away: an ST marks a day or a range of days off, or special hours for one day.

Time off becomes `availability_overrides` at once, so nobody can book into it. Sessions already
booked inside new time off are listed with a question; they are cancelled only when the ST
says so (the students are told, with a button to book another time): nothing is cancelled
silently. The question's buttons carry the range ("A:c:<first>:<last>") and are checked
against who presses them: only the ST's own sessions in it can be cancelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine.chat import messages as m
from engine.chat.dates import ParsedDate, parse_day
from engine.chat.formatting import (
    format_clock,
    format_datetime_long,
    format_day,
    normalize_locale,
    viewer_timezone,
)
from engine.chat.screens import Button, Placement, Screen, nothing_changed
from engine.chat.slots import day_bounds_utc
from engine.followup import manage
from storage.repositories import Repo

MAX_DAYS = 60
_HOURS = re.compile(r"^(?P<day>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*[-–]\s*(?P<end>\d{1,2}:\d{2})$")
_RANGE = re.compile(r"\s+(?:to|until|-|–)\s+")
_ANSWER = re.compile(r"A:(?P<op>[ck])(?::(?P<first>\d{8}):(?P<last>\d{8}))?")


@dataclass(frozen=True)
class Desk:
    repo: Repo
    user_id: int
    now: datetime
    cutoff: timedelta
    # The zone the person's chat client shows them (Slack's profile), when it says; else
    # their own row's zone is used.
    zone: str | None = None


def is_answer(data: str) -> bool:
    return _ANSWER.fullmatch(data) is not None


def _note(text: str) -> Screen:
    return Screen("away_note", text, placement=Placement.NEW)


async def mark(desk: Desk, text: str) -> Screen:
    user = await desk.repo.user(desk.user_id)
    assert user is not None
    if not await desk.repo.teaches_any(desk.user_id):
        return _note(m.AWAY_NOT_ST)
    zone, locale = viewer_timezone(desk.zone, user.timezone), normalize_locale(user.locale)

    def day_of(words: str) -> date | None:
        parsed = parse_day(words, now=desk.now, timezone=zone, locale=locale)
        return parsed.day if isinstance(parsed, ParsedDate) else None

    text = text.strip()
    hours = _HOURS.fullmatch(text)
    if hours:
        day = day_of(hours["day"])
        try:
            start, end = (time.fromisoformat(hours[k].zfill(5)) for k in ("start", "end"))
        except ValueError:
            return _note(m.AWAY_USAGE)
        if day is None or not start < end:
            return _note(m.AWAY_USAGE)
        await desk.repo.set_day_overrides(desk.user_id, [day], zone, start, end)
        return _note(
            m.AWAY_HOURS_DONE.format(
                day=format_day(day, locale),
                start=format_clock(start, locale),
                end=format_clock(end, locale),
            )
        )
    parts = _RANGE.split(text, maxsplit=1) if text else []
    days = [day_of(part) for part in parts]
    if not days or None in days:
        return _note(m.AWAY_USAGE)
    first, last = days[0], days[-1]
    assert first is not None and last is not None
    if last < first:
        first, last = last, first
    if (last - first).days + 1 > MAX_DAYS:
        return _note(m.AWAY_TOO_LONG.format(days=MAX_DAYS))
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    await desk.repo.set_day_overrides(desk.user_id, span, zone)
    label = format_day(first, locale) + ("" if first == last else f" – {format_day(last, locale)}")
    booked = await desk.repo.teaching_between(
        desk.user_id, day_bounds_utc(first, zone)[0], day_bounds_utc(last, zone)[1]
    )
    if not booked:
        return _note(m.AWAY_DONE.format(days=label))
    lines = []
    for session in booked:
        assert session.scheduled_start is not None
        student = await desk.repo.user(session.student_id)
        course = await desk.repo.course(session.course_id)
        when = format_datetime_long(session.scheduled_start, zone, locale)
        lines.append(
            m.UPCOMING_LINE.format(
                when=when,
                course=course.title if course else "",
                name=student.name if student else "",
            )
        )
    span_data = f"{first:%Y%m%d}:{last:%Y%m%d}"
    answers = (
        Button(m.AWAY_CANCEL, payload=f"A:c:{span_data}"),
        Button(m.AWAY_KEEP, payload="A:k"),
    )
    return Screen(
        "away_question",
        m.AWAY_BOOKED.format(days=label),
        tuple(lines),
        buttons=(answers,),
        placement=Placement.NEW,
    )


async def answer(desk: Desk, data: str) -> Screen:
    found = _ANSWER.fullmatch(data)
    assert found is not None
    if found["op"] == "k" or not found["first"]:
        return Screen("away_kept", m.AWAY_KEPT, placement=Placement.PRESSED)
    user = await desk.repo.user(desk.user_id)
    assert user is not None
    zone = viewer_timezone(desk.zone, user.timezone)
    try:
        first = datetime.strptime(found["first"], "%Y%m%d").date()
        last = datetime.strptime(found["last"], "%Y%m%d").date()
    except ValueError:
        return nothing_changed(m.EXPIRED)
    if not first <= last or (last - first).days + 1 > MAX_DAYS:
        return nothing_changed(m.EXPIRED)
    booked = await desk.repo.teaching_between(
        desk.user_id, day_bounds_utc(first, zone)[0], day_bounds_utc(last, zone)[1]
    )
    cancelled = late = 0
    for session in booked:
        outcome = await manage.cancel_in(
            desk.repo, session.id, desk.user_id, desk.now, desk.cutoff, reason=m.AWAY_REASON
        )
        cancelled += isinstance(outcome, manage.Cancelled)
        late += isinstance(outcome, manage.TooLate)
    text = m.AWAY_CANCELLED.format(count=cancelled)
    if late:
        text += m.AWAY_TOO_LATE.format(count=late)
    return Screen("away_cancelled", text, placement=Placement.PRESSED)
