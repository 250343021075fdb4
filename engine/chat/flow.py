"""The booking conversation as a state machine: the steps of the spec, one handler per event.

Handlers take the state, an event and a Ctx (the catalog port, the viewer, "now") and return the
next state; they record analytics events and a one-line notice on the Ctx. No SQL and no platform
SDK here: the catalog port is all the outside world they see, so tests drive them in memory.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from engine.booking import (
    Booked,
    BookingFailed,
    BookingRequest,
    NoSessionsLeft,
    NotEnrolled,
    NotReschedulable,
    Outcome,
    ScheduledLater,
    SlotTaken,
    StudentConflict,
    STUnavailable,
)
from engine.chat import messages as m
from engine.chat import views
from engine.chat.dates import DateParseError, example_day, parse_day
from engine.chat.formatting import first_weekday, format_day
from engine.chat.screens import Action, Kind, Screen, decode
from engine.chat.slots import day_bounds_utc, days_with_slots
from engine.chat.text import clean_text
from engine.chat.views import CourseInfo, TeacherInfo, Viewer
from engine.followup.calendar import organizer_of
from storage.records import NOTE_MAX_CHARS


class Step(enum.StrEnum):
    """The wizard's steps; SUCCESS, SCHEDULED_LATER and IDLE end it (see FINAL_STEPS)."""

    IDLE = "idle"
    CHOOSE_COURSE = "choose_course"
    NOT_ENROLLED = "not_enrolled"
    NO_SESSIONS_LEFT = "no_sessions_left"
    CHOOSE_ST = "choose_st"
    NO_STS = "no_sts"
    CHOOSE_DATE = "choose_date"
    CHOOSE_TIME = "choose_time"
    CONFIRM = "confirm"
    NOTE = "note"
    BOOKING = "booking"
    SUCCESS = "success"
    SCHEDULED_LATER = "scheduled_later"


# Screens that end the wizard: their message stays as it is, text and buttons, for good.
FINAL_STEPS = frozenset({Step.IDLE, Step.SUCCESS, Step.SCHEDULED_LATER})


@dataclass
class State:
    """Everything the wizard remembers between messages; JSON-serialisable for the database."""

    step: Step = Step.IDLE
    course_id: int | None = None
    teacher_id: int | None = None
    preselected: bool = False
    source: str | None = None
    month: str | None = None  # "YYYY-MM" shown by the calendar
    day: str | None = None  # viewer-local ISO date
    slot: int | None = None  # minutes since the epoch, UTC
    reminders: bool = True
    note: str | None = None
    session_id: int | None = None
    rescheduling: int | None = None  # the session this booking replaces, if any
    # A coordinator booking on a student's behalf: the student (None: the viewer books for
    # themselves). Checked again on every step, as the coordinator may lose the role.
    student_id: int | None = None
    # When "Book Session" showed the loading state (epoch seconds): a press while it is fresh
    # is a double click that must not undo the booking under way.
    loading_since: int | None = None
    nonce: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "step": self.step.value}

    @classmethod
    def from_json(cls, data: object) -> State:
        """A corrupt, outdated or inconsistent record starts afresh rather than failing the chat.

        The nonce survives when it is readable, so buttons already on screen still expire.
        """
        if not isinstance(data, dict):
            return cls()
        nonce = data.get("nonce", 0)
        nonce = nonce if isinstance(nonce, int) and not isinstance(nonce, bool) else 0
        types = {f.name: f.type for f in fields(cls)}
        try:
            state = cls(**{k: v for k, v in data.items() if k in types})
            state.step = Step(state.step)
            state.nonce = nonce
        except (TypeError, ValueError):
            return cls(nonce=nonce)
        if not _consistent(state):
            return cls(step=Step.CHOOSE_COURSE, nonce=nonce)
        return state


# What each step needs to be rendered; a record that lacks it (or has the wrong types) is reset.
_NEEDS: dict[Step, tuple[str, ...]] = {
    Step.NOT_ENROLLED: ("course_id",),
    Step.NO_SESSIONS_LEFT: ("course_id",),
    Step.CHOOSE_ST: ("course_id",),
    Step.NO_STS: ("course_id",),
    Step.SCHEDULED_LATER: ("course_id",),
    Step.CHOOSE_DATE: ("course_id", "teacher_id"),
    Step.CHOOSE_TIME: ("course_id", "teacher_id", "day"),
    Step.CONFIRM: ("course_id", "teacher_id", "day", "slot"),
    Step.NOTE: ("course_id", "teacher_id", "day", "slot"),
    Step.BOOKING: ("course_id", "teacher_id", "day", "slot"),
    Step.SUCCESS: ("course_id", "teacher_id", "day", "slot", "session_id"),
}
_INTS = (
    "course_id",
    "teacher_id",
    "slot",
    "session_id",
    "rescheduling",
    "student_id",
    "loading_since",
)
# A loading state younger than this is a booking under way; older, a process died mid-way.
LOADING_GRACE = timedelta(seconds=30)


def _consistent(state: State) -> bool:
    for name in _INTS:
        value = getattr(state, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return False
    if not isinstance(state.reminders, bool) or not isinstance(state.preselected, bool):
        return False
    if state.note is not None and not isinstance(state.note, str):
        return False
    try:
        if state.day is not None:
            date.fromisoformat(state.day)
        if state.month is not None:
            date.fromisoformat(f"{state.month}-01")
        if state.slot is not None:
            _slot_time(state.slot)
    except (TypeError, ValueError, OverflowError):
        return False
    return all(getattr(state, name) is not None for name in _NEEDS.get(state.step, ()))


def _slot_time(minutes: int) -> datetime:
    """Raises ValueError/OverflowError for values no real slot has (forged button data)."""
    return datetime.fromtimestamp(minutes * 60, UTC)


# --- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    """Entry from a deep link, a command or the console: course and optional pre-selected ST."""

    course_id: int | None = None
    course_slug: str | None = None
    teacher_id: int | None = None
    source: str | None = None
    reschedule: int | None = None  # a session of this student, checked by the caller
    student_id: int | None = None  # book for this student (coordinators only; see Ctx)


@dataclass(frozen=True)
class Press:
    """A button press, carrying the raw button data exactly as the platform delivered it."""

    data: str


@dataclass(frozen=True)
class Text:
    text: str
    # The nonce of the screen the text was typed into, when the platform knows it (a Slack
    # modal's field): text meant for an older screen is refused, not read as a date.
    nonce: int | None = None


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Proceed:
    """Book the slot confirmed by the previous event. The engine sends it to itself after the
    loading state was committed and shown, so no platform call waits inside a transaction."""


@dataclass(frozen=True)
class Unlink:
    """/unlink: asks before the chat account stops being linked (engine/chat/account_dialogue)."""


@dataclass(frozen=True)
class Away:
    """/away <day | range | day with hours>: time off for an ST (engine/chat/time_off.py)."""

    text: str = ""


@dataclass(frozen=True)
class Show:
    """Draw the current step again, changing nothing: a platform refused an update (Slack's
    stale view `hash`: another click won), so the person sees where the booking really is."""

    notice: str | None = None


@dataclass(frozen=True)
class StaffHome:
    """A staff member's home (Slack App Home): today, this week, hours, days off."""


@dataclass(frozen=True)
class MySessions:
    """/mysessions: the person's sessions, each with its buttons (engine/session_dialogue.py)."""


@dataclass(frozen=True)
class Notify:
    """/notify: where the person's notices go (engine/chat/notify_dialogue.py)."""


Event = Start | Press | Text | Cancel | Proceed
# Everything a chat can send: the wizard's events and the session dialogues'.
ChatEvent = Event | Show | MySessions | Unlink | StaffHome | Notify | Away


# --- the port to the outside world -----------------------------------------------------------
class Catalog(Protocol):
    async def course(self, course_id: int) -> CourseInfo | None: ...
    async def course_by_slug(self, slug: str) -> CourseInfo | None: ...
    async def enrolled_courses(self, student_id: int) -> list[CourseInfo]: ...
    async def is_enrolled(self, student_id: int, course_id: int) -> bool: ...
    async def teaches(self, user_id: int, course_id: int) -> bool: ...
    async def sessions_left(self, student_id: int, course_id: int) -> int: ...
    async def teachers(self, course_id: int) -> list[TeacherInfo]: ...
    async def teacher(self, course_id: int, teacher_id: int) -> TeacherInfo | None: ...
    async def free_slots(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[datetime]: ...
    async def first_free(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int | None,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> datetime | None:
        """The first of `free_slots`: a catalog may answer it from memory (ST cards)."""
        ...

    async def book(self, request: BookingRequest, now: datetime) -> Outcome: ...
    async def booked_session(self, student_id: int, teacher_id: int, start: datetime) -> int | None:
        """The student's scheduled session with this ST at this start, if one exists."""
        ...

    async def schedule_later(
        self, student_id: int, course_id: int, platform: str, created_by: int | None = None
    ) -> ScheduledLater | NotEnrolled | NoSessionsLeft: ...

    async def person(self, user_id: int) -> Viewer | None:
        """The student a coordinator books for: name and e-mail (zone and locale are theirs,
        though screens show the coordinator's)."""
        ...


@dataclass
class Ctx:
    catalog: Catalog
    viewer: Viewer
    now: datetime
    platform: str
    dashboard_url: str = "https://tutoring.example.edu/dashboard"
    enroll_url: str = "https://tutoring.example.edu/courses/{slug}"
    # EMAIL_FROM: the calendar invite's ORGANIZER, the same as in the e-mailed invites.
    email_from: str = "Tutoring <bookings@tutoring.example.edu>"
    analytics: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notice: str | None = None
    booked_now: int | None = None  # the session booked by this very event, if any
    # Set when the event changed nothing (a stale press, text after a final screen): the front
    # end answers with the notice alone and leaves every message as it is.
    unchanged: bool = False
    # Set by "Book Session": the loading state is saved and shown first; then Proceed books.
    proceed: bool = False
    # The viewer is a coordinator (users.is_coordinator): they may book for another student.
    coordinator: bool = False
    # (session id, person's user id, session end) -> that person's /join link (PUBLIC_BASE_URL),
    # for the invite and calendar links of "Session Booked!"; None: the invite has no location.
    join_link: Callable[[int, int, datetime], str] | None = None

    def emit(self, name: str, **data: Any) -> None:
        self.analytics.append((name, data))

    def nothing_changed(self, notice: str) -> None:
        self.notice = notice
        self.unchanged = True

    @property
    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.viewer.timezone)).date()


def student_of(state: State, ctx: Ctx) -> int:
    """Whose booking this is: the student a coordinator acts for, else the viewer."""
    return ctx.viewer.user_id if state.student_id is None else state.student_id


def _for_someone_else(state: State, ctx: Ctx) -> bool:
    return student_of(state, ctx) != ctx.viewer.user_id


# --- dispatch ------------------------------------------------------------------------------
async def apply(state: State, event: Event, ctx: Ctx) -> State:
    if isinstance(event, Proceed):
        if state.step != Step.BOOKING:
            ctx.nothing_changed(m.EXPIRED)  # another process booked or moved on already
            return state
        return await book_now(state, ctx)
    if state.step == Step.BOOKING:
        since = state.loading_since
        if since is not None and ctx.now.timestamp() - since < LOADING_GRACE.total_seconds():
            ctx.nothing_changed(m.BOOKING_LOADING)  # a second click while the first books
            return state
        return await recover(state, ctx)
    if _for_someone_else(state, ctx) and not ctx.coordinator and not isinstance(event, Start):
        ctx.notice = m.COORDINATORS_ONLY  # the role was taken away since the wizard began
        return State(step=Step.IDLE, nonce=state.nonce)
    if isinstance(event, Start):
        return await start(state, event, ctx)
    if isinstance(event, Cancel):
        return cancel(state, ctx)
    if isinstance(event, Text):
        if event.nonce is not None and event.nonce != state.nonce:
            ctx.nothing_changed(m.EXPIRED)
            return state
        return await type_text(state, clean_text(event.text), ctx)
    decoded = decode(event.data)
    if decoded is None or decoded[0] != state.nonce or state.step not in ALLOWED[decoded[1].kind]:
        ctx.nothing_changed(m.EXPIRED)
        return state
    action = decoded[1]
    return await HANDLERS[action.kind](state, action, ctx)


async def start(state: State, event: Start, ctx: Ctx) -> State:
    course = None
    if event.course_id is not None:
        course = await ctx.catalog.course(event.course_id)
    elif event.course_slug:
        course = await ctx.catalog.course_by_slug(event.course_slug)
        if course is None:
            ctx.notice = m.UNKNOWN_COURSE.format(slug=event.course_slug[:64])
    on_behalf = event.student_id is not None and event.student_id != ctx.viewer.user_id
    if on_behalf and not ctx.coordinator:
        ctx.notice = m.COORDINATORS_ONLY
        return State(step=Step.IDLE, nonce=state.nonce)
    student_id = event.student_id if on_behalf else None
    if course is None:
        return State(step=Step.CHOOSE_COURSE, student_id=student_id, nonce=state.nonce)
    fresh = State(
        course_id=course.id,
        source=event.source,
        rescheduling=event.reschedule,
        student_id=student_id,
        nonce=state.nonce,
    )
    ctx.emit("page_view", course_id=course.id, st_preselected=event.teacher_id is not None)
    student = student_of(fresh, ctx)
    if not await ctx.catalog.is_enrolled(student, course.id):
        if await ctx.catalog.teaches(student, course.id):
            template = m.THEY_TEACH if on_behalf else m.YOU_TEACH
            ctx.notice = template.format(course=course.title)
            return State(step=Step.IDLE, nonce=state.nonce)
        return replace(fresh, step=Step.NOT_ENROLLED)
    if event.reschedule is None and await ctx.catalog.sessions_left(student, course.id) <= 0:
        return replace(fresh, step=Step.NO_SESSIONS_LEFT)
    if event.teacher_id is not None:
        teacher = await ctx.catalog.teacher(course.id, event.teacher_id)
        if teacher is not None and teacher.is_active:
            return await _open_calendar(
                replace(fresh, teacher_id=teacher.id, preselected=True), ctx
            )
        ctx.notice = m.ST_NO_LONGER_AVAILABLE.format(name=teacher.name if teacher else "This ST")
    return await _to_choose_st(fresh, ctx)


async def _to_choose_st(state: State, ctx: Ctx) -> State:
    assert state.course_id is not None
    teachers = await ctx.catalog.teachers(state.course_id)
    step = Step.CHOOSE_ST if teachers else Step.NO_STS
    return replace(state, step=step, teacher_id=None, preselected=False, day=None, slot=None)


async def _open_calendar(state: State, ctx: Ctx) -> State:
    """Open the calendar on the month of the ST's next free slot, so the first view is useful."""
    first = await _next_free(state, ctx)
    shown = first.astimezone(ZoneInfo(ctx.viewer.timezone)).date() if first else ctx.today
    return replace(state, step=Step.CHOOSE_DATE, month=f"{shown:%Y-%m}", day=None, slot=None)


async def pick_course(state: State, action: Action, ctx: Ctx) -> State:
    chosen = Start(course_id=int(action.arg), source="chat", student_id=state.student_id)
    return await start(state, chosen, ctx)


async def pick_st(state: State, action: Action, ctx: Ctx) -> State:
    assert state.course_id is not None
    teacher = await ctx.catalog.teacher(state.course_id, int(action.arg))
    if teacher is None or not teacher.is_active:
        ctx.notice = m.ST_NO_LONGER_AVAILABLE.format(name=teacher.name if teacher else "This ST")
        return await _to_choose_st(state, ctx)
    ctx.emit("st_selected", st_id=teacher.id)
    return await _open_calendar(replace(state, teacher_id=teacher.id, preselected=False), ctx)


async def change_month(state: State, action: Action, ctx: Ctx) -> State:
    year, month = (int(part) for part in action.arg.split("-"))
    lowest, highest = await _month_bounds(state, ctx)
    if not lowest <= (year, month) <= highest:
        ctx.notice = m.EXPIRED
        return state
    return replace(state, step=Step.CHOOSE_DATE, month=action.arg)


async def pick_date(state: State, action: Action, ctx: Ctx) -> State:
    try:
        day = date.fromisoformat(action.arg)
    except ValueError:
        ctx.notice = m.EXPIRED
        return state
    return await choose_day(state, day, ctx)


async def quick_option(state: State, action: Action, ctx: Ctx) -> State:
    today = ctx.today
    if action.arg == "today":
        return await choose_day(state, today, ctx)
    if action.arg == "tomorrow":
        return await choose_day(state, today + timedelta(days=1), ctx)
    week_end = None
    if action.arg == "week":
        days_left = (first_weekday(ctx.viewer.locale) - today.weekday() - 1) % 7
        week_end = today + timedelta(days=days_left)
    first = await _next_free(state, ctx, until_day=week_end)
    if first is None:
        ctx.notice = m.NO_SLOTS_THIS_WEEK if week_end else await _nothing_free(state, ctx)
        return replace(state, step=Step.CHOOSE_DATE)
    return await choose_day(state, first.astimezone(ZoneInfo(ctx.viewer.timezone)).date(), ctx)


async def choose_day(state: State, day: date, ctx: Ctx) -> State:
    """Every way of choosing a date ends here: buttons, quick options and typed text."""
    label = format_day(day, ctx.viewer.locale)
    calendar = replace(state, step=Step.CHOOSE_DATE, month=f"{day:%Y-%m}", day=None, slot=None)
    if day < ctx.today:
        ctx.notice = m.DATE_PAST.format(day=label)
        return replace(calendar, month=f"{ctx.today:%Y-%m}")
    teacher = await _teacher(state, ctx)
    if day > ctx.today + timedelta(days=teacher.max_days_ahead):
        ctx.notice = m.DATE_TOO_FAR.format(day=label, days=teacher.max_days_ahead)
        return replace(state, step=Step.CHOOSE_DATE)
    if not await _slots_on(state, day, ctx):
        ctx.notice = m.DATE_NO_SLOTS.format(day=label)
        return calendar
    ctx.emit("date_selected", date=day.isoformat())
    return replace(calendar, step=Step.CHOOSE_TIME, day=day.isoformat())


async def pick_slot(state: State, action: Action, ctx: Ctx) -> State:
    assert state.day is not None
    try:
        slot = _slot_time(int(action.arg))
    except (ValueError, OverflowError):
        slot = None
    if slot is None or slot not in await _slots_on(state, date.fromisoformat(state.day), ctx):
        ctx.notice = m.SLOT_TAKEN
        return replace(state, step=Step.CHOOSE_TIME)
    ctx.emit("time_selected", time=slot.isoformat(), st_id=state.teacher_id)
    return replace(state, step=Step.CONFIRM, slot=int(action.arg))


async def toggle_reminders(state: State, action: Action, ctx: Ctx) -> State:
    return replace(state, reminders=not state.reminders)


async def add_note(state: State, action: Action, ctx: Ctx) -> State:
    return replace(state, step=Step.NOTE)


async def remove_note(state: State, action: Action, ctx: Ctx) -> State:
    ctx.notice = m.NOTE_REMOVED
    return replace(state, note=None, step=Step.CONFIRM)


def save_note(state: State, text: str, ctx: Ctx) -> State:
    """An over-long note is refused with its length and the old note kept: nothing is lost."""
    note = text.strip()
    if len(note) > NOTE_MAX_CHARS:
        ctx.notice = m.NOTE_TOO_LONG.format(limit=NOTE_MAX_CHARS, length=len(note))
        return state
    if not note:
        return state
    ctx.notice = m.NOTE_SAVED
    return replace(state, note=note, step=Step.CONFIRM)


async def confirm(state: State, action: Action, ctx: Ctx) -> State:
    assert state.course_id and state.teacher_id and state.slot is not None
    course = await _course(state, ctx)
    start_at = _slot_time(state.slot)
    ctx.emit(
        "booking_attempted",
        course_id=course.id,
        st_id=state.teacher_id,
        datetime=start_at.isoformat(),
    )
    ctx.proceed = True
    return replace(state, step=Step.BOOKING, loading_since=int(ctx.now.timestamp()))


async def book_now(state: State, ctx: Ctx) -> State:
    """The booking itself, in the transaction after the one that saved the loading state."""
    assert state.course_id and state.teacher_id and state.slot is not None
    course = await _course(state, ctx)
    start_at = _slot_time(state.slot)
    outcome = await ctx.catalog.book(
        BookingRequest(
            course_id=course.id,
            student_id=student_of(state, ctx),
            teacher_id=state.teacher_id,
            start=start_at,
            end=start_at + timedelta(minutes=course.session_minutes),
            reminders=state.reminders,
            note=state.note,
            platform=ctx.platform,
            replaces=state.rescheduling,
            created_by=ctx.viewer.user_id if _for_someone_else(state, ctx) else None,
        ),
        ctx.now,
    )
    if isinstance(outcome, Booked):
        ctx.booked_now = outcome.session_id
        return replace(state, step=Step.SUCCESS, session_id=outcome.session_id)
    ctx.emit("booking_failed", error_type=outcome.error_type)
    return await _after_failure(replace(state, step=Step.CONFIRM), outcome, ctx)


async def recover(state: State, ctx: Ctx) -> State:
    """A conversation left in the loading state (the process died between showing it and
    booking): the session either exists, and the student sees it booked, or the confirm step
    comes back. Whatever the event was, this answer is what the student needs to see first."""
    assert state.teacher_id is not None and state.slot is not None
    start_at = _slot_time(state.slot)
    found = await ctx.catalog.booked_session(student_of(state, ctx), state.teacher_id, start_at)
    if found is not None:
        return replace(state, step=Step.SUCCESS, session_id=found)
    ctx.notice = m.BOOKING_INTERRUPTED
    return replace(state, step=Step.CONFIRM)


async def _after_failure(state: State, outcome: Outcome, ctx: Ctx) -> State:
    """Each failure shows the spec's words on the screen where the student can act on them."""
    if isinstance(outcome, SlotTaken | StudentConflict):
        ctx.notice = m.SLOT_TAKEN if isinstance(outcome, SlotTaken) else m.STUDENT_CONFLICT
        return replace(state, step=Step.CHOOSE_TIME, slot=None)
    if isinstance(outcome, NotEnrolled):
        return replace(state, step=Step.NOT_ENROLLED)
    if isinstance(outcome, NoSessionsLeft):
        return replace(state, step=Step.NO_SESSIONS_LEFT)
    if isinstance(outcome, NotReschedulable):
        ctx.notice = m.SESSION_CHANGED
        return State(step=Step.IDLE, nonce=state.nonce)
    if isinstance(outcome, STUnavailable):
        teacher = await _teacher(state, ctx)
        ctx.notice = m.ST_NO_LONGER_AVAILABLE.format(name=teacher.name)
        return await _to_choose_st(state, ctx)
    assert isinstance(outcome, BookingFailed)
    ctx.notice = m.BOOKING_FAILED
    return replace(state, step=Step.CONFIRM)


async def schedule_later(state: State, action: Action, ctx: Ctx) -> State:
    assert state.course_id is not None
    result = await ctx.catalog.schedule_later(
        student_of(state, ctx),
        state.course_id,
        ctx.platform,
        created_by=ctx.viewer.user_id if _for_someone_else(state, ctx) else None,
    )
    if isinstance(result, NotEnrolled):
        return replace(state, step=Step.NOT_ENROLLED)
    if isinstance(result, NoSessionsLeft):
        return replace(state, step=Step.NO_SESSIONS_LEFT)
    if result.reused:
        course = await _course(state, ctx)
        ctx.notice = m.ALREADY_SAVED.format(course=course.title)
    ctx.emit("schedule_later", course_id=state.course_id)
    return replace(state, step=Step.SCHEDULED_LATER, session_id=result.session_id)


async def back(state: State, action: Action, ctx: Ctx) -> State:
    if state.step in (Step.NOTE,):
        return replace(state, step=Step.CONFIRM)
    if state.step == Step.CONFIRM:
        return replace(state, step=Step.CHOOSE_TIME, slot=None)
    if state.step == Step.CHOOSE_TIME:
        return replace(state, step=Step.CHOOSE_DATE, day=None)
    if state.step == Step.CHOOSE_DATE:
        return await _to_choose_st(state, ctx)
    return State(step=Step.CHOOSE_COURSE, student_id=state.student_id, nonce=state.nonce)


async def book_another(state: State, action: Action, ctx: Ctx) -> State:
    again = Start(course_id=state.course_id, source=state.source, student_id=state.student_id)
    return await start(state, again, ctx)


async def noop(state: State, action: Action, ctx: Ctx) -> State:
    return state


def cancel(state: State, ctx: Ctx) -> State:
    """Leaves the wizard; a booked session is cancelled only from /mysessions, with a question."""
    if state.step in FINAL_STEPS:
        ctx.nothing_changed(m.NOTHING_TO_CANCEL)
        return state
    ctx.notice = m.CANCELLED
    return State(step=Step.IDLE, nonce=state.nonce)


async def cancel_pressed(state: State, action: Action, ctx: Ctx) -> State:
    return cancel(state, ctx)


async def type_text(state: State, text: str, ctx: Ctx) -> State:
    """Typed text is a note, a date or a course name depending on the step; else a hint."""
    if state.step == Step.NOTE:
        return save_note(state, text, ctx)
    if state.step in FINAL_STEPS:
        ctx.nothing_changed(m.AFTER_FINAL)
        return state
    if state.step in (Step.CHOOSE_DATE, Step.CHOOSE_TIME):
        parsed = parse_day(
            text, now=ctx.now, timezone=ctx.viewer.timezone, locale=ctx.viewer.locale
        )
        if isinstance(parsed, DateParseError) and parsed.reason == "unparseable":
            ctx.notice = m.DATE_UNPARSEABLE.format(
                text=text.strip()[:40], example=example_day(ctx.today)
            )
            return replace(state, step=Step.CHOOSE_DATE, day=None)
        if isinstance(parsed, DateParseError):
            ctx.notice = m.DATE_PAST.format(day=text.strip()[:40])
            return replace(state, step=Step.CHOOSE_DATE, day=None, month=f"{ctx.today:%Y-%m}")
        return await choose_day(state, parsed.day, ctx)
    if state.step == Step.CHOOSE_COURSE:
        wanted = text.strip().casefold()
        for course in await ctx.catalog.enrolled_courses(student_of(state, ctx)):
            if wanted in (course.slug.casefold(), course.title.casefold()):
                chosen = Start(course_id=course.id, source="chat", student_id=state.student_id)
                return await start(state, chosen, ctx)
    ctx.notice = m.USE_BUTTONS_ONLY
    return state


Handler = Callable[[State, Action, Ctx], Awaitable[State]]

HANDLERS: dict[Kind, Handler] = {
    Kind.PICK_COURSE: pick_course,
    Kind.PICK_ST: pick_st,
    Kind.MONTH: change_month,
    Kind.PICK_DATE: pick_date,
    Kind.QUICK: quick_option,
    Kind.PICK_SLOT: pick_slot,
    Kind.TOGGLE_REMINDERS: toggle_reminders,
    Kind.ADD_NOTE: add_note,
    Kind.REMOVE_NOTE: remove_note,
    Kind.CONFIRM: confirm,
    Kind.SCHEDULE_LATER: schedule_later,
    Kind.BACK: back,
    Kind.CANCEL: cancel_pressed,
    Kind.BOOK_ANOTHER: book_another,
    Kind.NOOP: noop,
}

_ANY = frozenset(Step)
_CALENDAR = frozenset({Step.CHOOSE_DATE, Step.CHOOSE_TIME})
ALLOWED: dict[Kind, frozenset[Step]] = {
    Kind.PICK_COURSE: frozenset({Step.CHOOSE_COURSE}),
    Kind.PICK_ST: frozenset({Step.CHOOSE_ST}),
    Kind.MONTH: frozenset({Step.CHOOSE_DATE}),
    Kind.PICK_DATE: frozenset({Step.CHOOSE_DATE}),
    Kind.QUICK: _CALENDAR,
    Kind.PICK_SLOT: frozenset({Step.CHOOSE_TIME}),
    Kind.TOGGLE_REMINDERS: frozenset({Step.CONFIRM}),
    Kind.ADD_NOTE: frozenset({Step.CONFIRM}),
    Kind.REMOVE_NOTE: frozenset({Step.CONFIRM}),
    Kind.CONFIRM: frozenset({Step.CONFIRM}),
    Kind.SCHEDULE_LATER: frozenset({Step.CHOOSE_ST, Step.NO_STS, Step.CHOOSE_DATE}),
    Kind.BACK: _ANY - {Step.IDLE, Step.BOOKING, Step.SUCCESS, Step.SCHEDULED_LATER},
    Kind.CANCEL: _ANY - {Step.IDLE},
    Kind.BOOK_ANOTHER: frozenset({Step.SUCCESS, Step.SCHEDULED_LATER}),
    Kind.NOOP: _ANY,
}


# --- reading data for the current step ----------------------------------------------------------
async def _course(state: State, ctx: Ctx) -> CourseInfo:
    assert state.course_id is not None
    course = await ctx.catalog.course(state.course_id)
    assert course is not None
    return course


async def _teacher(state: State, ctx: Ctx) -> TeacherInfo:
    assert state.course_id is not None and state.teacher_id is not None
    teacher = await ctx.catalog.teacher(state.course_id, state.teacher_id)
    assert teacher is not None
    return teacher


async def _free(state: State, ctx: Ctx, start: datetime, end: datetime) -> list[datetime]:
    assert state.course_id is not None and state.teacher_id is not None
    return await ctx.catalog.free_slots(
        state.course_id, state.teacher_id, student_of(state, ctx), start, end, ctx.now
    )


async def _slots_on(state: State, day: date, ctx: Ctx) -> list[datetime]:
    return await _free(state, ctx, *day_bounds_utc(day, ctx.viewer.timezone))


async def _next_free(
    state: State, ctx: Ctx, until_day: date | None = None, teacher_id: int | None = None
) -> datetime | None:
    """The first free slot, looking two days ahead first, then a fortnight, then the whole
    horizon: the slot math costs what the window holds, and the first is nearly always near."""
    teacher_id = teacher_id or state.teacher_id
    assert state.course_id is not None and teacher_id is not None
    probe = replace(state, teacher_id=teacher_id)
    teacher = await _teacher(probe, ctx)
    horizon = ctx.now + timedelta(days=teacher.max_days_ahead)
    if until_day is not None:
        horizon = min(horizon, day_bounds_utc(until_day, ctx.viewer.timezone)[1])
    for end in (*(ctx.now + timedelta(days=d) for d in (2, 14)), horizon):
        first = await ctx.catalog.first_free(
            state.course_id, teacher_id, student_of(state, ctx), ctx.now, min(end, horizon), ctx.now
        )
        if first is not None:
            return first
        if end >= horizon:
            break
    return None


async def _nothing_free(state: State, ctx: Ctx) -> str:
    teacher = await _teacher(state, ctx)
    return m.NO_SLOTS_AT_ALL.format(name=teacher.name, days=teacher.max_days_ahead)


async def _month_bounds(state: State, ctx: Ctx) -> tuple[tuple[int, int], tuple[int, int]]:
    teacher = await _teacher(state, ctx)
    last = ctx.today + timedelta(days=teacher.max_days_ahead)
    return (ctx.today.year, ctx.today.month), (last.year, last.month)


# --- rendering -------------------------------------------------------------------------------
async def render(state: State, ctx: Ctx) -> Screen:
    """Gather what the step shows and hand it to the pure builders in views.py; a booking made
    for a student says whose it is on every step, so a coordinator never loses track."""
    if state.step == Step.IDLE or not _for_someone_else(state, ctx):
        return await _render(state, ctx)
    person = await ctx.catalog.person(student_of(state, ctx))
    screen = await _render(state, ctx, person)
    name = person.name if person else m.A_STUDENT
    return replace(screen, lines=(m.BOOKING_FOR.format(name=name), *screen.lines))


async def _render(state: State, ctx: Ctx, student: Viewer | None = None) -> Screen:
    """`student`: whom a coordinator books for, the invite's attendee beside the ST."""
    notice = ctx.notice
    viewer = ctx.viewer
    if state.step == Step.IDLE:
        return views.ended(notice or m.CANCELLED)
    if state.step == Step.CHOOSE_COURSE or state.course_id is None:
        courses = await ctx.catalog.enrolled_courses(student_of(state, ctx))
        return views.choose_course(courses, notice)
    course = await _course(state, ctx)
    if state.step == Step.NOT_ENROLLED:
        return views.not_enrolled(course, ctx.enroll_url.format(slug=course.slug), notice)
    if state.step == Step.NO_SESSIONS_LEFT:
        return views.no_sessions_left(course, notice)
    if state.step == Step.NO_STS:
        return views.no_sts(course, notice)
    if state.step == Step.CHOOSE_ST:
        teachers = await ctx.catalog.teachers(course.id)
        cards = [(t, await _next_free(state, ctx, teacher_id=t.id)) for t in teachers]
        return views.choose_st(course, cards, viewer, notice)
    if state.step == Step.SCHEDULED_LATER:
        return views.scheduled_later(course, ctx.dashboard_url, notice)
    teacher = await _teacher(state, ctx)
    if state.step == Step.CHOOSE_DATE:
        return await _render_calendar(state, course, teacher, ctx)
    assert state.day is not None
    day = date.fromisoformat(state.day)
    if state.step == Step.CHOOSE_TIME:
        slots = await _slots_on(state, day, ctx)
        return views.choose_time(course, teacher, day, slots, viewer, ctx.now, notice)
    assert state.slot is not None
    start_at = _slot_time(state.slot)
    if state.step == Step.NOTE:
        return views.note_prompt(course, teacher, NOTE_MAX_CHARS, notice)
    if state.step == Step.BOOKING:
        return views.booking(course, teacher, start_at, viewer)
    if state.step == Step.SUCCESS:
        assert state.session_id is not None
        # The invite and calendar links are the student's event, in the viewer's zone.
        attendee = (
            viewer
            if student is None
            else replace(viewer, user_id=student.user_id, name=student.name, email=student.email)
        )
        return views.success(
            course,
            teacher,
            start_at,
            state.session_id,
            state.reminders,
            state.note,
            attendee,
            ctx.dashboard_url,
            organizer_of(ctx.email_from),
            notice,
            with_invite=ctx.booked_now == state.session_id,
            rescheduled=state.rescheduling is not None,
            join_url=(
                None
                if ctx.join_link is None
                else ctx.join_link(
                    state.session_id,
                    attendee.user_id,
                    start_at + timedelta(minutes=course.session_minutes),
                )
            ),
        )
    return views.confirm(course, teacher, start_at, state.reminders, state.note, viewer, notice)


async def _render_calendar(
    state: State, course: CourseInfo, teacher: TeacherInfo, ctx: Ctx
) -> Screen:
    year, month = (int(p) for p in (state.month or f"{ctx.today:%Y-%m}").split("-"))
    first = date(year, month, 1)
    after = date(year + month // 12, month % 12 + 1, 1)
    start_at = day_bounds_utc(first, ctx.viewer.timezone)[0]
    end_at = day_bounds_utc(after, ctx.viewer.timezone)[0]
    free = days_with_slots(await _free(state, ctx, start_at, end_at), ctx.viewer.timezone)
    lowest, highest = await _month_bounds(state, ctx)
    return views.choose_date(
        course,
        teacher,
        state.preselected,
        year,
        month,
        free,
        ctx.today,
        can_go_back=(year, month) > lowest,
        can_go_forward=(year, month) < highest,
        viewer=ctx.viewer,
        notice=ctx.notice,
    )
