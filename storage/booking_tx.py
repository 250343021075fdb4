"""The booking transaction: lock, check, insert, commit (DESIGN.md "no slot is ever given twice").

The happy path is four statements: lock both people, one guarded INSERT that carries every rule
in its WHERE clause, the reminder jobs, the analytics event. Statements are built once, with bind
parameters, because building them per booking cost more than running them. A reason code is
returned instead of raising, so the engine maps every failure (including a constraint violation
that slipped past the checks) to one typed outcome.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    Boolean,
    ColumnElement,
    DateTime,
    Executable,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.jobs import Job, Role
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
    "not_enrolled",
    "no_sessions_left",
    "st_unavailable",
    "slot_taken",
    "student_conflict",
    "not_reschedulable",
]

# Core tables: given a dict of parameters, ORM statements would mean "bulk insert these rows".
SESSIONS = cast(Table, Session.__table__)
REMINDER_JOBS = cast(Table, ReminderJob.__table__)
ANALYTICS = cast(Table, AnalyticsEvent.__table__)

MAX_SPAN = timedelta(hours=24)
"""Longest session plus buffer; bounds the overlap searches so they use the (who, start) index."""

# Status values as SQL literals: an IN list of bind parameters is re-expanded on every execution.
ACTIVE: ColumnElement[str] = literal_column(f"'{SessionStatus.SCHEDULED.value}'")
UNSCHEDULED: ColumnElement[str] = literal_column(f"'{SessionStatus.UNSCHEDULED.value}'")
CANCELLED: ColumnElement[str] = literal_column(f"'{SessionStatus.CANCELLED.value}'")
assert set(ACTIVE_STATUSES) == {SessionStatus.SCHEDULED.value}
assert set(COUNTED_STATUSES) == set(SessionStatus) - {SessionStatus.CANCELLED}

RETRIES = 5
RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure

CONSTRAINT_REASONS: dict[str, FailureReason] = {
    "ex_sessions_teacher_no_overlap": "slot_taken",
    "ex_sessions_student_no_overlap": "student_conflict",
}


@dataclass(frozen=True)
class BookingRequest:
    """What to book, as the engine asks for it; the transaction reads it as it is (one
    definition of a booking's fields, engine and storage)."""

    course_id: int
    student_id: int
    teacher_id: int
    start: datetime
    end: datetime
    reminders: bool
    note: str | None
    platform: str  # stored as the session's `created_via`
    replaces: int | None = None  # reschedule: released only if the new session books
    created_by: int | None = None  # who booked (a coordinator for the student); None: the student

    @property
    def booked_by(self) -> int:
        """Who is acting: `created_by`, and `cancelled_by` of a time this one replaces."""
        return self.student_id if self.created_by is None else self.created_by


DayBounds = Callable[[date, str], tuple[datetime, datetime]]
"""(local date, IANA zone) -> [start, end) of that day in UTC: the engine's rule
(`engine.chat.slots.day_bounds_utc`), so the per-day limit counts the same day the slots show."""


@dataclass(frozen=True)
class BookingRow:
    """A request and what the transaction needs from the engine besides."""

    request: BookingRequest
    day_bounds: DayBounds
    reminder_offsets: Sequence[timedelta] = ()
    now: datetime | None = None  # reminders already due at booking time are not written


@dataclass(frozen=True)
class RefusalFacts:
    """What the guard found when it refused a booking; which rule the student is told about
    is the engine's decision (engine.booking.refusal), made once for every path."""

    enrolled: bool
    st_active: bool
    sessions_left: bool  # a session left in the course, or a saved one to fill in
    slot_free: bool  # the ST's calendar with its buffer, and the per-day limit
    student_free: bool  # the student's calendar, in both roles


@dataclass(frozen=True)
class TxResult:
    session_id: int | None = None
    reason: FailureReason | None = None  # decided here: a constraint or a vanished session
    facts: RefusalFacts | None = None  # the guard refused: the engine decides what to say


class _Undo(Exception):
    """Raised inside the transaction to roll back a reschedule's release when booking fails."""

    def __init__(self, result: TxResult) -> None:
        self.result = result


# --- statements, built once ----------------------------------------------------------------
def _p(name: str, kind: Any) -> Any:
    return bindparam(name, type_=kind)


STUDENT, TEACHER, COURSE = (
    _p("p_student", Integer),
    _p("p_teacher", Integer),
    _p("p_course", Integer),
)
# Plain timestamptz binds (no per-value Python processing); _book_in checks they are aware.
STAMP = DateTime(timezone=True)
START, END = _p("p_start", STAMP), _p("p_end", STAMP)
BLOCKED_UNTIL, EARLIEST = _p("p_blocked_until", STAMP), _p("p_earliest", STAMP)

LOCK = (
    select(User.id, StudentTeacher.buffer_minutes, User.timezone, StudentTeacher.max_per_day)
    .outerjoin(
        StudentTeacher,
        and_(StudentTeacher.user_id == User.id, StudentTeacher.course_id == COURSE),
    )
    .where(User.id.in_([TEACHER, STUDENT]))
    .order_by(User.id)
    .with_for_update(of=User)
)

ENROLLED = exists().where(Enrollment.student_id == STUDENT, Enrollment.course_id == COURSE)
ST_ACTIVE = exists().where(
    StudentTeacher.user_id == TEACHER,
    StudentTeacher.course_id == COURSE,
    StudentTeacher.is_active.is_(True),
)


class overlaps(FunctionElement[bool]):
    """[start, end) of a row overlaps [other_start, other_end): the constraints' own test.

    PostgreSQL gets the exclusion constraints' `tstzrange && tstzrange`, so the lookup is a
    precise search of their GiST index; elsewhere plain comparisons with a lower bound on the
    start (`earliest`) that lets a (who, start) b-tree index skip older sessions.
    Arguments: start, end, other_start, other_end, earliest.
    """

    type = Boolean()
    inherit_cache = True
    name = "overlaps"


@compiles(overlaps)
def _overlaps_default(element: overlaps, compiler: SQLCompiler, **kw: Any) -> str:
    start, end, other_start, other_end, earliest = (
        compiler.process(clause, **kw) for clause in element.clauses
    )
    return f"({start} > {earliest} AND {start} < {other_end} AND {end} > {other_start})"


@compiles(overlaps, "postgresql")
def _overlaps_postgresql(element: overlaps, compiler: SQLCompiler, **kw: Any) -> str:
    clauses = list(element.clauses)[:4]  # `earliest` stays out: an unused bind has no type
    start, end, other_start, other_end = (compiler.process(clause, **kw) for clause in clauses)
    return f"tstzrange({start}, {end}, '[)') && tstzrange({other_start}, {other_end}, '[)')"


# A person is busy in either role: an ST can also be a student of another course. One EXISTS
# per role, so that each is a precise search of its own exclusion-constraint index.
TEACHER_CLASH = or_(
    exists().where(
        Session.teacher_id == TEACHER,
        Session.status == ACTIVE,
        overlaps(Session.scheduled_start, Session.blocked_until, START, BLOCKED_UNTIL, EARLIEST),
    ),
    exists().where(
        Session.student_id == TEACHER,
        Session.status == ACTIVE,
        overlaps(Session.scheduled_start, Session.scheduled_end, START, BLOCKED_UNTIL, EARLIEST),
    ),
)
STUDENT_CLASH = or_(
    exists().where(
        Session.student_id == STUDENT,
        Session.status == ACTIVE,
        overlaps(Session.scheduled_start, Session.scheduled_end, START, END, EARLIEST),
    ),
    exists().where(
        Session.teacher_id == STUDENT,
        Session.status == ACTIVE,
        overlaps(Session.scheduled_start, Session.blocked_until, START, END, EARLIEST),
    ),
)
COUNT_LEFT = (
    select(func.count(Session.id))
    .where(
        Session.student_id == STUDENT,
        Session.course_id == COURSE,
        Session.status != CANCELLED,
    )
    .scalar_subquery()
) < select(Course.session_count).where(Course.id == COURSE).scalar_subquery()
PLACEHOLDER = (
    select(func.min(Session.id))
    .where(
        Session.student_id == STUDENT,
        Session.course_id == COURSE,
        Session.status == UNSCHEDULED,
    )
    .scalar_subquery()
)


RELEASE = (
    update(SESSIONS)
    .where(
        SESSIONS.c.id == _p("p_replaces", Integer),
        SESSIONS.c.student_id == STUDENT,
        SESSIONS.c.status == ACTIVE,
    )
    .values(
        status=CANCELLED,
        sequence=SESSIONS.c.sequence + 1,
        # Rescheduling cancels the old time (its CANCEL's DTSTAMP), by whoever is booking: the
        # student, or someone acting for them.
        cancelled_at=_p("p_cancelled_at", STAMP),
        cancelled_by=_p("p_created_by", Integer),
    )
    .returning(SESSIONS.c.id, SESSIONS.c.teacher_id)
)
DROP_JOBS = (
    update(REMINDER_JOBS)
    .where(
        REMINDER_JOBS.c.session_id == _p("p_replaces", Integer),
        REMINDER_JOBS.c.status == "pending",
    )
    .values(status="cancelled")
)
# "At most N sessions per day" for the ST, counted on the ST's local day under the lock.
NO_LIMIT = 2**31 - 1
DAY_LEFT = (
    select(func.count(Session.id))
    .where(
        Session.teacher_id == TEACHER,
        Session.status == ACTIVE,
        Session.scheduled_start >= _p("p_day_start", STAMP),
        Session.scheduled_start < _p("p_day_end", STAMP),
    )
    .scalar_subquery()
) < _p("p_max_day", Integer)

DIAGNOSE = select(
    ENROLLED, ST_ACTIVE, COUNT_LEFT, PLACEHOLDER.is_not(None), TEACHER_CLASH, DAY_LEFT
)


def guard() -> ColumnElement[bool]:
    """Every booking rule as one SQL condition; `DIAGNOSE` says which one failed."""
    return and_(ENROLLED, ST_ACTIVE, ~TEACHER_CLASH, ~STUDENT_CLASH, DAY_LEFT)


_SET = {
    "teacher_id": TEACHER,
    "scheduled_start": START,
    "scheduled_end": END,
    "blocked_until": BLOCKED_UNTIL,
    "status": ACTIVE,
    "reminders": _p("p_reminders", Boolean),
    "note": _p("p_note", Text),
    "created_by": _p("p_created_by", Integer),
}


@dataclass(frozen=True)
class Statements:
    insert: Executable
    fill: Executable
    insert_all: Executable  # PostgreSQL: the insert plus reminder jobs and analytics, one trip


@cache
def statements(rules: Callable[[], ColumnElement[bool]]) -> Statements:
    """Cached per rules function, so a test can swap the rules for `true()` (constraint alone)."""
    columns = {
        **_SET,
        "course_id": COURSE,
        "student_id": STUDENT,
        "created_via": _p("p_via", String),
    }
    fresh = select(*columns.values()).where(rules(), PLACEHOLDER.is_(None), COUNT_LEFT)
    insert_one = insert(SESSIONS).from_select(list(columns), fresh).returning(SESSIONS.c.id)
    return Statements(
        insert=insert_one,
        fill=update(SESSIONS)
        .where(SESSIONS.c.id == PLACEHOLDER, rules())
        .values(**_SET)
        .returning(SESSIONS.c.id),
        insert_all=_with_followups(insert_one.cte("booked")),
    )


def _with_followups(booked: CTE) -> Executable:
    """Data-modifying CTEs (PostgreSQL): each row written only if the guarded insert wrote one."""
    jobs = REMINDER_JOBS.insert().from_select(
        ["session_id", "kind", "due_at", "status", "attempts"],
        select(
            booked.c.id,
            func.unnest(_p("p_kinds", ARRAY(String))),
            func.unnest(_p("p_dues", ARRAY(STAMP))),
            literal("pending"),
            literal(0),
        ),
    )
    event = ANALYTICS.insert().from_select(
        ["name", "user_id", "platform", "data"],
        select(
            literal("booking_success"),
            STUDENT,
            _p("p_via", String),
            func.json_build_object("session_id", booked.c.id),
        ),
    )
    # One row whatever happened: the new id, or NULL and the facts that say why (these subqueries
    # see the table as it was before this statement's own insert; CASE evaluates them only then).
    return (
        select(
            booked_id := select(booked.c.id).scalar_subquery(),
            *(case((booked_id.is_(None), fact)) for fact in DIAGNOSE.selected_columns),
        )
        .add_cte(jobs.cte("jobs"), nest_here=False)
        .add_cte(event.cte("event"), nest_here=False)
    )


ADD_JOBS = insert(REMINDER_JOBS)
ADD_EVENT = insert(ANALYTICS)


# --- the transaction -----------------------------------------------------------------------
async def book(engine: AsyncEngine, row: BookingRow) -> TxResult:
    """Book in a transaction of its own (API callers, workers, the benchmark)."""
    for attempt in range(RETRIES):
        try:
            async with engine.begin() as connection:
                return await _book_in(connection, row)
        except _Undo as undo:
            return undo.result
        except DBAPIError as error:
            result = await _after_error(error, attempt)
            if result is not None:
                return result
    raise AssertionError("unreachable")


async def book_in_session(session: AsyncSession, row: BookingRow) -> TxResult:
    """Book inside the caller's transaction, in a savepoint that a failure rolls back alone.

    The chat wizard uses this so that its conversation state and the booking commit together.
    """
    for attempt in range(RETRIES):
        try:
            async with session.begin_nested():
                return await _book_in(await session.connection(), row)
        except _Undo as undo:
            return undo.result
        except DBAPIError as error:
            result = await _after_error(error, attempt)
            if result is not None:
                return result
    raise AssertionError("unreachable")


async def _after_error(error: DBAPIError, attempt: int) -> TxResult | None:
    """A constraint violation is an outcome; a deadlock is retried; anything else propagates.

    Concurrent inserts checked by the same exclusion constraint can deadlock; PostgreSQL aborts
    one of them, whose retry then sees the winner's row and fails cleanly.
    """
    if isinstance(error, IntegrityError):
        reason = next(
            (r for name, r in CONSTRAINT_REASONS.items() if name in str(error.orig)), None
        )
        if reason is None:
            raise error
        return TxResult(reason=reason)
    if getattr(error.orig, "sqlstate", None) not in RETRYABLE or attempt == RETRIES - 1:
        raise error
    await asyncio.sleep(random.uniform(0.005, 0.02) * 2**attempt)  # let the winner commit
    return None


async def lock_people(session: AsyncConnection, params: dict[str, Any]) -> int | None:
    """Lock the ST's and the student's rows, in id order so two bookings never wait in a cycle.

    Returns the ST's buffer for this course (None when the user does not teach it); with a
    per-day limit it sets `p_max_day` and leaves the ST's zone in `params[ST_ZONE]` for the
    caller to find the ST-local day. Once both rows are locked, the next statements see every
    committed booking of either person.
    """
    found = {row[0]: row for row in await session.execute(LOCK, params)}
    teacher = found.get(params["p_teacher"])
    if teacher is None:
        return None
    _, buffer, zone, max_per_day = teacher
    if max_per_day is not None:
        params.update({"p_max_day": max_per_day, ST_ZONE: zone})
    return int(buffer) if buffer is not None else None


ST_ZONE = "st_zone"
"""Not a bind parameter: the ST's zone, read under the lock, for the per-day limit's day."""


def _limit_day(params: dict[str, Any], start: datetime, day_bounds: DayBounds) -> None:
    """The ST-local day of `start`, by the engine's rule (a missing midnight starts at the jump)."""
    zone = params.pop(ST_ZONE, None)
    if zone is not None:
        params["p_day_start"], params["p_day_end"] = day_bounds(
            start.astimezone(ZoneInfo(zone)).date(), zone
        )


async def _book_in(session: AsyncConnection, row: BookingRow) -> TxResult:
    """Release the rescheduled session (if any), then book; a failed booking undoes the release."""
    result = await _book_guarded(session, row)
    if row.request.replaces is not None and result.session_id is None:
        raise _Undo(result)
    return result


async def _book_guarded(session: AsyncConnection, row: BookingRow) -> TxResult:
    ask = row.request
    if ask.start.tzinfo is None or ask.end.tzinfo is None:
        raise ValueError("booking times must be timezone-aware")
    # SQLite keeps no zone: normalise to UTC so every engine stores the same instant.
    ask = replace(ask, start=ask.start.astimezone(UTC), end=ask.end.astimezone(UTC))
    row = replace(row, request=ask)
    params: dict[str, Any] = {
        "p_student": ask.student_id,
        "p_teacher": ask.teacher_id,
        "p_course": ask.course_id,
        "p_start": ask.start,
        "p_end": ask.end,
        "p_earliest": ask.start - MAX_SPAN,
        "p_reminders": ask.reminders,
        "p_note": ask.note,
        "p_via": ask.platform,
        "p_created_by": ask.booked_by,
    }
    params.update(p_day_start=ask.start, p_day_end=ask.start, p_max_day=NO_LIMIT)
    buffer = await lock_people(session, params)
    _limit_day(params, ask.start, row.day_bounds)
    params["p_blocked_until"] = ask.end + timedelta(minutes=buffer or 0)
    if ask.replaces is not None:
        params["p_replaces"] = ask.replaces
        params["p_cancelled_at"] = (row.now or datetime.now(UTC)).astimezone(UTC)
        released = (await session.execute(RELEASE, params)).first()
        if released is None:
            return TxResult(reason="not_reschedulable")
        await session.execute(DROP_JOBS, params)
        # The old time's calendar entries are cancelled and its ST is told, as for a cancel.
        old_teacher = released[1]
        notices = [
            Job.cancelled_email(ask.student_id, moved=True),
            Job.cancelled_email(old_teacher, moved=True),
            Job.cancelled_chat(old_teacher, moved=True),
        ]
        await session.execute(
            ADD_JOBS,
            [
                {"session_id": ask.replaces, "kind": job.format(), "due_at": row.now or ask.start}
                for job in notices
            ],
        )
    if not ask.start < ask.end or params["p_blocked_until"] - ask.start >= MAX_SPAN:
        raise ValueError(f"a session must last between 0 and {MAX_SPAN} with its buffer")
    written = statements(guard)
    jobs = _jobs(row)
    if session.dialect.name == "postgresql":
        params["p_kinds"] = [kind for kind, _ in jobs]
        params["p_dues"] = [due for _, due in jobs]
        booked_id, *facts = (await session.execute(written.insert_all, params)).one()
        if booked_id is not None:
            return TxResult(session_id=booked_id)
        if not facts[3]:  # no "Schedule Later" placeholder to fill in: the facts say why
            return TxResult(facts=_facts(*facts))
    else:
        booked_id = await session.scalar(written.insert, params)
        if booked_id is not None:
            await _write_followups(session, row, booked_id, jobs)
            return TxResult(session_id=booked_id)
    booked_id = await session.scalar(written.fill, params)
    if booked_id is None:
        return TxResult(facts=await _diagnose(session, params))
    await _write_followups(session, row, booked_id, jobs)
    return TxResult(session_id=booked_id)


def _jobs(row: BookingRow) -> list[tuple[str, datetime]]:
    """The outbox rows of a booking, one per recipient and message, so a retry repeats nothing.

    Reminders before the start go to the student (when they asked for reminders) and to the ST;
    one already due at booking time would arrive too late and is not written. At the start both
    get the video room; the confirmation e-mails (student's and ST's) go out at once.
    """
    start, now = row.request.start, row.now
    # The student's reminders come as a chat DM and an e-mail.
    people: tuple[Role, ...] = ("student", "teacher") if row.request.reminders else ("teacher",)
    jobs: list[tuple[Job, datetime]] = []
    for offset in row.reminder_offsets:
        if now is not None and start - offset <= now:
            continue
        for who in people:
            jobs.append((Job.reminder(who, offset), start - offset))
            if who == "student":
                jobs.append((Job.reminder_email(offset), start - offset))
    jobs += [(Job.room(who), start) for who in people]
    # Both people get the invite e-mail, each written for its reader (RFC 5546: both ATTENDEEs).
    jobs.append((Job.confirmation_email("student"), now or start))
    jobs.append((Job.confirmation_email("teacher"), now or start))
    jobs.append((Job.booked(), now or start))  # the ST hears of it on chat
    if row.request.booked_by != row.request.student_id:
        # A coordinator booked it: the student did not see the wizard, so they are told too.
        jobs.append((Job.booked("student"), now or start))
    return [(job.format(), due) for job, due in jobs]


async def _write_followups(
    session: AsyncConnection, row: BookingRow, booked_id: int, jobs: list[tuple[str, datetime]]
) -> None:
    """Reminder jobs (the outbox) and the analytics event commit with the booking or not at all."""
    if jobs:
        await session.execute(
            ADD_JOBS,
            [{"session_id": booked_id, "kind": kind, "due_at": due} for kind, due in jobs],
        )
    await session.execute(
        ADD_EVENT,
        {
            "name": "booking_success",
            "user_id": row.request.student_id,
            "platform": row.request.platform,
            "data": {"session_id": booked_id},
        },
    )


async def _diagnose(session: AsyncConnection, params: dict[str, Any]) -> RefusalFacts:
    return _facts(*(await session.execute(DIAGNOSE, params)).one())


def _facts(
    enrolled: bool,
    st_active: bool,
    count_left: bool,
    has_placeholder: bool,
    teacher_clash: bool,
    day_left: bool,
) -> RefusalFacts:
    others_hold = (
        bool(enrolled and st_active and (count_left or has_placeholder) and day_left)
        and not teacher_clash
    )
    return RefusalFacts(
        enrolled=bool(enrolled),
        st_active=bool(st_active),
        sessions_left=bool(count_left or has_placeholder),
        slot_free=not teacher_clash and bool(day_left),
        # The diagnosis does not look at the student's calendar: the guard refused, so when
        # every other rule holds it was the student's own session that clashed.
        student_free=not others_hold,
    )
