"""A coordinator books for a student through the same wizard: the booking is the student's (their
enrolment, calendar and session count), `created_by` names the coordinator, and the student is
told on their chat and by e-mail. Only coordinators may, checked on every step. On PostgreSQL and
SQLite (the `db` fixture)."""

from __future__ import annotations

from datetime import timedelta

import icalendar
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import flow
from engine.chat import messages as m
from engine.chat.staff_booking import StaffBooking, start_for
from engine.followup.dispatch import Dispatcher
from engine.followup.reminders import Worker, WorkerSettings
from engine.followup.senders import OutMessage
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.models import ReminderJob, Session, User
from storage.repositories import Repo
from tests.chat import Chat, plain
from tests.factories import NOW, World, add_user, enroll, make_world
from tests.test_cancellation import Mailbox
from tests.test_flow import book_elsewhere

Factory = async_sessionmaker[AsyncSession]
PLATFORM = "test"


class Inbox:
    """A chat platform that keeps what it was asked to send, buttons included."""

    platform = PLATFORM

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutMessage]] = []

    async def send(self, chat_id: str, message: OutMessage) -> None:
        self.sent.append((chat_id, message))


async def _coordinator(db: Factory, name: str = "Cora Coordinator") -> int:
    async with db() as session, session.begin():
        cora = await add_user(session, name)
        cora.is_coordinator = True
        return cora.id


async def _book_for(db: Factory, world: World, cora: int) -> Chat:
    """Cora books Ada on Friday 27 at 10:00 for Sam, the world's student."""
    chat = Chat(db, cora, chat_id="cora-dm")
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    assert m.BOOKING_FOR.format(name="Sam Student") in chat.screen.lines
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    await chat.press("10:00 AM")
    assert chat.screen.step == "confirm"
    assert chat.screen.lines[0] == m.BOOKING_FOR.format(name="Sam Student")
    await chat.press("Book Session")
    return chat


async def test_a_coordinator_books_for_a_student_and_the_student_is_told(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    async with db() as session, session.begin():
        await Repo(session).link_identity(PLATFORM, "sam", world.student.id, "sam-chat")
    chat = await _book_for(db, world, cora)
    assert chat.screen.step == "success"
    # The invite shown to the coordinator is the student's event: Sam and Ada attend, not Cora.
    (invite,) = chat.screen.files
    (event,) = icalendar.Calendar.from_ical(invite.content).events
    attendees = {str(a).removeprefix("mailto:").lower() for a in event.get("ATTENDEE")}
    assert attendees == {"sam.student@example.edu", "ada.lovelace@example.edu"}
    async with db() as session:
        booked = (await session.scalars(select(Session))).one()
        kinds = set(await session.scalars(select(ReminderJob.kind)))
    assert (booked.student_id, booked.created_by, booked.created_via) == (
        world.student.id,
        cora,
        PLATFORM,
    )
    assert {"student:booked", "teacher:booked", "email:confirmation"} <= kinds

    inbox, mailbox = Inbox(), Mailbox()
    dispatcher = Dispatcher(db, Settings(), [inbox], mailbox, JitsiProvider())
    worker = Worker(db, dispatcher, WorkerSettings(), lambda: NOW + timedelta(minutes=1))
    while await worker.run_once():
        pass
    to_sam = [message for chat_id, message in inbox.sent if chat_id == "sam-chat"]
    assert len(to_sam) == 1
    assert plain(to_sam[0].text).startswith(
        "Cora Coordinator booked a session of Calculus I for you with Ada Lovelace on "
    )
    labels = [button.label for row in to_sam[0].buttons for button in row]
    assert labels == [m.JOIN, m.RESCHEDULE, m.CANCEL_SESSION]
    assert world.student.email in mailbox.sent  # the invite, as for any booking


async def test_a_student_who_books_for_themselves_gets_no_extra_notice(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    assert m.BOOKING_FOR.format(name="Sam Student") not in chat.screen.lines
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    await chat.press("10:00 AM")
    await chat.press("Book Session")
    async with db() as session:
        booked = (await session.scalars(select(Session))).one()
        kinds = set(await session.scalars(select(ReminderJob.kind)))
    assert booked.created_by == world.student.id
    assert "student:booked" not in kinds


async def test_only_a_coordinator_may_book_for_someone_else(db: Factory) -> None:
    world = await make_world(db)
    async with db() as session, session.begin():
        mallory = (await add_user(session, "Mallory")).id
    chat = Chat(db, mallory)
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    assert (chat.screen.step, chat.screen.title) == ("idle", m.COORDINATORS_ONLY)
    async with db() as session:
        assert (await session.scalars(select(Session))).all() == []


async def test_a_coordinator_who_loses_the_role_mid_wizard_cannot_go_on(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    chat = Chat(db, cora)
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    await chat.press("Book with Ada Lovelace")
    async with db() as session, session.begin():
        await session.execute(update(User).where(User.id == cora).values(is_coordinator=False))
    await chat.press("27")
    assert (chat.screen.step, chat.screen.title) == ("idle", m.COORDINATORS_ONLY)


async def test_the_spec_errors_are_the_students_own(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    chat = Chat(db, cora)
    # Not enrolled in Organic Chemistry: the spec's words, as the student would see them.
    await chat.start(course_id=world.other_course.id, student_id=world.student.id)
    assert chat.screen.step == "not_enrolled"
    assert m.NOT_ENROLLED in chat.screen.lines
    # The student is busy at that time with another ST: their calendar, not the coordinator's.
    await book_elsewhere(db, world, world.student.id, world.teachers[1].id)
    chat = Chat(db, cora, chat_id="cora-2")
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    shown = [plain(b.label) for b in chat.screen.all_buttons()]
    assert "10:00 AM" not in shown  # the student's own busy time is not offered


async def test_an_st_cannot_be_booked_as_a_student_of_their_own_course(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    chat = Chat(db, cora)
    await chat.start(course_id=world.course.id, student_id=world.teachers[0].id)
    assert chat.screen.title == m.THEY_TEACH.format(course="Calculus I")


async def test_schedule_later_for_a_student_records_the_coordinator(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    chat = Chat(db, cora)
    await chat.start(course_id=world.course.id, student_id=world.student.id)
    await chat.press(m.SCHEDULE_LATER)
    assert chat.screen.step == "scheduled_later"
    async with db() as session:
        saved = (await session.scalars(select(Session))).one()
    assert (saved.student_id, saved.created_by, saved.scheduled_start) == (
        world.student.id,
        cora,
        None,
    )


async def test_show_draws_the_current_step_again_and_changes_nothing(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    before = chat.screen
    again = await chat.send(flow.Show(notice="Another click won."))
    assert again is not None
    assert (again.step, again.nonce, again.notice) == (
        before.step,
        before.nonce,
        "Another click won.",
    )
    assert again.all_buttons() == before.all_buttons()
    await chat.press("Book with Ada Lovelace")  # the buttons shown before are still valid


async def test_students_are_searched_by_name_or_email_for_coordinators_only(db: Factory) -> None:
    world = await make_world(db)
    cora = await _coordinator(db)
    async with db() as session, session.begin():
        other = await add_user(session, "Samira 100%")
        await enroll(session, other, world.course)
        await add_user(session, "Sam Notenrolled")
    staff = StaffBooking(db)
    found = await staff.students(cora, "  SAM ")
    assert [o.label for o in found] == [
        "Sam Student (sam.student@example.edu)",
        "Samira 100% (samira.100%@example.edu)",
    ]
    assert [o.label for o in await staff.students(cora, "100%")] == [found[1].label]
    assert await staff.students(cora, "_") == []  # a wildcard matches itself only
    assert await staff.students(cora, "") == []
    assert await staff.students(world.student.id, "sam") == []  # not a coordinator
    assert [o.label for o in await staff.courses(cora)] == ["Calculus I", "Organic Chemistry"]
    assert await staff.courses(world.student.id) == []
    assert await staff.is_coordinator(cora) and not await staff.is_coordinator(world.student.id)


@pytest.mark.parametrize(
    ("course", "student", "ok"),
    [
        ("1", "2", True),
        (None, "2", False),
        ("1", "", False),
        ("1", "-2", False),
        ("１", "2", False),  # a full-width digit is a digit to str.isdigit, not to us
        ("1", "1234567890", False),
        ("1e3", "2", False),
    ],
)
def test_the_chosen_values_are_parsed_again(course: str | None, student: str, ok: bool) -> None:
    parsed = start_for(course, student)
    assert (parsed is not None) == ok
    if parsed is not None:
        assert (parsed.course_id, parsed.student_id) == (int(course or 0), int(student))
