"""The wizard driven through events only, on PostgreSQL and on the SQLite default.

One test per row of the spec's "States & Variations" table, then its error table, its analytics
table and the chat-specific rules (stale buttons, typed dates, notes, duplicates).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import storage.booking_tx as tx
from engine.booking import BookingRequest, book_session
from engine.chat import messages as m
from storage.models import AnalyticsEvent, ReminderJob, Session, StudentTeacher
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.chat import Chat
from tests.factories import NOW, World, add_user, enroll, make_world

Factory = async_sessionmaker[AsyncSession]
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


async def events(factory: Factory, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    async with factory() as session:
        return [(e.name, e.data) for e in await Repo(session).events(name)]


async def sessions(factory: Factory) -> list[Session]:
    async with factory() as session:
        return list((await session.scalars(select(Session).order_by(Session.id))).all())


async def to_confirm(chat: Chat, world: World) -> None:
    """Course page -> Ada -> Friday 27 -> 10:00 AM: the confirmation step."""
    await chat.start(course_id=world.course.id, source="CDET")
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    await chat.press("10:00 AM")
    assert chat.screen.step == "confirm"


async def book_elsewhere(
    factory: Factory,
    world: World,
    student_id: int,
    teacher_id: int,
    start: datetime = FRIDAY_10,
) -> None:
    async with factory() as session, session.begin():
        await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                course_id=world.course.id,
                student_id=student_id,
                teacher_id=teacher_id,
                start=start,
                end=start + timedelta(hours=1),
                reminders=False,
                note=None,
                platform="web",
            ),
            reminder_offsets=[],
            now=NOW,
        )


# --- States & Variations ---------------------------------------------------------------------
async def test_st_preselected_skips_step_one_and_shows_the_st_info(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    screen = await chat.start(course_id=world.course.id, teacher_id=world.teachers[1].id)
    assert screen.step == "choose_date"
    assert [card.title for card in screen.cards] == ["Bob Brown"]
    assert "Book a Session for Calculus I" in screen.title
    assert await events(db) == [
        ("page_view", {"course_id": world.course.id, "st_preselected": True})
    ]


async def test_choose_st_shows_a_card_per_active_st_with_its_next_free_time(db: Factory) -> None:
    world = await make_world(db, teachers=3)
    chat = Chat(db, world.student.id)
    screen = await chat.start(course_slug="calculus-1")
    assert screen.step == "choose_st"
    assert [c.button.label for c in screen.cards] == [
        "Book with Ada Lovelace",
        "Book with Bob Brown",
        "Book with Chen Wei",
    ]
    # Minimum notice is 2 h: at 08:00 UTC the first slot is 10:00.
    assert "Next free: Wednesday, November 25, 2026, 10:00 AM UTC" in chat.text()
    assert "Schedule Later" in chat.labels()
    assert await events(db) == [
        ("page_view", {"course_id": world.course.id, "st_preselected": False})
    ]


async def test_no_sts_available_says_so_and_offers_schedule_later(db: Factory) -> None:
    world = await make_world(db)
    async with db() as session, session.begin():
        await session.execute(update(StudentTeacher).values(is_active=False))
    chat = Chat(db, world.student.id)
    screen = await chat.start(course_id=world.course.id)
    assert screen.step == "no_sts"
    assert "No Student-Teachers available. Try later." in screen.lines
    assert "Schedule Later" in chat.labels()


async def test_date_selected_shows_the_time_slots_of_that_date(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    await chat.press("Book with Ada Lovelace")
    screen = await chat.press("27")
    assert screen.step == "choose_time"
    slots = [label for label in chat.labels() if label.endswith("M")]
    assert slots[0] == "9:00 AM" and slots[-1] == "4:00 PM" and len(slots) == 15
    assert "Times shown in UTC (UTC)" in screen.lines
    assert ("date_selected", {"date": "2026-11-27"}) in await events(db)
    assert ("st_selected", {"st_id": world.teachers[0].id}) in await events(db)


async def test_slot_selected_shows_the_confirmation_with_reminders_on(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    text = chat.text()
    assert "Course: Calculus I" in text and "Student-Teacher: Ada Lovelace" in text
    assert "When: Friday, November 27, 2026, 10:00 AM UTC" in text
    assert "Reminders: on" in text
    assert {"☑ Reminders", "Add a note", "Book Session"} <= set(chat.labels())
    assert (
        "time_selected",
        {"time": FRIDAY_10.isoformat(), "st_id": world.teachers[0].id},
    ) in await events(db)


async def test_booking_shows_a_loading_state_then_the_success_screen(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    screen = await chat.press("Book Session")
    assert [s.loading for s in chat.loading] == [True]
    assert m.BOOKING_LOADING in chat.loading[0].lines
    assert screen.step == "success" and screen.title == "Session Booked!"
    assert "When: Friday, November 27, 2026, 10:00 AM UTC" in chat.text()
    dashboard = chat.button("Back to Dashboard")
    assert dashboard.url and dashboard.url.startswith("https://")
    assert "Book Another Session" in chat.labels()
    google = chat.button("📅 Google Calendar").url
    assert google and "dates=20261127T100000Z/20261127T110000Z" in google
    outlook = chat.button("📅 Outlook").url
    assert outlook and "startdt=2026-11-27T10:00:00Z" in outlook
    (invite,) = screen.files
    assert invite.filename.endswith(".ics") and b"METHOD:REQUEST" in invite.content
    redrawn = await chat.send(flow_press("garbage"))  # nothing is redrawn, nor re-sent
    assert redrawn is not None and redrawn.unchanged and redrawn.files == ()
    assert redrawn.notice == m.EXPIRED and chat.screen is screen
    (booked,) = await sessions(db)
    assert (booked.status, booked.scheduled_start, booked.created_via) == (
        "scheduled",
        FRIDAY_10,
        "test",
    )


async def test_book_another_session_restarts_the_wizard_for_the_course(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("Book Session")
    screen = await chat.press("Book Another Session")
    assert screen.step == "choose_st"


async def test_schedule_later_records_an_unscheduled_session_and_skips_st_and_time(
    db: Factory,
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    screen = await chat.press("Schedule Later")
    assert screen.step == "scheduled_later"
    assert "/book" in chat.text() and "/mysessions" in chat.text()
    (saved,) = await sessions(db)
    assert (saved.status, saved.teacher_id, saved.scheduled_start) == ("unscheduled", None, None)
    assert ("schedule_later", {"course_id": world.course.id}) in await events(db)
    # "Schedule now" comes back to step 1, and booking fills in the saved session.
    await chat.press("Schedule now")
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    await chat.press("10:00 AM")
    await chat.press("Book Session")
    (filled,) = await sessions(db)
    assert (filled.id, filled.status) == (saved.id, "scheduled")


# --- Error handling ----------------------------------------------------------------------------
async def test_a_student_not_enrolled_is_told_to_enroll_with_a_link(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    screen = await chat.start(course_slug="organic-chemistry")
    assert screen.step == "not_enrolled"
    assert "You must be enrolled to book." in screen.lines
    enroll_now = chat.button("Enroll now")
    assert enroll_now.url and enroll_now.url.endswith("/courses/organic-chemistry")


async def test_a_slot_taken_meanwhile_says_so_and_shows_the_remaining_slots(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    async with db() as session, session.begin():
        rival = await add_user(session, "Rival")
        await enroll(session, rival, world.course)
    await book_elsewhere(db, world, rival.id, world.teachers[0].id)
    screen = await chat.press("Book Session")
    assert screen.notice == "This time is no longer available. Select another."
    assert screen.step == "choose_time"
    assert "10:00 AM" not in chat.labels() and "11:30 AM" in chat.labels()
    assert ("booking_failed", {"error_type": "slot_taken"}) in await events(db)


async def test_another_session_at_that_time_is_a_booking_conflict(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await book_elsewhere(db, world, world.student.id, world.teachers[1].id)
    screen = await chat.press("Book Session")
    assert screen.notice == "You have another session at this time."
    assert ("booking_failed", {"error_type": "student_conflict"}) in await events(db)


async def test_a_failed_booking_says_try_again_and_keeps_the_confirmation(
    db: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)

    async def broken(session: AsyncSession, params: dict[str, object]) -> None:
        raise OSError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(tx, "lock_people", broken)
        screen = await chat.press("Book Session")
    assert screen.notice == "Unable to book. Please try again."
    assert screen.step == "confirm"
    assert ("booking_failed", {"error_type": "error"}) in await events(db)
    assert (await chat.press("Book Session")).step == "success"


async def test_a_student_who_used_every_session_of_the_course_is_told_so(db: Factory) -> None:
    world = await make_world(db, session_count=1)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("Book Session")
    screen = await chat.start(course_id=world.course.id)
    assert screen.step == "no_sessions_left"
    assert "You have used all 1 sessions included in Calculus I" in chat.text()


async def test_an_unknown_course_gets_a_clear_message_and_the_course_list(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    screen = await chat.start(course_slug="underwater-basket-weaving")
    assert screen.step == "choose_course"
    assert screen.notice and "underwater-basket-weaving" in screen.notice
    assert chat.labels() == ["Calculus I"]
    assert (await chat.press("Calculus I")).step == "choose_st"


# --- buttons, text and delivery --------------------------------------------------------------
async def test_a_button_from_an_old_screen_has_expired_and_books_nothing(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    old = chat.screens[-1]
    book_button = chat.button("Book Session")
    await chat.press("‹ Back")
    stale = await chat.send(flow_press(old.data(book_button)))
    assert stale is not None and stale.notice == "This option has expired."
    assert stale.unchanged and chat.screen.step == "choose_time"
    assert await sessions(db) == []


async def test_book_session_from_before_going_back_has_expired_even_on_the_confirm_step(
    db: Factory,
) -> None:
    """The step check cannot tell this button from the live one: after ‹ Back and another time,
    the wizard is on Confirm again, where "Book Session" is allowed. Only the screen's nonce
    says the old button promised 10:00; pressing it must not book 11:00 (or anything)."""
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    old = chat.screens[-1]
    old_book = old.data(chat.button("Book Session"))
    await chat.press("‹ Back")
    await chat.press("11:00 AM")
    assert chat.screen.step == "confirm"
    stale = await chat.send(flow_press(old_book))
    assert stale is not None and stale.notice == "This option has expired."
    assert stale.unchanged and chat.screen.step == "confirm"
    assert "When: Friday, November 27, 2026, 11:00" in chat.text()
    assert await sessions(db) == []


def flow_press(data: str) -> Any:
    from engine.chat.flow import Press

    return Press(data)


@pytest.mark.parametrize(
    "data",
    ["", "garbage", "1|k|" + "9" * 80, "0|s|99999999999999", "5|q|yesterday", "\x00|k", "é" * 40],
)
async def test_forged_or_oversized_button_data_is_refused_with_the_current_screen(
    db: Factory, data: str
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    screen = await chat.send(flow_press(data))
    assert screen is not None and screen.notice == "This option has expired."
    assert screen.unchanged and chat.screen.step == "confirm"
    assert await sessions(db) == []


async def test_a_forged_slot_with_the_current_nonce_is_revalidated(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    three_am = int(datetime(2026, 11, 27, 3, 0, tzinfo=UTC).timestamp()) // 60
    screen = await chat.send(flow_press(f"{chat.screen.nonce:x}|s|{three_am}"))
    assert screen is not None and screen.notice == m.SLOT_TAKEN and screen.step == "choose_time"


async def test_free_text_where_a_button_is_expected_gets_a_hint_and_loses_nothing(
    db: Factory,
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    screen = await chat.type("yes please")
    assert screen.notice == "Please choose one of the options below."
    assert screen.step == "confirm" and "When: Friday, November 27, 2026" in chat.text()


@pytest.mark.parametrize(
    ("typed", "step", "expected"),
    [
        ("next friday", "choose_time", "Friday, November 27"),
        ("tomorrow", "choose_time", "Thursday, November 26"),
        ("asdf qwerty", "choose_date", "couldn't read"),
        ("yesterday", "choose_date", "is in the past"),
        ("1 March 2027", "choose_date", "too far ahead"),
    ],
)
async def test_typed_dates_go_through_the_date_parser(
    db: Factory, typed: str, step: str, expected: str
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    screen = await chat.type(typed)
    assert screen.step == step
    assert expected in chat.text()


async def test_a_day_without_free_times_is_inert_and_typing_it_says_so(db: Factory) -> None:
    world = await make_world(db)
    async with db() as session, session.begin():
        await session.execute(
            update(StudentTeacher)
            .where(StudentTeacher.user_id == world.teachers[0].id)
            .values(max_per_day=0)
        )
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    day_27 = [b for b in chat.screen.all_buttons() if b.label == "27"]
    assert day_27 and not day_27[0].enabled
    screen = await chat.type("27 Nov")
    assert screen.notice == "No free times on Friday, November 27. Pick another day."


@pytest.mark.parametrize(
    ("option", "day"),
    [("Today", "Wednesday"), ("Tomorrow", "Thursday"), ("Next available", "Wednesday")],
)
async def test_quick_options_jump_to_a_day(db: Factory, option: str, day: str) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    screen = await chat.press(option)
    assert screen.step == "choose_time"
    assert f"Pick a time on {day}" in chat.text()


async def test_the_calendar_moves_by_month_within_the_booking_horizon(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    assert "November 2026" in [b.label for b in chat.screen.calendar[0]]
    assert "‹" not in chat.labels()  # nothing to book before this month
    await chat.press("›")
    assert "December 2026" in [b.label for b in chat.screen.calendar[0]]
    await chat.press("›")  # 60 days ahead reaches January 2027
    assert "›" not in chat.labels()
    await chat.press("‹")
    assert "December 2026" in [b.label for b in chat.screen.calendar[0]]


async def test_reminders_toggle_and_a_note_reach_the_booking(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await chat.press("☑ Reminders")
    assert "☐ Reminders" in chat.labels() and "Reminders: off" in chat.text()
    screen = await chat.press("Add a note")
    assert screen.prompt and "500 characters" in screen.prompt
    too_long = "x" * 501
    screen = await chat.type(too_long)
    assert screen.notice and "limited to 500 characters; yours has 501" in screen.notice
    assert screen.step == "note"
    screen = await chat.type("  Integrals by parts, please  ")
    assert screen.notice == "Note saved." and screen.step == "confirm"
    assert "Note to Ada Lovelace: Integrals by parts, please" in chat.text()
    await chat.press("Book Session")
    (booked,) = await sessions(db)
    assert (booked.reminders, booked.note) == (False, "Integrals by parts, please")
    async with db() as session:
        kinds = list(await session.scalars(select(ReminderJob.kind)))
        assert kinds and not [kind for kind in kinds if kind.startswith("student:")]


async def test_back_walks_the_wizard_backwards_and_cancel_leaves_it(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    steps = [(await chat.press("‹ Back")).step for _ in range(4)]
    assert steps == ["choose_time", "choose_date", "choose_st", "choose_course"]
    await chat.press("Calculus I")
    screen = await chat.press("Cancel")
    assert screen.step == "idle" and "Booking cancelled" in chat.text()


async def test_a_duplicate_delivery_is_a_no_op(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    first = await chat.send(flow_press(chat.screen.data(chat.button("Schedule Later"))), "u-1")
    again = await chat.send(flow_press(chat.screens[-2].data(chat.button("Schedule now"))), "u-1")
    assert first is not None and again is None
    assert len(await sessions(db)) == 1


async def test_a_second_bot_process_continues_the_same_conversation(db: Factory) -> None:
    world = await make_world(db)
    first = Chat(db, world.student.id)
    await first.start(course_id=world.course.id)
    second = Chat(db, world.student.id, screens=list(first.screens))  # another process, same DB
    screen = await second.press("Book with Ada Lovelace")
    assert screen.step == "choose_date"
    first.screens.append(screen)
    assert (await first.press("27")).step == "choose_time"


async def test_the_eight_analytics_events_carry_exactly_the_spec_data(db: Factory) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    await book_elsewhere(db, world, world.student.id, world.teachers[1].id)
    await chat.press("Book Session")  # fails: conflict
    await chat.press("11:30 AM")
    await chat.press("Book Session")
    await chat.press("Book Another Session")
    await chat.press("Schedule Later")
    recorded = await events(db)
    keys = {name: set(data) for name, data in recorded}
    assert keys == {
        "page_view": {"course_id", "st_preselected"},
        "st_selected": {"st_id"},
        "date_selected": {"date"},
        "time_selected": {"time", "st_id"},
        "booking_attempted": {"course_id", "st_id", "datetime"},
        "booking_success": {"session_id"},
        "booking_failed": {"error_type"},
        "schedule_later": {"course_id"},
    }
    async with db() as session:
        rows = (await session.scalars(select(AnalyticsEvent))).all()
        assert {row.user_id for row in rows} == {world.student.id}
        platforms = [row.platform for row in rows]
        assert platforms.count("web") == 1  # book_elsewhere's own booking_success
        assert set(platforms) == {"test", "web"}


async def test_a_saved_session_can_be_scheduled_when_it_is_the_courses_last(db: Factory) -> None:
    world = await make_world(db, session_count=1)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    await chat.press("Schedule Later")
    assert (await chat.press("Schedule now")).step == "choose_st"
    await chat.press("Book with Ada Lovelace")
    await chat.press("27")
    await chat.press("10:00 AM")
    assert (await chat.press("Book Session")).step == "success"
    screen = await chat.start(course_id=world.course.id)
    assert screen.step == "no_sessions_left"  # and now the course is used up


async def test_a_fall_back_day_labels_the_repeated_hour_with_its_zone(db: Factory) -> None:
    world = await make_world(db, student_timezone="America/New_York", student_locale="en_US")
    async with db() as session, session.begin():
        from storage.models import Availability

        await session.execute(
            update(Availability).values(start_time=time(0, 0), end_time=time(0, 0))
        )  # around the clock, so 1:00-2:00 AM on 1 Nov 2026 happens twice
    chat = Chat(db, world.student.id, now=datetime(2026, 10, 30, 12, 0, tzinfo=UTC))
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    await chat.type("1 Nov")
    labels = chat.labels()
    assert "1:00 AM EDT" in labels and "1:00 AM EST" in labels
    assert "3:00 AM" in labels  # unique times stay plain
