"""The booking transaction: lock, check, insert, commit (DESIGN.md "no slot is ever given twice").

Returns a reason code instead of raising so that the engine maps every failure, including a
constraint violation that slipped past the checks, to one typed outcome.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import (
    ACTIVE_STATUSES,
    COUNTED_STATUSES,
    AnalyticsEvent,
    Course,
    Enrollment,
    ReminderJob,
    Session,
    SessionStatus,
    StudentTeacher,
    User,
)

FailureReason = Literal[
    "not_enrolled", "no_sessions_left", "st_unavailable", "slot_taken", "student_conflict"
]

RETRIES = 5
RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure

CONSTRAINT_REASONS: dict[str, FailureReason] = {
    "ex_sessions_teacher_no_overlap": "slot_taken",
    "ex_sessions_student_no_overlap": "student_conflict",
}


@dataclass(frozen=True)
class BookingRow:
    course_id: int
    student_id: int
    teacher_id: int
    start: datetime
    end: datetime
    reminders: bool
    note: str | None
    created_via: str
    reminder_offsets: Sequence[timedelta] = ()
    now: datetime | None = None  # reminders already due at booking time are not written
    analytics: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TxResult:
    session_id: int | None = None
    reason: FailureReason | None = None


async def book(factory: async_sessionmaker[AsyncSession], row: BookingRow) -> TxResult:
    """Book in a transaction of its own (benchmarks, workers, tests)."""
    async with factory() as session, session.begin():
        return await book_in_session(session, row)


async def book_in_session(session: AsyncSession, row: BookingRow) -> TxResult:
    """Book inside the caller's transaction, in a savepoint that a failure rolls back alone.

    The chat wizard uses this so that its conversation state and the booking commit together.
    """
    for attempt in range(RETRIES):
        try:
            async with session.begin_nested():
                return await _book_in(session, row)
        except IntegrityError as error:
            reason = _constraint_reason(error)
            if reason is None:
                raise
            return TxResult(reason=reason)
        except DBAPIError as error:
            # Concurrent inserts checked by the same exclusion constraint can deadlock; PostgreSQL
            # aborts one of them, whose retry then sees the winner's row and fails cleanly.
            if getattr(error.orig, "sqlstate", None) not in RETRYABLE or attempt == RETRIES - 1:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.02) * 2**attempt)  # let the winner commit
    raise AssertionError("unreachable")


async def lock_people(session: AsyncSession, row: BookingRow) -> None:
    """Lock the ST's and the student's rows, in id order so two bookings never wait in a cycle.

    With both locked, the checks below see every committed booking of either person.
    """
    await session.execute(
        select(User.id)
        .where(User.id.in_((row.teacher_id, row.student_id)))
        .order_by(User.id)
        .with_for_update()
    )


async def _book_in(session: AsyncSession, row: BookingRow) -> TxResult:
    await lock_people(session, row)
    st = await session.scalar(
        select(StudentTeacher).where(
            StudentTeacher.user_id == row.teacher_id, StudentTeacher.course_id == row.course_id
        )
    )
    reason = await conflict_reason(session, row, st)
    if reason is not None:
        return TxResult(reason=reason)
    assert st is not None
    booked = await _placeholder(session, row) or Session(
        course_id=row.course_id, student_id=row.student_id, created_via=row.created_via
    )
    booked.teacher_id = row.teacher_id
    booked.scheduled_start = row.start
    booked.scheduled_end = row.end
    booked.blocked_until = row.end + timedelta(minutes=st.buffer_minutes)
    booked.status = SessionStatus.SCHEDULED.value
    booked.reminders = row.reminders
    booked.note = row.note
    session.add(booked)
    await session.flush()
    if row.reminders:
        for offset in row.reminder_offsets:
            due = row.start - offset
            if row.now is None or due > row.now:
                session.add(
                    ReminderJob(session_id=booked.id, kind=f"before_{_label(offset)}", due_at=due)
                )
    session.add(
        AnalyticsEvent(
            name="booking_success",
            user_id=row.student_id,
            platform=row.created_via,
            data={"session_id": booked.id, **row.analytics},
        )
    )
    await session.flush()
    return TxResult(session_id=booked.id)


async def conflict_reason(
    session: AsyncSession, row: BookingRow, st: StudentTeacher | None
) -> FailureReason | None:
    """The application-level checks; the exclusion constraints back up the last two."""
    enrolled = await session.scalar(
        select(Enrollment.id).where(
            Enrollment.student_id == row.student_id, Enrollment.course_id == row.course_id
        )
    )
    if enrolled is None:
        return "not_enrolled"
    if st is None or not st.is_active:
        return "st_unavailable"
    course = await session.get(Course, row.course_id)
    assert course is not None
    used = await session.scalar(
        select(Session.id)
        .where(
            Session.student_id == row.student_id,
            Session.course_id == row.course_id,
            Session.status.in_(COUNTED_STATUSES),
        )
        .offset(max(course.session_count - 1, 0))
        .limit(1)
    )
    placeholder = await _placeholder(session, row)
    if course.session_count == 0 or (used is not None and placeholder is None):
        return "no_sessions_left"
    blocked_until = row.end + timedelta(minutes=st.buffer_minutes)
    teacher_clash = await session.scalar(
        select(Session.id).where(
            Session.teacher_id == row.teacher_id,
            Session.status.in_(ACTIVE_STATUSES),
            Session.scheduled_start < blocked_until,
            Session.blocked_until > row.start,
        )
    )
    if teacher_clash is not None:
        return "slot_taken"
    student_clash = await session.scalar(
        select(Session.id).where(
            Session.student_id == row.student_id,
            Session.status.in_(ACTIVE_STATUSES),
            Session.scheduled_start < row.end,
            Session.scheduled_end > row.start,
        )
    )
    if student_clash is not None:
        return "student_conflict"
    return None


async def _placeholder(session: AsyncSession, row: BookingRow) -> Session | None:
    """A "Schedule Later" session of this course is filled in rather than counted twice."""
    return await session.scalar(
        select(Session)
        .where(
            Session.student_id == row.student_id,
            Session.course_id == row.course_id,
            Session.status == SessionStatus.UNSCHEDULED.value,
        )
        .order_by(Session.id)
        .limit(1)
    )


def _constraint_reason(error: IntegrityError) -> FailureReason | None:
    text = str(error.orig)
    for name, reason in CONSTRAINT_REASONS.items():
        if name in text:
            return reason
    return None


def _label(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
