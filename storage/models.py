"""SQLAlchemy models.

The first six tables keep the web platform's own table and column names (DESIGN.md: the bots can be
pointed at the platform's database); the rest are tables only the bots need.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.records import (
    ACTIVE_STATUSES as ACTIVE_STATUSES,
)
from storage.records import (
    COUNTED_STATUSES as COUNTED_STATUSES,
)
from storage.records import (
    NOTE_MAX_CHARS as NOTE_MAX_CHARS,
)
from storage.records import (
    SessionStatus as SessionStatus,
)
from storage.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    avatar: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # Campus staff who may act for students (the Slack app); set by the web platform's data.
    is_coordinator: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The platform chosen with /notify for notices; NULL: the chat account used last.
    notify_platform: Mapped[str | None] = mapped_column(String(16))


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    session_count: Mapped[int] = mapped_column(Integer, default=10)
    session_minutes: Mapped[int] = mapped_column(Integer, default=60)

    __table_args__ = (
        CheckConstraint("session_count >= 0", name="ck_courses_session_count"),
        CheckConstraint("session_minutes > 0", name="ck_courses_session_minutes"),
    )


class StudentTeacher(Base):
    """A user who teaches one course, with the per-ST booking settings (Cal.com-style)."""

    __tablename__ = "student_teachers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    buffer_minutes: Mapped[int] = mapped_column(Integer, default=15)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    max_days_ahead: Mapped[int] = mapped_column(Integer, default=60)
    max_per_day: Mapped[int | None] = mapped_column(Integer)
    step_minutes: Mapped[int] = mapped_column(Integer, default=30)

    __table_args__ = (
        UniqueConstraint("user_id", "course_id", name="uq_student_teachers_user_course"),
        CheckConstraint("buffer_minutes >= 0", name="ck_student_teachers_buffer"),
    )


class Availability(Base):
    """Weekly wall-clock rule of an ST (a person, across the courses they teach)."""

    __tablename__ = "availability"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    day_of_week: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)  # <= start_time: crosses midnight
    timezone: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("day_of_week BETWEEN 0 AND 6", name="ck_availability_day_of_week"),
    )


class AvailabilityOverride(Base):
    """A day off (no times) or special hours replacing the weekly rules on one local date."""

    __tablename__ = "availability_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    date: Mapped[date] = mapped_column(Date)
    start_time: Mapped[time | None] = mapped_column(Time)
    end_time: Mapped[time | None] = mapped_column(Time)
    timezone: Mapped[str] = mapped_column(String(64))


class Enrollment(Base):
    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))

    __table_args__ = (
        UniqueConstraint("student_id", "course_id", name="uq_enrollments_student_course"),
    )


class Session(Base):
    """A tutoring session. `teacher_id` is the ST's user id: a person cannot be in two places."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    student_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    teacher_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    scheduled_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # end + the ST's buffer at booking time: what the per-ST exclusion constraint guards.
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.SCHEDULED.value)
    reminders: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(Text)
    # Where the session was made (the chat platform, "console", "web", ...) and who made it: the
    # student, or someone booking on their behalf (a coordinator). `created_by` is NULL only
    # where nobody recorded it (rows the web platform wrote itself).
    created_via: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    # Created when the first person taps Join or the session-start reminder goes out.
    video_url: Mapped[str | None] = mapped_column(String(500))
    # The calendar invite's SEQUENCE: raised on every change so calendar apps update in place.
    sequence: Mapped[int] = mapped_column(Integer, server_default="0")
    # Set with status 'cancelled': the calendar CANCEL's DTSTAMP and the e-mails' "who cancelled".
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Why, in the canceller's words, when they gave a reason: shown in the other person's notice
    # and in both cancellation e-mails.
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('scheduled', 'unscheduled', 'cancelled', 'completed')",
            name="ck_sessions_status",
        ),
        CheckConstraint(
            "status = 'unscheduled' OR (scheduled_start IS NOT NULL AND teacher_id IS NOT NULL"
            " AND scheduled_end > scheduled_start AND blocked_until >= scheduled_end)",
            name="ck_sessions_times",
        ),
        CheckConstraint(
            f"note IS NULL OR length(note) <= {NOTE_MAX_CHARS}", name="ck_sessions_note_length"
        ),
        Index("ix_sessions_teacher_start", "teacher_id", "scheduled_start"),
        Index("ix_sessions_student_start", "student_id", "scheduled_start"),
        # The course's session count and "Schedule Later" lookups in the booking transaction.
        Index("ix_sessions_student_course", "student_id", "course_id", "status"),
    )


class ChatIdentity(Base):
    """Links a chat account (Telegram user, Slack user, console) to a platform user."""

    __tablename__ = "chat_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    # The last event from this account: where notices go until the person picks with /notify.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("platform", "external_id", name="uq_chat_identities_platform_external"),
    )


class Conversation(Base):
    """The booking wizard's state per chat, so a restart or a second worker continues it."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # The chat's live wizard message and its companions (ST cards), so any bot process can edit
    # or remove them. Text, as each platform spells them: Telegram's are numbers, Slack's `ts`
    # ("1700000000.123456") is not.
    message_id: Mapped[str | None] = mapped_column(String(64))
    extra_message_ids: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        UniqueConstraint("platform", "chat_id", name="uq_conversations_platform_chat"),
    )


class ProcessedUpdate(Base):
    """Platform deliveries already handled; the primary key makes a duplicate a no-op."""

    __tablename__ = "processed_updates"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class ReminderJob(Base):
    """Outbox row: a reminder to send at `due_at`, claimed by workers with SKIP LOCKED."""

    __tablename__ = "reminder_jobs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("session_id", "kind", name="uq_reminder_jobs_session_kind"),
        Index("ix_reminder_jobs_due", "status", "due_at"),
    )


class AnalyticsEvent(Base):
    __tablename__ = "analytics_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    platform: Mapped[str | None] = mapped_column(String(16))
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class LinkUse(Base):
    """Which chat account opened a deep link first: a forwarded link cannot log in someone else."""

    __tablename__ = "link_uses"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    # When the link stops working: only then may this row go (earlier would reopen the link).
    # NULL for rows written before the column existed; those are never pruned.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SendRate(Base):
    """One bot's send budget, shared by every outbox worker (storage/send_rate.py).

    Times are seconds since the epoch on the database server's clock, as doubles, so that the
    refill arithmetic is the same SQL on PostgreSQL and SQLite.
    """

    __tablename__ = "send_rates"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the platform, "telegram"
    tokens: Mapped[float] = mapped_column(Double)  # below zero: turns already promised
    counted_at: Mapped[float] = mapped_column(Double)
    paused_until: Mapped[float] = mapped_column(Double)  # a 429's end; 0: never paused
