"""After booking, on PostgreSQL: the video room, cancelling, rescheduling and their races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.booking import Booked, BookingRequest, SlotTaken, book_session
from engine.followup import manage
from engine.followup.video import JitsiProvider
from storage.models import ReminderJob, Session
from storage.uow import UnitOfWork
from tests.factories import NOW, World, add_user, enroll, make_world

Factory = async_sessionmaker[AsyncSession]
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CUTOFF = timedelta(hours=2)


async def book(
    db: Factory,
    world: World,
    start: datetime = FRIDAY_10,
    student: int | None = None,
    teacher: int | None = None,
    replaces: int | None = None,
) -> object:
    async with db() as session, session.begin():
        return await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                student or world.student.id,
                teacher or world.teachers[0].id,
                start,
                start + timedelta(hours=1),
                True,
                None,
                "test",
                replaces=replaces,
            ),
            reminder_offsets=[timedelta(hours=24), timedelta(hours=1)],
            now=NOW,
        )


async def status(db: Factory, session_id: int) -> str:
    async with db() as session:
        row = await session.get(Session, session_id)
        assert row is not None
        return row.status


async def test_the_room_opens_shortly_before_the_start_and_both_people_get_the_same_one(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    booked = await book(pg, world)
    assert isinstance(booked, Booked)
    jitsi = JitsiProvider("https://meet.example.edu")
    early = await manage.join(pg, booked.session_id, world.student.id, NOW, jitsi)
    assert isinstance(early, manage.TooEarly)
    async with pg() as session:
        row = await session.get(Session, booked.session_id)
        assert row is not None and row.video_url is None  # never created at booking
    at_start = FRIDAY_10 - timedelta(minutes=5)
    student = await manage.join(pg, booked.session_id, world.student.id, at_start, jitsi)
    teacher = await manage.join(pg, booked.session_id, world.teachers[0].id, at_start, jitsi)
    assert isinstance(student, manage.RoomReady) and isinstance(teacher, manage.RoomReady)
    assert student.url == teacher.url and student.url.startswith("https://meet.example.edu/")
    token = student.url.split(f"/Tutoring-{booked.session_id}-", 1)[1]
    assert len(token) >= 20  # 128 random bits: unguessable
    stranger = await manage.join(pg, booked.session_id, world.teachers[1].id, at_start, jitsi)
    assert isinstance(stranger, manage.Unavailable)
    over = await manage.join(
        pg, booked.session_id, world.student.id, FRIDAY_10 + timedelta(hours=2), jitsi
    )
    assert over == manage.Unavailable(ended=True)


async def test_concurrent_first_joins_create_one_room(pg: Factory) -> None:
    world = await make_world(pg)
    booked = await book(pg, world)
    assert isinstance(booked, Booked)
    jitsi = JitsiProvider()
    at = FRIDAY_10
    results = await asyncio.gather(
        *(manage.join(pg, booked.session_id, world.student.id, at, jitsi) for _ in range(10)),
        *(manage.join(pg, booked.session_id, world.teachers[0].id, at, jitsi) for _ in range(10)),
    )
    assert len({r.url for r in results if isinstance(r, manage.RoomReady)}) == 1


async def test_cancelling_frees_the_slot_drops_reminders_and_queues_the_notice(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    booked = await book(pg, world)
    assert isinstance(booked, Booked)
    done = await manage.cancel(pg, booked.session_id, world.student.id, NOW, CUTOFF)
    assert isinstance(done, manage.Cancelled) and done.other_party == world.teachers[0].id
    assert await status(pg, booked.session_id) == "cancelled"
    async with pg() as session:
        jobs = (await session.scalars(select(ReminderJob).order_by(ReminderJob.id))).all()
        pending = {j.kind for j in jobs if j.status == "pending"}
        assert pending == {
            f"cancelled:chat:{world.teachers[0].id}",
            f"cancelled:email:{world.student.id}",
            f"cancelled:email:{world.teachers[0].id}",
        }
        assert {j.kind for j in jobs if j.status == "cancelled"} >= {
            "student:before_24h",
            "teacher:before_1h",
            "student:start",
        }
        row = await session.get(Session, booked.session_id)
        assert row is not None and row.sequence == 1  # the ICS CANCEL outranks the invite
    async with pg() as session, session.begin():
        other = await add_user(session, "Next Student")
        await enroll(session, other, world.course)
    assert isinstance(await book(pg, world, student=other.id), Booked)
    again = await manage.cancel(pg, booked.session_id, world.student.id, NOW, CUTOFF)
    assert isinstance(again, manage.Unavailable)


async def test_changes_close_at_the_cutoff_and_strangers_cannot_cancel(pg: Factory) -> None:
    world = await make_world(pg)
    booked = await book(pg, world)
    assert isinstance(booked, Booked)
    late = FRIDAY_10 - timedelta(minutes=90)
    assert isinstance(
        await manage.cancel(pg, booked.session_id, world.student.id, late, CUTOFF), manage.TooLate
    )
    assert isinstance(
        await manage.check_reschedule(pg, booked.session_id, world.student.id, late, CUTOFF),
        manage.TooLate,
    )
    stranger = await manage.cancel(pg, booked.session_id, world.teachers[1].id, NOW, CUTOFF)
    assert isinstance(stranger, manage.Unavailable)
    assert await status(pg, booked.session_id) == "scheduled"
    by_teacher = await manage.cancel(pg, booked.session_id, world.teachers[0].id, NOW, CUTOFF)
    assert isinstance(by_teacher, manage.Cancelled)
    assert by_teacher.other_party == world.student.id


async def test_rescheduling_releases_the_old_slot_only_when_the_new_one_is_booked(
    pg: Factory,
) -> None:
    world = await make_world(pg, session_count=1)
    old = await book(pg, world)
    assert isinstance(old, Booked)
    # Moving 30 minutes later with the same ST overlaps the old slot: only possible because the
    # release and the new booking are one transaction; the course's only session is reused.
    moved = await book(pg, world, start=FRIDAY_10 + timedelta(minutes=30), replaces=old.session_id)
    assert isinstance(moved, Booked)
    assert await status(pg, old.session_id) == "cancelled"
    assert await status(pg, moved.session_id) == "scheduled"
    async with pg() as session:
        old_jobs = await session.scalars(
            select(ReminderJob.kind).where(
                ReminderJob.session_id == old.session_id, ReminderJob.status == "pending"
            )
        )
        teacher = world.teachers[0].id
        assert sorted(old_jobs) == sorted(
            [
                f"cancelled:chat:{teacher}:moved",
                f"cancelled:email:{teacher}:moved",
                f"cancelled:email:{world.student.id}:moved",
            ]
        )


async def test_a_reschedule_into_a_slot_taken_a_moment_earlier_leaves_the_original_intact(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    old = await book(pg, world)
    assert isinstance(old, Booked)
    async with pg() as session, session.begin():
        rival = await add_user(session, "Rival")
        await enroll(session, rival, world.course)
    target = FRIDAY_10 + timedelta(hours=3)
    rival_first = await book(pg, world, start=target, student=rival.id)
    assert isinstance(rival_first, Booked)
    attempt = await book(pg, world, start=target, replaces=old.session_id)
    assert attempt == SlotTaken()
    assert await status(pg, old.session_id) == "scheduled"
    async with pg() as session:
        pending = await session.scalars(
            select(ReminderJob.kind).where(
                ReminderJob.session_id == old.session_id, ReminderJob.status == "pending"
            )
        )
        assert "student:before_1h" in set(pending)  # its reminders survive too


async def test_a_reschedule_racing_a_rival_for_the_same_slot_has_one_winner(pg: Factory) -> None:
    world = await make_world(pg)
    old = await book(pg, world)
    assert isinstance(old, Booked)
    async with pg() as session, session.begin():
        rival = await add_user(session, "Rival")
        await enroll(session, rival, world.course)
    target = FRIDAY_10 + timedelta(hours=3)
    moved, rivals = await asyncio.gather(
        book(pg, world, start=target, replaces=old.session_id),
        book(pg, world, start=target, student=rival.id),
    )
    assert sorted(type(o).__name__ for o in (moved, rivals)) == ["Booked", "SlotTaken"]
    expected_old = "cancelled" if isinstance(moved, Booked) else "scheduled"
    assert await status(pg, old.session_id) == expected_old


async def test_rescheduling_a_cancelled_session_books_nothing(pg: Factory) -> None:
    world = await make_world(pg)
    old = await book(pg, world)
    assert isinstance(old, Booked)
    await manage.cancel(pg, old.session_id, world.student.id, NOW, CUTOFF)
    attempt = await book(pg, world, start=FRIDAY_10 + timedelta(hours=3), replaces=old.session_id)
    assert type(attempt).__name__ == "NotReschedulable"
    async with pg() as session:
        assert len((await session.scalars(select(Session))).all()) == 1
