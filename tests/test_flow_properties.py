"""Properties of the pure booking state machine, driven through events only.

A hypothesis random walk sends Start/Press/Text/Cancel events (live buttons, stale buttons from
earlier screens, forged button data, typed dates and junk) to `flow.apply` with the in-memory
`FakeCatalog` and a fixed clock, the way `ConversationService.handle` does (apply, bump the
nonce, render), and checks the invariants of the spec after every event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as record
from hypothesis import strategies as st

from engine.booking import (
    Booked,
    BookingRequest,
    NoSessionsLeft,
    NotEnrolled,
    ScheduledLater,
    SlotTaken,
    StudentConflict,
    STUnavailable,
)
from engine.chat import messages as m
from engine.chat.flow import (
    ALLOWED,
    HANDLERS,
    Cancel,
    Ctx,
    Event,
    Press,
    Proceed,
    Start,
    State,
    Step,
    Text,
)
from engine.chat.flow import apply as flow_apply
from engine.chat.flow import render as flow_render
from engine.chat.screens import MAX_ACTION_BYTES, QUICK_OPTIONS, Action, Kind, Screen, decode
from engine.chat.views import Viewer
from tests.fake_catalog import OTHER_STUDENT, SCHEDULED, STUDENT, UNSCHEDULED, FakeCatalog

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # a Wednesday morning
VIEWERS = (
    Viewer(STUDENT, "Sam Student", "UTC", "en"),
    Viewer(STUDENT, "Sam Student", "America/Los_Angeles", "en_US"),
    Viewer(STUDENT, "Sam Student", "Europe/Berlin", "de_DE"),
    Viewer(STUDENT, "Sam Student", "Asia/Tokyo", "ja"),
)
TERMINAL = {"idle", "success", "scheduled_later", "booking"}
SPEC_EVENTS: dict[str, set[str]] = {
    "page_view": {"course_id", "st_preselected"},
    "st_selected": {"st_id"},
    "date_selected": {"date"},
    "time_selected": {"time", "st_id"},
    "booking_attempted": {"course_id", "st_id", "datetime"},
    "booking_success": {"session_id"},  # written by the DB transaction; the fake emits none
    "booking_failed": {"error_type"},
    "schedule_later": {"course_id"},
}
PHRASES = (
    "tomorrow",
    "today",
    "next friday",
    "yesterday",
    "asdf",
    "25 Nov",
    "1/12",
    "morgen",
    "Calculus I",
    "calculus-1",
    "  a short note  ",
    "x" * 501,  # longer than a note may be
)
MAX_SLOT_MINUTES = 10**12 - 1  # the largest the button pattern admits; far beyond year 9999

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """A private loop per call: never touches the event loop pytest-asyncio has set up."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def copy_state(state: State) -> State:
    return State.from_json(json.loads(json.dumps(state.to_json())))


def own_sessions(catalog: FakeCatalog, external: set[int]) -> dict[int, tuple[str, Any, Any]]:
    """The viewer's sessions written through the wizard: id -> (status, teacher, start)."""
    return {
        s.id: (s.status, s.teacher_id, s.start)
        for s in catalog.sessions
        if s.student_id == STUDENT and s.id not in external
    }


@dataclass
class Walk:
    """One chat, driven as ConversationService.handle drives it, with every check built in."""

    catalog: FakeCatalog
    viewer: Viewer
    state: State = field(default_factory=State)
    screen: Screen = field(default_factory=lambda: Screen("idle", ""))
    stale: list[str] = field(default_factory=list)  # button data of earlier screens
    external: set[int] = field(default_factory=set)  # sessions booked outside the wizard
    log: list[str] = field(default_factory=list)
    analytics: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    notice: str | None = None  # the last event's notice (terminal screens do not show it)
    in_hypothesis: bool = False

    async def send(self, event: Event) -> None:
        self.log.append(repr(event))
        before = copy_state(self.state)
        assert before == self.state
        sessions_before = own_sessions(self.catalog, self.external)
        loading: list[Screen] = []

        ctx = Ctx(self.catalog, self.viewer, NOW, platform="test")
        new = await flow_apply(replace(before), event, ctx)
        if ctx.unchanged:  # nothing saved, no new nonce, the screen on display stays
            assert new == before
            self.notice = ctx.notice
            self.check_expired(event, before, new, ctx)
            return
        new.nonce = before.nonce + 1
        screen = replace(await flow_render(new, ctx), nonce=new.nonce)
        if ctx.proceed:
            # ConversationService: the loading state is committed and shown, then Proceed books.
            loading.append(screen)
            booking = Ctx(self.catalog, self.viewer, NOW, platform="test")
            new = await flow_apply(replace(new), Proceed(), booking)
            new.nonce += 1
            screen = replace(await flow_render(new, booking), nonce=new.nonce)
            ctx.analytics += booking.analytics
            ctx.notice, ctx.booked_now = booking.notice, booking.booked_now
        self.stale.extend(self.screen.data(b) for b in self.screen.all_buttons() if b.action)
        self.state, self.screen, self.notice = new, screen, ctx.notice
        self.analytics.extend(ctx.analytics)
        if self.in_hypothesis:
            record(f"reached {new.step.value}")  # coverage: --hypothesis-show-statistics
            for name, fields in ctx.analytics:
                if name == "booking_failed":
                    record(f"booking_failed {fields.get('error_type')}")

        self.check_screen(screen, new)
        for shown in loading:
            assert shown.step == "booking" and shown.loading and not shown.all_buttons()
        self.check_round_trip(new)
        self.check_analytics(ctx)
        self.check_expired(event, before, new, ctx)
        self.check_bookings(event, before, new, ctx, sessions_before)
        self.check_calendar_rules()

    # --- invariants ----------------------------------------------------------------------------
    def check_screen(self, screen: Screen, state: State) -> None:
        actioned = [b for b in screen.all_buttons() if b.action is not None]
        for button in actioned:
            data = screen.data(button)
            assert len(data.encode()) <= MAX_ACTION_BYTES, data
            decoded = decode(data)
            assert decoded == (state.nonce, button.action), data
            # A button we show is one the state machine accepts: pressing it is never "expired".
            assert state.step in ALLOWED[button.action.kind], (state.step, data)
        if screen.step not in TERMINAL and screen.step != "choose_course":
            kinds = {b.action.kind for b in actioned if b.enabled and b.action}
            assert kinds & {Kind.BACK, Kind.CANCEL}, f"no way out of {screen.step}"

    @staticmethod
    def check_round_trip(state: State) -> None:
        assert State.from_json(state.to_json()) == state
        assert State.from_json(json.loads(json.dumps(state.to_json()))) == state

    @staticmethod
    def check_analytics(ctx: Ctx) -> None:
        for name, data in ctx.analytics:
            assert name in SPEC_EVENTS, name
            assert set(data) == SPEC_EVENTS[name], (name, data)
            if name == "page_view":
                assert isinstance(data["st_preselected"], bool)
            if name in ("st_selected", "time_selected", "booking_attempted"):
                assert isinstance(data["st_id"], int)
        assert "booking_success" not in {name for name, _ in ctx.analytics}

    def check_expired(self, event: Event, before: State, new: State, ctx: Ctx) -> None:
        if not isinstance(event, Press):
            return
        decoded = decode(event.data)
        refused = (
            decoded is None
            or decoded[0] != before.nonce
            or before.step not in ALLOWED[decoded[1].kind]
        )
        if refused:
            assert ctx.notice == m.EXPIRED
            assert {**new.to_json(), "nonce": 0} == {**before.to_json(), "nonce": 0}
            assert not ctx.analytics

    def check_bookings(
        self,
        event: Event,
        before: State,
        new: State,
        ctx: Ctx,
        sessions_before: dict[int, tuple[str, Any, Any]],
    ) -> None:
        decoded = decode(event.data) if isinstance(event, Press) else None
        live = decoded is not None and decoded[0] == before.nonce
        kind = decoded[1].kind if live and decoded else None
        confirm_pressed = kind == Kind.CONFIRM and before.step == Step.CONFIRM
        later_pressed = kind == Kind.SCHEDULE_LATER and before.step in ALLOWED[kind]

        after = own_sessions(self.catalog, self.external)
        changed = {i: v for i, v in after.items() if sessions_before.get(i) != v}
        newly_booked = {i: v for i, v in changed.items() if v[0] == SCHEDULED}
        newly_later = {i: v for i, v in changed.items() if v[0] == UNSCHEDULED}
        assert set(changed) == set(newly_booked) | set(newly_later)
        assert not sessions_before.keys() - after.keys()

        names = [name for name, _ in ctx.analytics]
        if newly_booked:
            assert confirm_pressed, self.log
            assert len(newly_booked) == 1
            ((session_id, (_, teacher, start)),) = newly_booked.items()
            assert teacher == before.teacher_id
            assert before.slot is not None
            assert start == datetime.fromtimestamp(before.slot * 60, UTC)
            assert new.step == Step.SUCCESS and new.session_id == session_id
        if confirm_pressed:
            assert names.count("booking_attempted") == 1
            assert (new.step == Step.SUCCESS) == bool(newly_booked)
            assert ("booking_failed" in names) != bool(newly_booked)
        else:
            assert "booking_attempted" not in names and "booking_failed" not in names
        if newly_later:
            assert later_pressed and len(newly_later) == 1
            assert new.step == Step.SCHEDULED_LATER
            assert new.session_id in newly_later
            assert names == ["schedule_later"]

    def check_calendar_rules(self) -> None:
        """Whatever happened, the fake's calendars obey the rules of the real transaction."""
        scheduled = self.catalog.scheduled()
        for i, a in enumerate(scheduled):
            for b in scheduled[i + 1 :]:
                assert a.start and a.end and a.blocked_until
                assert b.start and b.end and b.blocked_until
                if a.teacher_id == b.teacher_id:
                    assert a.blocked_until <= b.start or b.blocked_until <= a.start, (a, b)
                if a.student_id == b.student_id:
                    assert a.end <= b.start or b.end <= a.start, (a, b)
        for course in self.catalog.courses.values():
            for student in (STUDENT, OTHER_STUDENT):
                assert self.catalog.counted(student, course.id) <= course.session_count

    # --- the world moving on outside this chat ---------------------------------------------
    async def book_elsewhere(
        self, student: int, course_id: int, teacher_id: int, pick: int
    ) -> None:
        slots = await self.catalog.free_slots(
            course_id, teacher_id, student, NOW, NOW + timedelta(days=14), NOW
        )
        if slots:
            await self.try_book(student, course_id, teacher_id, [slots[pick % len(slots)]])

    async def try_book(
        self, student: int, course_id: int, teacher_id: int, starts: list[datetime]
    ) -> bool:
        """Book the first of `starts` the fake accepts, on the web (not through this chat)."""
        minutes = timedelta(minutes=self.catalog.courses[course_id].session_minutes)
        for start in starts:
            request = BookingRequest(
                course_id, student, teacher_id, start, start + minutes, True, None, "web"
            )
            outcome = await self.catalog.book(request, NOW)
            if isinstance(outcome, Booked):
                self.external.add(outcome.session_id)
                return True
        return False

    async def snipe(self, how: str) -> bool:
        """Take the chosen time away before Confirm is pressed, so each failure path is walked.

        False when this world has no way to do it (say, nobody else teaches at that time)."""
        course_id, teacher_id, slot = self.state.course_id, self.state.teacher_id, self.state.slot
        if course_id is None or teacher_id is None or slot is None:
            return False
        start = datetime.fromtimestamp(slot * 60, UTC)
        around = [start + timedelta(minutes=m) for m in range(-30, 60, 15)]
        if how == "taken":
            return await self.try_book(OTHER_STUDENT, course_id, teacher_id, [start])
        if how == "clash":  # the viewer books another session at that time on the web
            for other_course, other_teacher in ((1, 10), (1, 11), (2, 13)):
                if other_teacher != teacher_id and await self.try_book(
                    STUDENT, other_course, other_teacher, around
                ):
                    return True
            return False
        if how == "used_up":  # the viewer uses the course's last sessions on the web
            for pick in range(0, 400, 7):
                if await self.catalog.sessions_left(STUDENT, course_id) <= 0:
                    return True
                await self.book_elsewhere(STUDENT, course_id, teacher_id, pick)
            return False
        if how == "broken":
            self.catalog.broken = True
        elif how == "inactive":
            self.catalog.set_active(course_id, teacher_id, False)
        else:
            self.catalog.enrollments.discard((STUDENT, course_id))
        return True


# --- strategies ------------------------------------------------------------------------------
# How often each kind of step is drawn.
WEIGHTS = {
    "press": 4,  # any enabled button of the current screen
    "advance": 6,  # a button that moves towards a booking
    "world": 2,  # something changes outside this chat
    "text": 2,
    "stale": 1,
    "forged": 1,
    "forged_live": 1,
    "cancel": 1,
    "start": 1,
}
STEPS = tuple(name for name, weight in WEIGHTS.items() for _ in range(weight))
SNIPES = ("taken", "clash", "used_up", "inactive", "unenrolled", "broken")
# Buttons that move the wizard towards a booking, pressed more often so walks get that far.
FORWARD = {
    Kind.PICK_COURSE,
    Kind.PICK_ST,
    Kind.PICK_DATE,
    Kind.QUICK,
    Kind.PICK_SLOT,
    Kind.ADD_NOTE,
    Kind.CONFIRM,
}

starts = st.builds(
    Start,
    course_id=st.sampled_from([None, 1, 1, 2, 3, 4, 99]),
    course_slug=st.one_of(
        st.none(), st.sampled_from(["calculus-1", "history", "nope"]), st.text(max_size=80)
    ),
    teacher_id=st.sampled_from([None, None, 10, 11, 12, 13, 14, 77]),
    source=st.sampled_from([None, "CDET", "chat"]),
)
texts = st.one_of(st.sampled_from(PHRASES), st.text(max_size=40))
forged = st.text(max_size=80)


def _arg(kind: Kind) -> st.SearchStrategy[str]:
    """Well-formed arguments for a kind, values chosen by an attacker."""
    if kind in (Kind.PICK_COURSE, Kind.PICK_ST):
        return st.integers(0, 10**12 - 1).map(str) | st.sampled_from(["1", "2", "10", "12"])
    if kind == Kind.PICK_SLOT:
        return st.integers(0, MAX_SLOT_MINUTES).map(str)
    if kind == Kind.MONTH:
        return st.from_regex(r"\d{4}-(0[1-9]|1[0-2])", fullmatch=True) | st.sampled_from(
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        )
    if kind == Kind.PICK_DATE:
        return st.from_regex(r"\d{4}-\d{2}-\d{2}", fullmatch=True) | st.dates().map(str)
    if kind == Kind.QUICK:
        return st.sampled_from(QUICK_OPTIONS)
    return st.just("")


def live_forgery(state: State) -> st.SearchStrategy[str]:
    """Button data with the current nonce and an attacker's action, mostly one the current step
    accepts, so it gets past the nonce check and the handler itself must re-validate it."""
    accepted = [kind for kind in Kind if state.step in ALLOWED[kind]]
    kinds = st.sampled_from(accepted) | st.sampled_from(list(Kind))
    return kinds.flatmap(
        lambda kind: _arg(kind).map(lambda arg: Action(kind, arg).encode(state.nonce))
    )


async def walk(data: st.DataObject, viewer: Viewer, steps: int) -> Walk:
    chat = Walk(FakeCatalog.campus(), viewer, in_hypothesis=True)
    await chat.send(data.draw(starts, label="first"))
    for _ in range(steps):
        what = data.draw(st.sampled_from(STEPS), label="step")
        buttons = [b for b in chat.screen.all_buttons() if b.action and b.enabled]
        forward = [b for b in buttons if b.action and b.action.kind in FORWARD]
        if what in ("press", "advance") and buttons:
            choices = forward if what == "advance" and forward else buttons
            button = data.draw(st.sampled_from(choices), label="button")
            await chat.send(Press(chat.screen.data(button)))
            assert chat.notice != m.EXPIRED  # a button just shown is live
        elif what == "stale" and chat.stale:
            await chat.send(Press(data.draw(st.sampled_from(chat.stale), label="stale")))
        elif what == "forged_live":
            await chat.send(Press(data.draw(live_forgery(chat.state), label="live forged")))
        elif what in ("forged", "stale", "press", "advance"):
            await chat.send(Press(data.draw(forged, label="forged")))
        elif what == "text":
            await chat.send(Text(data.draw(texts, label="text")))
        elif what == "cancel":
            await chat.send(Cancel())
        elif what == "start":
            await chat.send(data.draw(starts, label="start"))
        else:
            await world_moves(chat, data)
    return chat


async def world_moves(chat: Walk, data: st.DataObject) -> None:
    """Someone else books, the viewer books on the web, an ST stops or resumes taking bookings,
    the viewer's enrolment ends or comes back, the database breaks or mends, or the time just
    chosen is taken away."""
    move = data.draw(
        st.sampled_from(["other", "self", "toggle", "enrol", "mend", *SNIPES]), label="world"
    )
    if move in SNIPES:
        await chat.snipe(move)
    elif move == "enrol":
        chat.catalog.enrollments ^= {(STUDENT, 1)}
    elif move == "mend":
        chat.catalog.broken = False
    elif move == "toggle":
        teacher = data.draw(st.sampled_from([10, 11, 12]), label="toggle st")
        st_info = chat.catalog.sts[(1, teacher)].info
        chat.catalog.set_active(1, teacher, not st_info.is_active)
    else:
        course, teacher = data.draw(st.sampled_from([(1, 10), (1, 11), (2, 13)]), label="where")
        student = OTHER_STUDENT if move == "other" else STUDENT
        await chat.book_elsewhere(student, course, teacher, data.draw(st.integers(0, 50)))
    chat.check_calendar_rules()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), viewer=st.sampled_from(VIEWERS), steps=st.integers(1, 25))
def test_random_walks_keep_every_invariant(data: st.DataObject, viewer: Viewer, steps: int) -> None:
    run(walk(data, viewer, steps))


async def race(data: st.DataObject, viewer: Viewer, snipe: str | None) -> None:
    """Straight to the confirmation, then the world changes, then Confirm is pressed."""
    chat = Walk(FakeCatalog.campus(), viewer, in_hypothesis=True)
    course = data.draw(st.sampled_from([1, 2]), label="course")
    teacher = data.draw(st.sampled_from([None, 10, 11, 13]), label="preselected")
    await chat.send(Start(course_id=course, teacher_id=teacher))
    for _ in range(8):
        if chat.state.step == Step.CONFIRM:
            break
        forward = [
            b
            for b in chat.screen.all_buttons()
            if b.action and b.enabled and b.action.kind in FORWARD - {Kind.ADD_NOTE}
        ]
        if not forward:
            return
        await chat.send(Press(chat.screen.data(data.draw(st.sampled_from(forward)))))
    if chat.state.step != Step.CONFIRM:
        return
    sniped = snipe is not None and await chat.snipe(snipe)
    (confirm,) = [
        b for b in chat.screen.all_buttons() if b.action and b.action.kind == Kind.CONFIRM
    ]
    await chat.send(Press(chat.screen.data(confirm)))
    assert (chat.state.step == Step.SUCCESS) == (not sniped)
    if not sniped:
        return
    # The student lands where they can act on the failure and can carry on from there.
    for _ in range(3):
        buttons = [b for b in chat.screen.all_buttons() if b.action and b.enabled]
        if not buttons:
            break
        await chat.send(Press(chat.screen.data(data.draw(st.sampled_from(buttons)))))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), viewer=st.sampled_from(VIEWERS), snipe=st.sampled_from([None, *SNIPES]))
def test_whatever_happens_before_confirm_nothing_is_double_booked(
    data: st.DataObject, viewer: Viewer, snipe: str | None
) -> None:
    run(race(data, viewer, snipe))


# --- examples --------------------------------------------------------------------------------
def labels(chat: Walk) -> list[str]:
    """Babel puts narrow no-break spaces in times ("10:00\u202fAM"); tests type plain spaces."""
    return [b.label.replace("\u202f", " ").replace("\xa0", " ") for b in chat.screen.all_buttons()]


def press(chat: Walk, label: str) -> None:
    button = chat.screen.all_buttons()[labels(chat).index(label)]
    run(chat.send(Press(chat.screen.data(button))))


def test_the_happy_path_books_with_the_fake_and_records_the_spec_events() -> None:
    chat = Walk(FakeCatalog.campus(), VIEWERS[0])
    run(chat.send(Start(course_id=1, source="CDET")))
    assert chat.screen.step == "choose_st"
    assert [c.title for c in chat.screen.cards] == ["Ada Lovelace", "Bob Brown"]
    press(chat, "Book with Ada Lovelace")
    press(chat, "27")
    assert chat.screen.step == "choose_time"
    # Ada has 10:00-11:00 booked with a 15 minute buffer either side.
    assert labels(chat)[:2] == ["11:30 AM", "12:00 PM"]
    press(chat, "11:30 AM")
    stale = chat.screen.data(chat.screen.all_buttons()[labels(chat).index("Book Session")])
    press(chat, "Book Session")
    assert chat.screen.step == "success"
    assert chat.state.session_id in own_sessions(chat.catalog, set())
    booked = datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    assert chat.analytics == [
        ("page_view", {"course_id": 1, "st_preselected": False}),
        ("st_selected", {"st_id": 10}),
        ("date_selected", {"date": "2026-11-27"}),
        ("time_selected", {"time": booked.isoformat(), "st_id": 10}),
        ("booking_attempted", {"course_id": 1, "st_id": 10, "datetime": booked.isoformat()}),
    ]
    run(chat.send(Press(stale)))  # pressing "Book Session" again books nothing
    assert chat.notice == m.EXPIRED and chat.state.step == Step.SUCCESS
    assert len(chat.catalog.scheduled()) == 2


def test_corrupt_or_outdated_state_records_start_afresh() -> None:
    assert State.from_json(None) == State()
    assert State.from_json({}) == State()
    assert State.from_json({"step": "teleport", "nonce": 7}) == State(nonce=7)
    assert State.from_json({"step": None, "course_id": 1}) == State()
    assert State.from_json({"step": 5, "nonce": None}) == State()
    assert State.from_json({"step": "choose_st", "course_id": 1, "gone": 1}) == State(
        step=Step.CHOOSE_ST, course_id=1
    )


def test_every_action_kind_has_a_handler_and_a_set_of_steps() -> None:
    assert set(HANDLERS) == set(Kind)
    assert set(ALLOWED) == set(HANDLERS)
    assert all(ALLOWED[kind] for kind in HANDLERS)


@pytest.mark.parametrize(
    ("request_args", "outcome"),
    [
        ((3, STUDENT, 14, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), 60), NotEnrolled()),
        ((1, STUDENT, 12, datetime(2026, 11, 26, 10, 0, tzinfo=UTC), 60), STUnavailable()),
        ((1, STUDENT, 10, datetime(2026, 11, 27, 10, 0, tzinfo=UTC), 60), SlotTaken()),
        ((1, STUDENT, 10, datetime(2026, 11, 27, 11, 0, tzinfo=UTC), 60), SlotTaken()),  # buffer
        ((1, STUDENT, 10, datetime(2026, 11, 25, 9, 0, tzinfo=UTC), 60), SlotTaken()),  # notice
        ((1, STUDENT, 10, datetime(2026, 11, 27, 11, 30, tzinfo=UTC), 60), Booked(3)),
    ],
)
def test_the_fake_catalog_applies_the_booking_rules(
    request_args: tuple[int, int, int, datetime, int], outcome: object
) -> None:
    course, student, teacher, start, minutes = request_args
    request = BookingRequest(
        course, student, teacher, start, start + timedelta(minutes=minutes), True, None, "test"
    )
    assert run(FakeCatalog.campus().book(request, NOW)) == outcome


def test_the_fake_catalog_counts_sessions_fills_placeholders_and_sees_the_student() -> None:
    catalog = FakeCatalog.campus()

    def chemistry(start: datetime) -> BookingRequest:
        return BookingRequest(2, STUDENT, 13, start, start + timedelta(minutes=45), True, None, "t")

    evening = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # 18:30 in Kolkata
    later = run(catalog.schedule_later(STUDENT, 2, "test"))
    assert isinstance(later, ScheduledLater)
    # Saving again reuses the saved session instead of using up another one.
    again = run(catalog.schedule_later(STUDENT, 2, "test"))
    assert again == ScheduledLater(later.session_id, reused=True)
    assert run(catalog.book(chemistry(evening), NOW)) == Booked(later.session_id)  # filled
    assert run(catalog.book(chemistry(evening + timedelta(hours=2)), NOW)) == NoSessionsLeft()
    calculus = BookingRequest(
        1, STUDENT, 10, evening, evening + timedelta(minutes=60), True, None, "t"
    )
    assert run(catalog.book(calculus, NOW)) == StudentConflict()
