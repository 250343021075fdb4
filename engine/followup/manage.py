"""After booking: join the video room, cancel, or start a reschedule (checks and outcomes).

Front ends call these with the pressing person's platform user id; every rule (ownership, the
change cutoff, room timing) is decided here, not in the adapters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.booking import other_party
from engine.chat.formatting import format_datetime_long, normalize_locale
from engine.chat.text import cancel_reason
from engine.followup.video import VideoProvider
from storage.jobs import Job
from storage.records import SessionRecord, SessionStatus
from storage.repositories import Repo
from storage.uow import Units, UnitsLike

ROOM_OPENS_BEFORE = timedelta(minutes=10)

# Button data for managing booked sessions, apart from the wizard's nonce-bound actions:
# "S:<op>:<id>" (uppercase S never starts wizard data). Validated again on arrival.
OPS = {"j": "join", "c": "ask_cancel", "y": "cancel", "k": "keep", "r": "reschedule", "n": "now"}
_MANAGE = re.compile(r"S:([jcykrn]):(\d{1,9})")


def manage_data(op: str, target_id: int) -> str:
    assert op in OPS
    return f"S:{op}:{target_id}"


def parse_manage(data: str) -> tuple[str, int] | None:
    found = _MANAGE.fullmatch(data)
    return (OPS[found[1]], int(found[2])) if found else None


@dataclass(frozen=True)
class SessionInfo:
    id: int
    course_id: int
    course_title: str
    teacher_id: int
    teacher_name: str
    student_id: int
    student_name: str
    start: datetime
    end: datetime
    when: str  # the viewer's zone and locale

    def other_name(self, viewer_id: int) -> str:
        """The person on the other side of the session from the viewer."""
        return other_party(viewer_id, self.student_id, self.student_name, self.teacher_name)


@dataclass(frozen=True)
class RoomReady:
    info: SessionInfo
    url: str


@dataclass(frozen=True)
class TooEarly:
    info: SessionInfo
    opens_at: str


@dataclass(frozen=True)
class TooLate:
    info: SessionInfo
    cutoff_hours: float


@dataclass(frozen=True)
class Cancelled:
    info: SessionInfo
    other_party: int  # the user to tell


@dataclass(frozen=True)
class CanReschedule:
    info: SessionInfo


@dataclass(frozen=True)
class Unavailable:
    """Not this person's session, or no longer scheduled: the chat says the option expired."""

    ended: bool = False


async def _info(repo: Repo, booked: SessionRecord, viewer_id: int) -> SessionInfo:
    course = await repo.course(booked.course_id)
    teacher = await repo.user(booked.teacher_id or 0)
    student = await repo.user(booked.student_id)
    viewer = await repo.user(viewer_id)
    assert course and teacher and student and viewer and booked.scheduled_start
    assert booked.scheduled_end is not None
    when = format_datetime_long(
        booked.scheduled_start, viewer.timezone, normalize_locale(viewer.locale)
    )
    return SessionInfo(
        booked.id,
        course.id,
        course.title,
        teacher.id,
        teacher.name,
        student.id,
        student.name,
        booked.scheduled_start,
        booked.scheduled_end,
        when,
    )


async def _scheduled_of(
    repo: Repo, session_id: int, user_id: int, *, lock: bool, student_only: bool = False
) -> SessionRecord | None:
    """The session if it is still scheduled and the person takes part in it (as its student
    when `student_only`); anything else reads as an expired option in the chat."""
    booked = await (repo.session_for_update if lock else repo.session_by_id)(session_id)
    if booked is None or booked.status != SessionStatus.SCHEDULED.value:
        return None
    people = (booked.student_id,) if student_only else (booked.student_id, booked.teacher_id)
    return booked if user_id in people else None


async def join(
    units: UnitsLike,
    session_id: int,
    user_id: int,
    now: datetime,
    provider: VideoProvider,
) -> RoomReady | TooEarly | Unavailable:
    async with Units.of(units)() as uow:
        return await join_in(uow.repo, session_id, user_id, now, provider)


async def join_in(
    repo: Repo, session_id: int, user_id: int, now: datetime, provider: VideoProvider
) -> RoomReady | TooEarly | Unavailable:
    """The room is created by the first Join at session time and stored for the other person."""
    booked = await _scheduled_of(repo, session_id, user_id, lock=True)
    if booked is None or booked.scheduled_end is None:
        return Unavailable()
    if now >= booked.scheduled_end:
        return Unavailable(ended=True)
    info = await _info(repo, booked, user_id)
    if now < info.start - ROOM_OPENS_BEFORE:
        viewer = await repo.user(user_id)
        assert viewer is not None
        opens = format_datetime_long(
            info.start - ROOM_OPENS_BEFORE, viewer.timezone, normalize_locale(viewer.locale)
        )
        return TooEarly(info, opens)
    return RoomReady(info, await room_of(repo, booked, provider))


async def room_of(repo: Repo, booked: SessionRecord, provider: VideoProvider) -> str:
    """The session's room, made now if nobody has opened it yet. `booked` must have been read
    with its row lock held (`session_for_update`): two first opens then make one room."""
    if booked.video_url is not None:
        return booked.video_url
    url = await provider.create_room(booked.id)
    await repo.set_video_url(booked.id, url)
    return url


async def ensure_room(units: UnitsLike, session_id: int, provider: VideoProvider) -> str | None:
    """For the session-start reminder: the same room a Join would get; None if not scheduled."""
    async with Units.of(units)() as uow:
        repo = uow.repo
        booked = await repo.session_for_update(session_id)
        if booked is None or booked.status != SessionStatus.SCHEDULED.value:
            return None
        return await room_of(repo, booked, provider)


async def cancel(
    units: UnitsLike,
    session_id: int,
    user_id: int,
    now: datetime,
    cutoff: timedelta,
    reason: str | None = None,
) -> Cancelled | TooLate | Unavailable:
    async with Units.of(units)() as uow:
        return await cancel_in(uow.repo, session_id, user_id, now, cutoff, reason)


async def cancel_in(
    repo: Repo,
    session_id: int,
    user_id: int,
    now: datetime,
    cutoff: timedelta,
    reason: str | None = None,
) -> Cancelled | TooLate | Unavailable:
    """Frees the slot, drops pending reminders and queues the other party's notice + ICS CANCEL.

    `reason` (optional, the canceller's words) is stored and quoted in the notice and e-mails;
    ValueError when it is longer than CANCEL_REASON_MAX_CHARS.
    """
    reason = cancel_reason(reason)
    booked = await _scheduled_of(repo, session_id, user_id, lock=True)
    if booked is None:
        return Unavailable()
    info = await _info(repo, booked, user_id)
    if info.start - now < cutoff:
        return TooLate(info, cutoff.total_seconds() / 3600)
    await cancel_booked(repo, booked, user_id, now, reason)
    other = booked.teacher_id if user_id == booked.student_id else booked.student_id
    assert other is not None
    return Cancelled(info, other)


async def cancel_booked(
    repo: Repo, booked: SessionRecord, by: int, now: datetime, reason: str | None
) -> None:
    """Cancel a locked, scheduled session for `by`, whose right to has been checked; the outbox
    tells each person in it other than `by` in chat (both, when a coordinator cancels) and
    sends both the calendar's CANCEL."""
    await repo.cancel_session(booked.id, by=by, at=now, reason=reason)
    people = (booked.student_id, booked.teacher_id)
    for person in people:
        assert person is not None
        if person != by:
            repo.add_job(booked.id, Job.cancelled_chat(person), now)
    for person in people:
        assert person is not None
        repo.add_job(booked.id, Job.cancelled_email(person), now)


async def check_reschedule(
    units: UnitsLike,
    session_id: int,
    user_id: int,
    now: datetime,
    cutoff: timedelta,
) -> CanReschedule | TooLate | Unavailable:
    async with Units.of(units)() as uow:
        return await check_reschedule_in(uow.repo, session_id, user_id, now, cutoff)


async def check_reschedule_in(
    repo: Repo, session_id: int, user_id: int, now: datetime, cutoff: timedelta
) -> CanReschedule | TooLate | Unavailable:
    """Only the student reschedules; the old slot stays theirs until the new one is booked."""
    booked = await _scheduled_of(repo, session_id, user_id, lock=False, student_only=True)
    if booked is None:
        return Unavailable()
    info = await _info(repo, booked, user_id)
    if info.start - now < cutoff:
        return TooLate(info, cutoff.total_seconds() / 3600)
    return CanReschedule(info)


async def describe_in(repo: Repo, session_id: int, user_id: int) -> SessionInfo | Unavailable:
    """A scheduled session of this person, for a confirmation question (and "Keep it": answered
    only for the presser's own session, so forged button data learns nothing)."""
    booked = await _scheduled_of(repo, session_id, user_id, lock=False)
    if booked is None:
        return Unavailable()
    return await _info(repo, booked, user_id)
