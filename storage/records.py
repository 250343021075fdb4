"""What the repositories hand to the engine: plain frozen dataclasses, no SQLAlchemy in them.

ORM rows stay inside `storage/`: a record is a snapshot of a row, so nothing the engine does to it
can write to the database behind the repository's back, and the engine can be tested without a
session. Field names follow the tables' column names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import date, datetime, time
from typing import Any, TypeVar

T = TypeVar("T")

NOTE_MAX_CHARS = 500
"""Longest note a student may leave for the ST; the chat says so when it is exceeded."""


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    UNSCHEDULED = "unscheduled"  # "Schedule Later" (CD-033): counts against the course, no time yet
    CANCELLED = "cancelled"
    COMPLETED = "completed"


ACTIVE_STATUSES = (SessionStatus.SCHEDULED.value,)
"""Sessions that occupy time; only these take part in the no-double-booking constraints."""

COUNTED_STATUSES = (
    SessionStatus.SCHEDULED.value,
    SessionStatus.UNSCHEDULED.value,
    SessionStatus.COMPLETED.value,
)
"""Sessions that use up one of the course's `session_count`."""


def record(kind: type[T], row: Any) -> T:
    """A snapshot of `row` as `kind`, taking the attributes that `kind` declares."""
    return kind(**{f.name: getattr(row, f.name) for f in fields(kind)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str
    avatar: str | None
    email: str | None
    timezone: str
    locale: str
    is_coordinator: bool = False  # staff: the Slack app lets them act for students
    notify_platform: str | None = None  # chosen with /notify; None: the platform used last


@dataclass(frozen=True)
class CourseRecord:
    id: int
    slug: str
    title: str
    session_count: int
    session_minutes: int


@dataclass(frozen=True)
class STRecord:
    """An ST's booking settings for one course (`student_teachers`)."""

    user_id: int
    course_id: int
    is_active: bool
    buffer_minutes: int
    min_notice_minutes: int
    max_days_ahead: int
    max_per_day: int | None
    step_minutes: int


@dataclass(frozen=True)
class TeacherCard:
    """An ST of a course with the user behind them: what an ST card and slot math need."""

    st: STRecord
    user: UserRecord


@dataclass(frozen=True)
class WeeklyHours:
    user_id: int
    day_of_week: int
    start_time: time
    end_time: time
    timezone: str


@dataclass(frozen=True)
class DayOverride:
    user_id: int
    date: date
    start_time: time | None
    end_time: time | None
    timezone: str


@dataclass(frozen=True)
class SessionRecord:
    id: int
    course_id: int
    student_id: int
    teacher_id: int | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    blocked_until: datetime | None
    status: str
    reminders: bool
    note: str | None
    created_via: str
    created_by: int | None
    created_at: datetime
    video_url: str | None
    sequence: int
    cancelled_at: datetime | None
    cancelled_by: int | None
    cancel_reason: str | None


@dataclass(frozen=True)
class SessionWithPeople:
    """A session with its course, student and ST, read together: a list across campus draws
    every line from these without a query per session."""

    session: SessionRecord
    course: CourseRecord
    student: UserRecord
    teacher: UserRecord


@dataclass(frozen=True)
class IdentityRecord:
    """A chat account linked to a platform user."""

    platform: str
    external_id: str
    chat_id: str | None
    user_id: int
    last_used_at: datetime | None = None  # the account's last chat event (None: not since 0010)


@dataclass(frozen=True)
class ConversationRecord:
    id: int
    platform: str
    chat_id: str
    user_id: int | None
    state: dict[str, object]
    version: int
