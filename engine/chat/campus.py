"""Today across campus, for coordinators (their App Home): every session today grouped by
course, the possible no-shows to follow up, and Cancel with a reason, after which both the
student and the ST are told (each in chat and by the calendar's CANCEL e-mail).

"Today" is the coordinator's own day in their zone, and times are shown in their zone and
locale. A possible no-show started more than NO_SHOW_AFTER ago and its video room was never
opened: rooms are made on demand, by the first Join or by the start notice
(engine/followup/manage.py), so a stored room URL is the only trace of a session starting that
the bots keep.

Buttons carry "C:<op>:<session>[:<reason>]" (c: ask why, r: a reason picked, y: yes, cancel,
k: keep it), at most 16 bytes. Every press is checked again: the presser must still be a
coordinator (the role is the platform's data and can be taken away) and the session still
scheduled; anything else changes nothing. A coordinator runs the programme, so the change
cutoff that binds students and STs does not bind them: a no-show is only found after the start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine.chat import messages as m
from engine.chat.formatting import (
    format_datetime_long,
    format_day,
    format_time,
    normalize_locale,
    viewer_timezone,
)
from engine.chat.screens import Button, Placement, Screen, nothing_changed
from engine.chat.slots import day_bounds_utc
from engine.chat.text import cancel_reason
from engine.followup import manage
from storage.records import (
    CourseRecord,
    SessionRecord,
    SessionStatus,
    SessionWithPeople,
    UserRecord,
)
from storage.repositories import Repo

log = logging.getLogger(__name__)

PREFIX = "C:"
NO_SHOW_AFTER = timedelta(minutes=10)
_ANSWER = re.compile(r"C:(?P<op>[cryk]):(?P<session>\d{1,9})(?::(?P<reason>[a-z]))?")
_WITH_REASON = frozenset("ry")


@dataclass(frozen=True)
class Reason:
    label: str  # the coordinator's button
    text: str | None  # what the student and the ST read; None: no reason is quoted


REASONS: dict[str, Reason] = {
    "n": Reason(m.REASON_NO_SHOW, m.REASON_NO_SHOW_TEXT),
    "s": Reason(m.REASON_ST_UNAVAILABLE, m.REASON_ST_UNAVAILABLE_TEXT),
    "a": Reason(m.REASON_STUDENT_ASKED, m.REASON_STUDENT_ASKED_TEXT),
    "o": Reason(m.REASON_OTHER, None),
}


@dataclass(frozen=True)
class Desk:
    """What the campus dialogue needs, inside the conversation's unit of work."""

    repo: Repo
    user_id: int
    now: datetime
    # The zone the person's chat client shows them (Slack's profile), when it says; else
    # their own row's zone is used.
    zone: str | None = None


def is_answer(data: str) -> bool:
    """Every "C:" press is answered here, a malformed one with "expired", never by the wizard."""
    return data.startswith(PREFIX)


def _data(op: str, session_id: int, reason: str | None = None) -> str:
    return f"{PREFIX}{op}:{session_id}" + (f":{reason}" if reason else "")


def possible_no_show(booked: SessionRecord, now: datetime) -> bool:
    """Started more than NO_SHOW_AFTER ago (exactly that is still fine) with no room opened."""
    start = booked.scheduled_start
    return start is not None and booked.video_url is None and now - start > NO_SHOW_AFTER


def by_course(
    day: Sequence[SessionWithPeople],
) -> list[tuple[CourseRecord, list[SessionWithPeople]]]:
    """The sessions grouped by course (courses by title), each group in the order given (the
    repository's time order)."""
    groups: dict[int, list[SessionWithPeople]] = {}
    for each in day:
        groups.setdefault(each.course.id, []).append(each)
    pairs = [(group[0].course, group) for group in groups.values()]
    return sorted(pairs, key=lambda pair: (pair[0].title, pair[0].id))


async def _coordinator(desk: Desk) -> UserRecord | None:
    """The presser, if they are a coordinator now (asked on every press, not only when drawn)."""
    user = await desk.repo.user(desk.user_id)
    return user if user is not None and user.is_coordinator else None


async def section(desk: Desk) -> tuple[Screen, ...]:
    """The campus part of a coordinator's home (one read of the day); nothing for others."""
    user = await _coordinator(desk)
    if user is None:
        return ()
    zone, locale = viewer_timezone(desk.zone, user.timezone), normalize_locale(user.locale)
    today = desk.now.astimezone(ZoneInfo(zone)).date()
    day = await desk.repo.scheduled_starting_between(*day_bounds_utc(today, zone))

    def at(each: SessionWithPeople) -> str:
        assert each.session.scheduled_start is not None
        return format_time(each.session.scheduled_start, zone, locale)

    def cancel(each: SessionWithPeople) -> tuple[Button, ...]:
        label = m.CAMPUS_CANCEL.format(time=at(each), student=each.student.name)
        return (Button(label, payload=_data("c", each.session.id)),)

    title = m.CAMPUS_DAY.format(day=format_day(today, locale), zone=zone)
    heading = Screen(
        "campus_heading",
        m.CAMPUS_TODAY,
        (title,) if day else (title, m.CAMPUS_NOTHING),
        placement=Placement.NEW,
    )
    if not day:
        return (heading,)
    missing = [each for each in day if possible_no_show(each.session, desk.now)]
    minutes = int(NO_SHOW_AFTER.total_seconds() // 60)
    no_show_lines = tuple(
        m.CAMPUS_NO_SHOW_LINE.format(
            time=at(e), course=e.course.title, student=e.student.name, teacher=e.teacher.name
        )
        for e in missing
    )
    no_shows = Screen(
        "campus_no_shows",
        m.CAMPUS_NO_SHOWS,
        (m.CAMPUS_NO_SHOWS_WHY.format(minutes=minutes), *no_show_lines)
        if missing
        else (m.CAMPUS_NO_NO_SHOWS,),
        buttons=tuple(cancel(e) for e in missing),
        placement=Placement.NEW,
    )
    courses = tuple(
        Screen(
            "campus_course",
            course.title,
            tuple(
                m.CAMPUS_LINE.format(time=at(e), student=e.student.name, teacher=e.teacher.name)
                for e in sessions
            ),
            # Sessions still to come or under way; one that is over is cancelled, if at all,
            # as a possible no-show above.
            buttons=tuple(
                cancel(e)
                for e in sessions
                if e.session.scheduled_end is not None and e.session.scheduled_end > desk.now
            ),
            placement=Placement.NEW,
        )
        for course, sessions in by_course(day)
    )
    return (heading, no_shows, *courses)


async def answer(desk: Desk, data: str) -> Screen:
    """One press: ask why, confirm with the reason, cancel (both people told) or keep it."""
    found = _ANSWER.fullmatch(data)
    user = await _coordinator(desk)
    if found is None or user is None:
        return nothing_changed(m.EXPIRED)
    op, code, session_id = found["op"], found["reason"], int(found["session"])
    if (op in _WITH_REASON) != (code is not None) or (code is not None and code not in REASONS):
        return nothing_changed(m.EXPIRED)
    if op == "y":  # a Join, or either person cancelling, waits for this (and this for them)
        await desk.repo.session_for_update(session_id)
    each = await desk.repo.session_with_people(session_id)
    if each is None or each.session.status != SessionStatus.SCHEDULED.value:
        return nothing_changed(m.EXPIRED)
    assert each.session.scheduled_start is not None
    zone, locale = viewer_timezone(desk.zone, user.timezone), normalize_locale(user.locale)
    about = {
        "course": each.course.title,
        "student": each.student.name,
        "teacher": each.teacher.name,
        "when": format_datetime_long(each.session.scheduled_start, zone, locale),
    }
    keep = Button(m.KEEP_IT, payload=_data("k", session_id))
    if op == "c":
        reasons = tuple(
            (Button(reason.label, payload=_data("r", session_id, key)),)
            for key, reason in REASONS.items()
        )
        return Screen(
            "campus_why",
            m.CAMPUS_WHY.format(**about),
            buttons=(*reasons, (keep,)),
            placement=Placement.PRESSED,
        )
    if op == "k":
        kept = m.CAMPUS_KEPT
        return Screen("campus_kept", kept, placement=Placement.PRESSED, toast=kept)
    assert code is not None
    reason = REASONS[code]
    if op == "r":
        said = m.CANCEL_REASON.format(reason=reason.text) if reason.text else m.CAMPUS_NO_REASON
        yes = Button(m.YES_CANCEL, payload=_data("y", session_id, code))
        return Screen(
            "campus_confirm",
            m.CAMPUS_CONFIRM.format(**about),
            (said,),
            buttons=((yes, keep),),
            placement=Placement.PRESSED,
        )
    await manage.cancel_booked(
        desk.repo, each.session, user.id, desk.now, cancel_reason(reason.text)
    )
    log.info("coordinator %s cancelled session %s (reason %s)", user.id, session_id, code)
    done = m.CAMPUS_CANCELLED.format(**about)
    return Screen("campus_cancelled", done, placement=Placement.PRESSED)
