"""The booking transaction on real PostgreSQL: every outcome, and races with a single winner."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import ColumnElement, func, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import storage.booking_tx as tx
from engine.booking import (
    Booked,
    BookingFailed,
    BookingRequest,
    NoSessionsLeft,
    NotEnrolled,
    Outcome,
    SlotTaken,
    StudentConflict,
    STUnavailable,
    book_session,
    refusal,
)
from storage.jobs import Job, JobKind
from storage.models import AnalyticsEvent, Course, ReminderJob, Session, StudentTeacher
from storage.uow import UnitOfWork
from tests.factories import NOW, World, add_teacher, add_user, enroll, make_world
from tests.locks import backend_pid, waits_for_lock

SLOT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
OFFSETS = [timedelta(hours=24), timedelta(hours=1)]

Factory = async_sessionmaker[AsyncSession]


def request_for(
    world: World,
    student_id: int | None = None,
    teacher_id: int | None = None,
    start: datetime = SLOT,
    minutes: int = 60,
) -> BookingRequest:
    return BookingRequest(
        course_id=world.course.id,
        student_id=student_id or world.student.id,
        teacher_id=teacher_id or world.teachers[0].id,
        start=start,
        end=start + timedelta(minutes=minutes),
        reminders=True,
        note="Chapter 3, please",
        platform="telegram",
    )


async def book(factory: Factory, request: BookingRequest) -> Outcome:
    async with factory() as session, session.begin():
        return await book_session(
            UnitOfWork.over(session), request, reminder_offsets=OFFSETS, now=NOW
        )


async def test_a_free_slot_is_booked_with_its_reminders_and_analytics_event(pg: Factory) -> None:
    world = await make_world(pg)
    outcome = await book(pg, request_for(world))
    assert isinstance(outcome, Booked)
    async with pg() as session:
        booked = await session.get(Session, outcome.session_id)
        assert booked is not None
        assert (booked.status, booked.note, booked.created_via) == (
            "scheduled",
            "Chapter 3, please",
            "telegram",
        )
        assert booked.scheduled_start == SLOT
        assert booked.blocked_until == SLOT + timedelta(minutes=75)
        jobs = (await session.scalars(select(ReminderJob))).all()
        assert sorted((j.due_at, j.kind) for j in jobs) == [
            (NOW, "email:confirmation"),
            (NOW, "email:confirmation:teacher"),
            (NOW, "teacher:booked"),
            (SLOT - timedelta(hours=24), "email:before_24h"),
            (SLOT - timedelta(hours=24), "student:before_24h"),
            (SLOT - timedelta(hours=24), "teacher:before_24h"),
            (SLOT - timedelta(hours=1), "email:before_1h"),
            (SLOT - timedelta(hours=1), "student:before_1h"),
            (SLOT - timedelta(hours=1), "teacher:before_1h"),
            (SLOT, "student:start"),
            (SLOT, "teacher:start"),
        ]
        event = await session.scalar(select(AnalyticsEvent))
        assert event is not None
        assert (event.name, event.data) == ("booking_success", {"session_id": booked.id})


async def test_reminders_off_writes_no_student_reminders(pg: Factory) -> None:
    world = await make_world(pg)
    request = request_for(world)
    outcome = await book(
        pg,
        BookingRequest(**{**request.__dict__, "reminders": False}),
    )
    assert isinstance(outcome, Booked)
    async with pg() as session:
        kinds = sorted(await session.scalars(select(ReminderJob.kind)))
        assert kinds == [
            "email:confirmation",
            "email:confirmation:teacher",
            "teacher:before_1h",
            "teacher:before_24h",
            "teacher:booked",
            "teacher:start",
        ]


async def test_a_slot_overlapping_the_sts_buffer_is_taken(pg: Factory) -> None:
    world = await make_world(pg, teachers=1)
    other = await _other_student(pg, world)
    assert isinstance(await book(pg, request_for(world, student_id=other)), Booked)
    # 11:00 starts inside the 15-minute buffer after the 10:00-11:00 session.
    late = request_for(world, start=SLOT + timedelta(minutes=60))
    assert await book(pg, late) == SlotTaken()
    after_buffer = request_for(world, start=SLOT + timedelta(minutes=75))
    assert isinstance(await book(pg, after_buffer), Booked)


async def test_a_student_with_another_session_at_that_time_gets_student_conflict(
    pg: Factory,
) -> None:
    world = await make_world(pg, teachers=2)
    assert isinstance(await book(pg, request_for(world)), Booked)
    clash = request_for(world, teacher_id=world.teachers[1].id, start=SLOT + timedelta(minutes=30))
    assert await book(pg, clash) == StudentConflict()


async def test_a_student_who_is_not_enrolled_cannot_book(pg: Factory) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        stranger = await add_user(session, "Nora Newcomer")
    assert await book(pg, request_for(world, student_id=stranger.id)) == NotEnrolled()


async def test_an_inactive_st_cannot_be_booked(pg: Factory) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        await session.execute(update(StudentTeacher).values(is_active=False))
    assert await book(pg, request_for(world)) == STUnavailable()


async def test_a_student_cannot_book_more_sessions_than_the_course_includes(pg: Factory) -> None:
    world = await make_world(pg, session_count=2)
    for day in range(2):
        assert isinstance(
            await book(pg, request_for(world, start=SLOT + timedelta(days=day))), Booked
        )
    assert await book(pg, request_for(world, start=SLOT + timedelta(days=3))) == NoSessionsLeft()


async def test_a_schedule_later_placeholder_is_filled_in_not_counted_twice(pg: Factory) -> None:
    world = await make_world(pg, session_count=1)
    async with pg() as session, session.begin():
        session.add(
            Session(
                course_id=world.course.id,
                student_id=world.student.id,
                status="unscheduled",
                created_via="telegram",
            )
        )
    outcome = await book(pg, request_for(world))
    assert isinstance(outcome, Booked)
    async with pg() as session:
        rows = (await session.scalars(select(Session))).all()
        assert [(r.id, r.status) for r in rows] == [(outcome.session_id, "scheduled")]


async def test_a_database_failure_becomes_booking_failed_and_keeps_the_transaction_usable(
    pg: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(pg)

    async def broken(session: AsyncSession, params: dict[str, object]) -> None:
        await session.execute(text("SELECT 1/0"))

    monkeypatch.setattr(tx, "lock_people", broken)
    async with pg() as session, session.begin():
        outcome = await book_session(
            UnitOfWork.over(session), request_for(world), reminder_offsets=[], now=NOW
        )
        assert outcome == BookingFailed()
        assert await session.scalar(text("SELECT 1")) == 1


async def _other_student(factory: Factory, world: World) -> int:
    async with factory() as session, session.begin():
        student = await add_user(session, "Other Student")
        await enroll(session, student, world.course)
        return student.id


async def _students(factory: Factory, world: World, count: int) -> list[int]:
    async with factory() as session, session.begin():
        ids = []
        for number in range(count):
            student = await add_user(session, f"Student {number:03d}")
            await enroll(session, student, world.course)
            ids.append(student.id)
        return ids


def _bypass_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave only the exclusion constraints between the racers and a double booking."""

    async def no_lock(session: AsyncSession, params: dict[str, object]) -> int:
        return 15  # the ST's buffer, which the lock query would have read

    def no_rules() -> ColumnElement[bool]:
        return true()

    monkeypatch.setattr(tx, "lock_people", no_lock)
    monkeypatch.setattr(tx, "guard", no_rules)


async def test_the_constraint_alone_refuses_a_booking_that_starts_inside_the_sts_buffer(
    pg: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ST's exclusion constraint covers [start, end + buffer), not just the session itself."""
    world = await make_world(pg, teachers=1)
    other = await _other_student(pg, world)
    _bypass_checks(monkeypatch)
    assert isinstance(await book(pg, request_for(world, student_id=other)), Booked)  # 10-11 +15
    inside_buffer = request_for(world, start=SLOT + timedelta(minutes=65))
    assert await book(pg, inside_buffer) == SlotTaken()
    after_buffer = request_for(world, start=SLOT + timedelta(minutes=75))
    assert isinstance(await book(pg, after_buffer), Booked)


@pytest.mark.parametrize("checks", ["checks and constraint", "constraint alone"])
async def test_a_hundred_students_racing_for_one_slot_yield_exactly_one_booking(
    pg: Factory, monkeypatch: pytest.MonkeyPatch, checks: str
) -> None:
    world = await make_world(pg, teachers=1)
    students = await _students(pg, world, 100)
    if checks == "constraint alone":
        _bypass_checks(monkeypatch)
    outcomes = await asyncio.gather(*(book(pg, request_for(world, student_id=s)) for s in students))
    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"Booked": 1, "SlotTaken": 99}
    async with pg() as session:
        assert await session.scalar(select(func.count(Session.id))) == 1


@pytest.mark.parametrize("checks", ["checks and constraint", "constraint alone"])
async def test_one_student_racing_into_two_sts_at_overlapping_times_gets_exactly_one(
    pg: Factory, monkeypatch: pytest.MonkeyPatch, checks: str
) -> None:
    world = await make_world(pg, teachers=2)
    if checks == "constraint alone":
        _bypass_checks(monkeypatch)
    first = request_for(world, teacher_id=world.teachers[0].id)
    second = request_for(world, teacher_id=world.teachers[1].id, start=SLOT + timedelta(minutes=30))
    outcomes = await asyncio.gather(book(pg, first), book(pg, second))
    assert Counter(type(o).__name__ for o in outcomes) == {"Booked": 1, "StudentConflict": 1}
    async with pg() as session:
        assert await session.scalar(select(func.count(Session.id))) == 1


async def test_twenty_overlapping_attempts_by_one_student_book_exactly_one(pg: Factory) -> None:
    world = await make_world(pg, teachers=2)
    attempts = [
        request_for(world, teacher_id=world.teachers[i % 2].id, start=SLOT + timedelta(minutes=i))
        for i in range(20)
    ]
    outcomes = await asyncio.gather(*(book(pg, attempt) for attempt in attempts))
    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds["Booked"] == 1
    assert kinds["StudentConflict"] + kinds["SlotTaken"] == 19
    assert kinds["StudentConflict"] >= 1


async def test_a_cancelled_session_frees_its_slot(pg: Factory) -> None:
    world = await make_world(pg, teachers=1)
    first = await book(pg, request_for(world))
    assert isinstance(first, Booked)
    async with pg() as session, session.begin():
        await session.execute(
            update(Session).where(Session.id == first.session_id).values(status="cancelled")
        )
    other = await _other_student(pg, world)
    assert isinstance(await book(pg, request_for(world, student_id=other)), Booked)


async def test_an_st_teaching_two_courses_is_one_calendar(pg: Factory) -> None:
    world = await make_world(pg, teachers=1)
    teacher = world.teachers[0]
    async with pg() as session, session.begin():
        session.add(StudentTeacher(user_id=teacher.id, course_id=world.other_course.id))
        other = await add_user(session, "Chem Student")
        await enroll(session, other, world.other_course)
        await add_teacher(session, world.other_course, "Unrelated ST")
    assert isinstance(await book(pg, request_for(world)), Booked)
    chem = BookingRequest(
        course_id=world.other_course.id,
        student_id=other.id,
        teacher_id=teacher.id,
        start=SLOT + timedelta(minutes=30),
        end=SLOT + timedelta(minutes=90),
        reminders=False,
        note=None,
        platform="slack",
    )
    assert await book(pg, chem) == SlotTaken()


async def test_a_person_is_busy_in_both_roles(pg: Factory) -> None:
    """Ada teaches Calculus and studies Chemistry: one calendar for both."""
    world = await make_world(pg, teachers=1)
    ada = world.teachers[0]
    async with pg() as session, session.begin():
        await enroll(session, ada, world.other_course)
        chem_st = await add_teacher(session, world.other_course, "Zed Chem")
    as_student = BookingRequest(
        course_id=world.other_course.id,
        student_id=ada.id,
        teacher_id=chem_st.id,
        start=SLOT,
        end=SLOT + timedelta(hours=1),
        reminders=False,
        note=None,
        platform="web",
    )
    assert isinstance(await book(pg, as_student), Booked)
    assert await book(pg, request_for(world, start=SLOT + timedelta(minutes=30))) == SlotTaken()
    # and the other way round: Ada, booked as an ST, cannot also attend a class then
    later = SLOT + timedelta(hours=4)
    assert isinstance(await book(pg, request_for(world, start=later)), Booked)
    clash = BookingRequest(
        **{**as_student.__dict__, "start": later, "end": later + timedelta(hours=1)}
    )
    assert await book(pg, clash) == StudentConflict()


async def test_an_st_with_different_buffers_per_course_is_offered_only_bookable_slots(
    pg: Factory,
) -> None:
    from engine.chat.catalog import DbCatalog

    world = await make_world(pg, teachers=1)
    ada = world.teachers[0]
    async with pg() as session, session.begin():
        await session.execute(update(StudentTeacher).values(buffer_minutes=30))
        session.add(
            StudentTeacher(user_id=ada.id, course_id=world.other_course.id, buffer_minutes=0)
        )
        await enroll(session, world.student, world.other_course)
        other = await add_user(session, "Other")
        await enroll(session, other, world.course)
    assert isinstance(await book(pg, request_for(world, student_id=other.id)), Booked)  # 10-11 +30
    async with pg() as session:
        catalog = DbCatalog(UnitOfWork.over(session), [], NOW)
        slots = await catalog.free_slots(
            world.other_course.id, ada.id, world.student.id, SLOT, SLOT + timedelta(hours=3), NOW
        )
    assert SLOT + timedelta(hours=1) not in slots  # 11:00 is inside the 30-minute buffer
    assert SLOT + timedelta(minutes=90) in slots


async def test_the_per_day_limit_holds_under_concurrent_bookings(pg: Factory) -> None:
    world = await make_world(pg, teachers=1)
    async with pg() as session, session.begin():
        await session.execute(update(StudentTeacher).values(max_per_day=1))
    students = await _students(pg, world, 6)
    starts = [SLOT + timedelta(hours=i) for i in range(6)]  # six different times, one day
    outcomes = await asyncio.gather(
        *(
            book(pg, request_for(world, student_id=s, start=t))
            for s, t in zip(students, starts, strict=True)
        )
    )
    assert Counter(type(o).__name__ for o in outcomes) == {"Booked": 1, "SlotTaken": 5}
    next_day = await book(
        pg, request_for(world, student_id=students[0], start=SLOT + timedelta(days=1))
    )
    assert isinstance(next_day, Booked)  # the limit is per ST-local day


@pytest.mark.parametrize("rule", ["the ST's per-day limit", "the course's session count"])
async def test_a_second_booking_waits_for_the_first_ones_lock_and_then_sees_it(
    pg: Factory, rule: str
) -> None:
    """The per-day limit and the session count have no constraint behind them: only the row
    lock (`SELECT ... FOR UPDATE` in `lock_people`) keeps two bookings from both counting the
    sessions before either commits. The first booking is held open after its insert; the
    second, at a time that overlaps nothing, must queue behind it and then be refused."""
    world = await make_world(pg, teachers=2, session_count=8 if "per-day" in rule else 1)
    if "per-day" in rule:  # another student, the same ST, later that day
        async with pg() as session, session.begin():
            await session.execute(update(StudentTeacher).values(max_per_day=1))
        second = request_for(world, student_id=await _other_student(pg, world))
        refused: Outcome = SlotTaken()
    else:  # the same student, another ST, later that day
        second = request_for(world, teacher_id=world.teachers[1].id)
        refused = NoSessionsLeft()
    second = BookingRequest(
        **{**second.__dict__, "start": SLOT + timedelta(hours=4), "end": SLOT + timedelta(hours=5)}
    )
    holder: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def first_booking_held_open() -> Outcome:
        async with pg() as session, session.begin():
            outcome = await book_session(
                UnitOfWork.over(session), request_for(world), reminder_offsets=[], now=NOW
            )
            holder.set_result(await backend_pid(session))
            await release.wait()  # locks held, insert not yet committed
            return outcome

    first = asyncio.create_task(first_booking_held_open())
    pid = await holder
    later = asyncio.create_task(book(pg, second))
    engine = pg.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    waited = await waits_for_lock(later, engine, pid)
    release.set()
    outcomes = [await first, await later]
    assert waited, f"the second booking did not wait for the first one's lock: {outcomes}"
    assert isinstance(outcomes[0], Booked) and outcomes[1] == refused
    async with pg() as session:
        assert await session.scalar(select(func.count(Session.id))) == 1


# --- who booked, and the ST-local day of the per-day limit -----------------------------------
async def test_the_session_records_the_student_as_its_booker_unless_someone_booked_for_them(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        coordinator = await add_user(session, "Casey Coordinator")
    own = await book(pg, request_for(world))
    later = SLOT + timedelta(hours=3)
    on_behalf = await book(
        pg, replace(request_for(world, start=later), created_by=coordinator.id, platform="slack")
    )
    assert isinstance(own, Booked) and isinstance(on_behalf, Booked)
    async with pg() as session:
        first = await session.get(Session, own.session_id)
        second = await session.get(Session, on_behalf.session_id)
        assert first is not None and second is not None
        assert (first.student_id, first.created_by) == (world.student.id, world.student.id)
        assert (second.student_id, second.created_by, second.created_via) == (
            world.student.id,
            coordinator.id,
            "slack",
        )
        # The session is still the student's: their calendar, count and analytics.
        events = (await session.scalars(select(AnalyticsEvent))).all()
        assert {e.user_id for e in events} == {world.student.id}


async def test_every_outbox_row_a_booking_writes_is_a_known_job_kind(pg: Factory) -> None:
    world = await make_world(pg)
    assert isinstance(await book(pg, request_for(world)), Booked)
    async with pg() as session:
        kinds = (await session.scalars(select(ReminderJob.kind))).all()
    assert {Job.parse(kind).kind for kind in kinds} == {
        JobKind.REMINDER,
        JobKind.REMINDER_EMAIL,
        JobKind.ROOM,
        JobKind.CONFIRMATION_EMAIL,
        JobKind.BOOKED,
    }


async def test_the_per_day_limit_counts_the_sts_local_day_that_has_no_midnight(pg: Factory) -> None:
    """Havana skips 00:00-01:00 on 8 March 2026: that day starts at the jump (05:00 UTC), as the
    slots shown for it do (engine/slots.py), so 23:00 the evening before is another day."""
    havana = ZoneInfo("America/Havana")
    world = await make_world(pg, teachers=0)
    async with pg() as session, session.begin():
        course = await session.get(Course, world.course.id)
        assert course is not None
        teacher = await add_teacher(session, course, "Hector Havana", "America/Havana")
        await session.execute(update(StudentTeacher).values(max_per_day=1))
    evening_before = datetime(2026, 3, 7, 23, 0, tzinfo=havana)
    after_the_jump = datetime(2026, 3, 8, 1, 30, tzinfo=havana)
    same_day_later = datetime(2026, 3, 8, 22, 0, tzinfo=havana)
    outcomes = [
        await book(pg, request_for(world, teacher_id=teacher.id, start=start))
        for start in (evening_before, after_the_jump, same_day_later)
    ]
    assert [type(o).__name__ for o in outcomes] == ["Booked", "Booked", "SlotTaken"]


async def test_the_per_day_limit_counts_whatever_day_the_engine_gives_the_transaction(
    pg: Factory,
) -> None:
    """Storage has no day rule of its own: it asks the engine's (passed in with the row)."""
    world = await make_world(pg, teachers=1)
    async with pg() as session, session.begin():
        await session.execute(update(StudentTeacher).values(max_per_day=1))
    asked: list[tuple[date, str]] = []

    def whole_week(day: date, zone: str) -> tuple[datetime, datetime]:
        asked.append((day, zone))
        monday = datetime.combine(day - timedelta(days=day.weekday()), time(0), UTC)
        return monday, monday + timedelta(days=7)

    async def book_with(start: datetime) -> tx.TxResult:
        row = tx.BookingRow(request_for(world, start=start), whole_week, now=NOW)
        async with pg() as session, session.begin():
            return await tx.book_in_session(session, row)

    assert (await book_with(SLOT)).session_id is not None  # Friday
    refused = await book_with(SLOT + timedelta(days=1))  # Saturday
    assert refused.facts is not None and refusal(refused.facts) == SlotTaken()
    assert asked == [(SLOT.date(), "UTC"), ((SLOT + timedelta(days=1)).date(), "UTC")]


async def test_someone_rescheduling_for_the_student_is_recorded_on_both_sessions(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        coordinator = await add_user(session, "Casey Coordinator")
    old = await book(pg, request_for(world))
    assert isinstance(old, Booked)
    moved = await book(
        pg,
        replace(
            request_for(world, start=SLOT + timedelta(hours=3)),
            replaces=old.session_id,
            created_by=coordinator.id,
        ),
    )
    assert isinstance(moved, Booked)
    async with pg() as session:
        released = await session.get(Session, old.session_id)
        new = await session.get(Session, moved.session_id)
        assert released is not None and new is not None
        assert (released.status, released.cancelled_by) == ("cancelled", coordinator.id)
        assert (new.student_id, new.created_by) == (world.student.id, coordinator.id)
