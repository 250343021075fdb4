"""Booking rules and their typed outcomes; the entry points map each outcome to the spec's words."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from engine.chat.slots import day_bounds_utc
from storage.booking_tx import BookingRequest as BookingRequest  # one definition, re-exported
from storage.booking_tx import FailureReason
from storage.booking_tx import RefusalFacts as RefusalFacts  # re-exported for the rule's callers
from storage.uow import UnitOfWork

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Booked:
    session_id: int
    error_type: None = None


@dataclass(frozen=True)
class ScheduledLater:
    session_id: int
    reused: bool = False  # the student's existing saved session of the course, not a new one
    error_type: None = None


@dataclass(frozen=True)
class SlotTaken:
    error_type: str = "slot_taken"


@dataclass(frozen=True)
class StudentConflict:
    error_type: str = "student_conflict"


@dataclass(frozen=True)
class NotEnrolled:
    error_type: str = "not_enrolled"


@dataclass(frozen=True)
class NoSessionsLeft:
    error_type: str = "no_sessions_left"


@dataclass(frozen=True)
class STUnavailable:
    error_type: str = "st_unavailable"


@dataclass(frozen=True)
class NotReschedulable:
    error_type: str = "not_reschedulable"


@dataclass(frozen=True)
class BookingFailed:
    error_type: str = "error"


Failure = (
    SlotTaken
    | StudentConflict
    | NotEnrolled
    | NoSessionsLeft
    | STUnavailable
    | NotReschedulable
    | BookingFailed
)
Outcome = Booked | Failure

FAILURES: dict[FailureReason, Failure] = {
    "slot_taken": SlotTaken(),
    "student_conflict": StudentConflict(),
    "not_enrolled": NotEnrolled(),
    "no_sessions_left": NoSessionsLeft(),
    "st_unavailable": STUnavailable(),
    "not_reschedulable": NotReschedulable(),
}


async def book_session(
    uow: UnitOfWork,
    request: BookingRequest,
    *,
    reminder_offsets: list[timedelta],
    now: datetime,
) -> Outcome:
    """Run the booking transaction inside the unit of work (a savepoint of it).

    Any unexpected database error becomes BookingFailed ("Unable to book. Please try again.")
    so that the conversation survives and the student can retry.
    """
    # The engine's own ST-local day, so the per-day limit and the slots agree across DST.
    try:
        result = await uow.book(request, day_bounds_utc, reminder_offsets=reminder_offsets, now=now)
    except Exception as error:
        # One line where people read logs (the terminal chat, INFO in production); the trace
        # only at DEBUG. The error's class, never its text: that may quote the student's data.
        log.error(
            "booking transaction failed for student %s: %s",
            request.student_id,
            type(error).__name__,
        )
        log.debug("booking transaction failure", exc_info=True)
        return BookingFailed()
    if result.session_id is not None:
        return Booked(result.session_id)
    if result.facts is not None:
        return refusal(result.facts) or BookingFailed()
    assert result.reason is not None
    return FAILURES[result.reason]


def refusal(facts: RefusalFacts) -> Failure | None:
    """Which booking rule refuses, in the order the student can act on them; None: it may go.

    The one statement of that order: the catalog's checks, the transaction's diagnosis and the
    in-memory catalog of the tests all decide through here.
    """
    if not facts.enrolled:
        return NotEnrolled()
    if not facts.st_active:
        return STUnavailable()
    if not facts.sessions_left:
        return NoSessionsLeft()
    if not facts.slot_free:
        return SlotTaken()
    if not facts.student_free:
        return StudentConflict()
    return None


def other_party(viewer_id: int, student_id: int, student: T, teacher: T | None) -> T:
    """Whoever is on the other side of a session from the viewer: its ST for its student, its
    student for anyone else (the ST, or someone acting for them). The one rule every message
    naming "the other person" uses."""
    return teacher if viewer_id == student_id and teacher is not None else student
