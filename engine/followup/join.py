"""What `<PUBLIC_BASE_URL>/join/<token>` does: the rule (pure), opening the room, its pages.

E-mails and calendar invites cannot carry a chat button, so they carry a signed link naming the
session and the person it was sent to (engine/links.py). `bookbot serve` answers it
(bots/join.py) with what `follow_join_link` decides:

- from `ROOM_OPENS_BEFORE` (10 minutes) before the start until the end: a redirect to the
  session's video room, created by the first request through the VideoProvider under the
  session's row lock, as the chat's Join and the session-start message do
  (engine/followup/manage.py), so both people and any number of simultaneous clicks share one
  room;
- earlier: a page saying when the room opens, in the reader's own zone and locale (the token
  names the person, so nothing is guessed from the browser; no zone on record reads as UTC),
  with a relative phrase ("in 2 hours"); within the last hour it reloads itself at the opening;
- after a cancellation (a reschedule cancels the old time too): a page saying so;
- after the end (or once the session is marked completed): a page saying it has ended; the
  token expires a day later (`JOIN_LINK_GRACE`), and from then on:
- anything not genuine, expired, or naming a person who is not in the session: a plain 404.

The pages name the course and the time, never a person: a forwarded link shows nothing private.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from babel.dates import format_timedelta

from engine.chat.formatting import format_datetime_long, normalize_locale, viewer_timezone
from engine.followup.manage import ROOM_OPENS_BEFORE, room_of
from engine.followup.notify import template_environment
from engine.followup.video import VideoProvider
from engine.links import JoinClaims, LinkError, join_link_expiry, sign_join, verify_join
from storage.records import SessionRecord, SessionStatus
from storage.uow import Units, UnitsLike

__all__ = [
    "JOIN_PATH",
    "REFRESH_WITHIN",
    "GoToRoom",
    "HasEnded",
    "JoinPage",
    "NotFound",
    "NotYet",
    "PageKind",
    "RoomOpen",
    "Verdict",
    "WasCancelled",
    "decide",
    "follow_join_link",
    "join_url",
    "render_join_page",
]

JOIN_PATH = "/join/"
REFRESH_WITHIN = timedelta(hours=1)
"""The "not yet" page reloads itself at the opening only when that is this close: a page left
open for days should not hold a timer that long (and a browser may not keep one)."""


@dataclass(frozen=True)
class RoomOpen:
    """The room may be entered now (and is created if nobody has yet)."""


@dataclass(frozen=True)
class NotYet:
    opens_at: datetime


@dataclass(frozen=True)
class WasCancelled:
    pass


@dataclass(frozen=True)
class HasEnded:
    pass


@dataclass(frozen=True)
class NotFound:
    why: str  # for the log: "no_session", "not_in_session", "unscheduled"


Verdict = RoomOpen | NotYet | WasCancelled | HasEnded | NotFound


def decide(booked: SessionRecord | None, user_id: int, now: datetime) -> Verdict:
    """What a genuine, unexpired join link of `user_id` for `booked` leads to at `now`.

    The room opens at exactly `start - ROOM_OPENS_BEFORE` and closes at exactly the end, like
    the chat's Join. A cancellation wins over the time, so a cancelled session never reads as
    merely ended.
    """
    if booked is None:
        return NotFound("no_session")
    if user_id not in (booked.student_id, booked.teacher_id):
        return NotFound("not_in_session")
    if booked.status == SessionStatus.CANCELLED.value:
        return WasCancelled()
    if booked.status == SessionStatus.COMPLETED.value:
        return HasEnded()
    start, end = booked.scheduled_start, booked.scheduled_end
    if booked.status != SessionStatus.SCHEDULED.value or start is None or end is None:
        return NotFound("unscheduled")  # "Schedule Later": never sent a join link
    if now >= end:
        return HasEnded()
    if now < start - ROOM_OPENS_BEFORE:
        return NotYet(start - ROOM_OPENS_BEFORE)
    return RoomOpen()


def join_url(
    public_base_url: str, secret: str, session_id: int, user_id: int, session_end: datetime
) -> str:
    """The join link of one person's copy of an e-mail or invite; the same on every retry."""
    claims = JoinClaims(session_id, user_id, join_link_expiry(session_end))
    return f"{public_base_url.rstrip('/')}{JOIN_PATH}{sign_join(claims, secret)}"


PageKind = Literal["not_yet", "cancelled", "ended", "not_found", "unavailable"]


@dataclass(frozen=True)
class GoToRoom:
    session_id: int
    url: str


@dataclass(frozen=True)
class JoinPage:
    kind: PageKind
    html: str
    session_id: int | None  # for the log; None when the token named no session we know
    why: str | None = None  # for the log: why a link was not found (never the token)


def render_join_page(
    kind: PageKind,
    *,
    course: str | None = None,
    when: str | None = None,
    left: str | None = None,
    refresh_seconds: int | None = None,
) -> str:
    """One small, autoescaped HTML page (templates/join/page.html.j2); `when` and `left` are
    already formatted for the reader."""
    return (
        template_environment()
        .get_template("join/page.html.j2")
        .render(
            kind=kind,
            course=course,
            when=when,
            left=left,
            refresh_seconds=refresh_seconds,
            opens_before_minutes=int(ROOM_OPENS_BEFORE.total_seconds() // 60),
        )
    )


def _not_found(why: str, session_id: int | None = None) -> JoinPage:
    return JoinPage("not_found", render_join_page("not_found"), session_id, why)


async def follow_join_link(
    units: UnitsLike, token: str, secret: str, now: datetime, provider: VideoProvider
) -> GoToRoom | JoinPage:
    """The answer to one request for `/join/<token>` at `now`."""
    try:
        claims = verify_join(token, secret, now)
    except LinkError as error:
        return _not_found(error.reason)
    async with Units.of(units)() as uow:
        repo = uow.repo
        # The row lock makes two first clicks wait for each other (one room) and keeps a room
        # from being made for a session cancelled at that instant; a page holds it for two reads.
        booked = await repo.session_for_update(claims.session_id)
        verdict = decide(booked, claims.user_id, now)
        if isinstance(verdict, NotFound) or booked is None:
            why = verdict.why if isinstance(verdict, NotFound) else "no_session"
            return _not_found(why, claims.session_id)
        if isinstance(verdict, RoomOpen):
            return GoToRoom(booked.id, await room_of(repo, booked, provider))
        course = await repo.course(booked.course_id)
        reader = await repo.user(claims.user_id)
    assert course is not None and reader is not None
    zone, locale = viewer_timezone(reader.timezone), normalize_locale(reader.locale)
    if isinstance(verdict, NotYet):
        wait = verdict.opens_at - now
        html = render_join_page(
            "not_yet",
            course=course.title,
            when=format_datetime_long(verdict.opens_at, zone, locale),
            left=format_timedelta(wait, add_direction=True, locale=locale),
            # A second late rather than early: the reload must find the room open.
            refresh_seconds=math.ceil(wait.total_seconds()) + 1 if wait <= REFRESH_WITHIN else None,
        )
        return JoinPage("not_yet", html, booked.id)
    kind: PageKind = "cancelled" if isinstance(verdict, WasCancelled) else "ended"
    start = booked.scheduled_start
    when = None if start is None else format_datetime_long(start, zone, locale)
    return JoinPage(kind, render_join_page(kind, course=course.title, when=when), booked.id)
