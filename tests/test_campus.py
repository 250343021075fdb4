"""Today across campus for coordinators (engine/chat/campus.py), through ConversationService on
PostgreSQL and SQLite: the day grouped by course in the coordinator's own zone, the possible
no-shows, Cancel with a reason (both people told, checked again on every press), and the
worker's notices naming the coordinator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import campus, flow
from engine.chat import messages as m
from engine.chat.screens import MAX_ACTION_BYTES, Button, Screen
from engine.followup import manage
from engine.followup.dispatch import Dispatcher
from engine.followup.reminders import Worker, WorkerSettings
from engine.followup.senders import OutMessage
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.jobs import Job
from storage.models import ReminderJob, Session, User
from storage.records import SessionRecord
from storage.repositories import Repo
from tests.chat import Chat, plain
from tests.factories import NOW, World, add_teacher, add_user, enroll, make_world
from tests.test_cancellation import Mailbox
from tests.test_statement_counts import counting

Factory = async_sessionmaker[AsyncSession]
HOUR = timedelta(hours=1)
PLATFORM = "test"


@dataclass
class Campus:
    world: World
    chen: User  # the Organic Chemistry ST
    pat: User  # a second student, in both courses
    casey: User  # the coordinator, who teaches nothing


async def make_campus(db: Factory, timezone: str = "UTC", locale: str = "en") -> Campus:
    world = await make_world(db)
    async with db() as session, session.begin():
        chen = await add_teacher(session, world.other_course, "Chen Wei")
        pat = await add_user(session, "Pat Pupil")
        await enroll(session, pat, world.course)
        await enroll(session, pat, world.other_course)
        await enroll(session, world.student, world.other_course)
        casey = await add_user(session, "Casey Coordinator", timezone, locale)
        casey.is_coordinator = True
    return Campus(world, chen, pat, casey)


async def add_session(
    db: Factory,
    course_id: int,
    student: User,
    teacher: User,
    start: datetime,
    *,
    video_url: str | None = None,
    status: str = "scheduled",
) -> int:
    """A session written as the booking would, with the room and status the test needs."""
    async with db() as session, session.begin():
        row = Session(
            course_id=course_id,
            student_id=student.id,
            teacher_id=teacher.id,
            scheduled_start=start,
            scheduled_end=start + HOUR,
            blocked_until=start + HOUR,
            status=status,
            reminders=True,
            created_via="test",
            created_by=student.id,
            video_url=video_url,
        )
        session.add(row)
        await session.flush()
        return row.id


async def home(db: Factory, user_id: int, now: datetime) -> Screen:
    screen = await Chat(db, user_id, now=now).send(flow.StaffHome())
    assert screen is not None
    return screen


def part(screen: Screen, step: str) -> list[Screen]:
    return [s for s in screen.more if s.step == step]


def course_lines(screen: Screen) -> dict[str, list[str]]:
    return {s.title: [plain(line) for line in s.lines] for s in part(screen, "campus_course")}


def button(screen: Screen, label: str) -> tuple[Screen, Button]:
    """The screen (itself or one of its `more`) holding the button, and the button."""
    for each in (screen, *screen.more):
        for found in each.all_buttons():
            if plain(found.label) == label:
                return each, found
    shown = [plain(b.label) for s in (screen, *screen.more) for b in s.all_buttons()]
    raise AssertionError(f"no button {label!r}: {shown}")


async def press(chat: Chat, screen: Screen, label: str) -> Screen:
    holder, found = button(screen, label)
    answer = await chat.send(flow.Press(holder.data(found)))
    assert answer is not None
    return answer


async def stored(db: Factory, session_id: int) -> Session:
    async with db() as session:
        found = await session.get(Session, session_id)
        assert found is not None
        return found


async def job_kinds(db: Factory) -> set[str]:
    async with db() as session:
        return set(await session.scalars(select(ReminderJob.kind)))


# --- what the coordinator sees --------------------------------------------------------------
async def test_a_coordinator_sees_every_session_today_grouped_by_course(db: Factory) -> None:
    c = await make_campus(db)
    ada, bob = c.world.teachers
    sam, course, chem = c.world.student, c.world.course.id, c.world.other_course.id
    now = NOW.replace(hour=9)
    await add_session(db, course, sam, ada, NOW.replace(hour=10))
    await add_session(db, chem, c.pat, c.chen, NOW.replace(hour=11))
    await add_session(db, course, c.pat, bob, NOW.replace(hour=14))
    await add_session(db, course, sam, bob, NOW.replace(hour=16), status="cancelled")
    await add_session(db, course, sam, ada, NOW.replace(hour=10) + timedelta(days=1))
    screen = await home(db, c.casey.id, now)
    assert [s.step for s in screen.more] == [
        "campus_heading",
        "campus_no_shows",
        "campus_course",
        "campus_course",
    ]  # a coordinator who teaches nothing gets no empty day, hours or days off of their own
    heading = part(screen, "campus_heading")[0]
    assert heading.title == m.CAMPUS_TODAY
    assert heading.lines == ("Wednesday, November 25 (times in UTC)",)
    assert course_lines(screen) == {
        "Calculus I": [
            "• 10:00 AM: Sam Student with Ada Lovelace",
            "• 2:00 PM: Pat Pupil with Bob Brown",
        ],
        "Organic Chemistry": ["• 11:00 AM: Pat Pupil with Chen Wei"],
    }
    assert part(screen, "campus_no_shows")[0].lines == (m.CAMPUS_NO_NO_SHOWS,)
    assert [plain(b.label) for s in screen.more for b in s.all_buttons()] == [
        "Cancel 10:00 AM Sam Student",
        "Cancel 2:00 PM Pat Pupil",
        "Cancel 11:00 AM Pat Pupil",
    ]
    for each in screen.more:
        for found in each.all_buttons():
            assert len(each.data(found).encode()) <= MAX_ACTION_BYTES


async def test_an_st_who_teaches_and_coordinates_gets_both_an_st_only_gets_their_own(
    db: Factory,
) -> None:
    c = await make_campus(db)
    ada = c.world.teachers[0]
    await add_session(db, c.world.course.id, c.world.student, ada, NOW.replace(hour=10))
    own = await home(db, ada.id, NOW)
    assert not any(s.step.startswith("campus") for s in own.more)
    async with db() as session, session.begin():
        await session.execute(update(User).where(User.id == ada.id).values(is_coordinator=True))
    both = await home(db, ada.id, NOW)
    steps = [s.step for s in both.more]
    # The campus first: a long week of one's own must not push it out of App Home.
    assert steps.index("campus_heading") < steps.index("home_heading") < steps.index("home_hours")
    assert "campus_course" in steps


async def test_a_day_without_sessions_says_so(db: Factory) -> None:
    c = await make_campus(db)
    screen = await home(db, c.casey.id, NOW)
    assert [(s.step, s.lines[-1]) for s in screen.more] == [("campus_heading", m.CAMPUS_NOTHING)]


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",  # no offset, no DST
        "Asia/Kolkata",  # +05:30 all year: an offset, DST irrelevant
        "America/Los_Angeles",  # -08:00 in November; 08:00 UTC is local midnight
        "Pacific/Kiritimati",  # +14:00: already the next calendar day
    ],
)
async def test_today_is_the_coordinators_own_day_in_their_zone(db: Factory, zone: str) -> None:
    c = await make_campus(db, timezone=zone)
    ada, bob = c.world.teachers
    sam, course = c.world.student, c.world.course.id
    local = ZoneInfo(zone)
    today = NOW.astimezone(local).date()

    def at(day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, local).astimezone(UTC)

    await add_session(db, course, sam, ada, at(today, time(0, 0)))  # the day's first minute
    await add_session(db, course, sam, ada, at(today, time(22, 30)))
    await add_session(db, course, sam, bob, at(today - timedelta(days=1), time(22, 30)))
    await add_session(db, course, sam, bob, at(today + timedelta(days=1), time(0, 0)))
    screen = await home(db, c.casey.id, NOW)
    assert course_lines(screen) == {
        "Calculus I": [
            "• 12:00 AM: Sam Student with Ada Lovelace",
            "• 10:30 PM: Sam Student with Ada Lovelace",
        ]
    }
    assert part(screen, "campus_heading")[0].lines[0].endswith(f"(times in {zone})")


async def test_times_are_in_the_coordinators_locale(db: Factory) -> None:
    c = await make_campus(db, timezone="Europe/Berlin", locale="de")
    sam, ada = c.world.student, c.world.teachers[0]
    await add_session(db, c.world.course.id, sam, ada, NOW.replace(hour=13))
    screen = await home(db, c.casey.id, NOW)
    heading = part(screen, "campus_heading")[0]
    assert heading.lines == ("Mittwoch, 25. November (times in Europe/Berlin)",)
    assert course_lines(screen)["Calculus I"] == ["• 14:00: Sam Student with Ada Lovelace"]


# --- possible no-shows ----------------------------------------------------------------------
START = NOW.replace(hour=10)


@pytest.mark.parametrize(
    ("elapsed", "room", "listed"),
    [
        (timedelta(minutes=10), None, False),  # exactly ten minutes: not yet
        (timedelta(minutes=10, seconds=1), None, True),
        (timedelta(minutes=30), "https://meet.example/room", False),  # the room was opened
        (timedelta(minutes=-5), None, False),  # not started
    ],
)
def test_the_no_show_rule(elapsed: timedelta, room: str | None, listed: bool) -> None:
    booked = SessionRecord(
        id=1,
        course_id=1,
        student_id=1,
        teacher_id=2,
        scheduled_start=START,
        scheduled_end=START + HOUR,
        blocked_until=START + HOUR,
        status="scheduled",
        reminders=True,
        note=None,
        created_via="test",
        created_by=1,
        created_at=NOW,
        video_url=room,
        sequence=0,
        cancelled_at=None,
        cancelled_by=None,
        cancel_reason=None,
    )
    assert campus.possible_no_show(booked, START + elapsed) is listed


@pytest.mark.parametrize(
    ("elapsed", "listed"),
    [(timedelta(minutes=10), False), (timedelta(minutes=10, seconds=1), True)],
)
async def test_possible_no_shows_are_listed_after_ten_minutes_without_a_room(
    db: Factory, elapsed: timedelta, listed: bool
) -> None:
    c = await make_campus(db)
    ada, bob = c.world.teachers
    course = c.world.course.id
    await add_session(db, course, c.world.student, ada, START)
    await add_session(db, course, c.pat, bob, START, video_url="https://meet.example/opened")
    await add_session(db, c.world.other_course.id, c.pat, c.chen, START - 2 * HOUR)
    late = START - 3 * HOUR
    await add_session(db, course, c.world.student, bob, late, status="cancelled")
    no_shows = part(await home(db, c.casey.id, START + elapsed), "campus_no_shows")[0]
    minutes = m.CAMPUS_NO_SHOWS_WHY.format(minutes=10)
    chemistry = "• 8:00 AM: Organic Chemistry, Pat Pupil with Chen Wei"
    calculus = "• 10:00 AM: Calculus I, Sam Student with Ada Lovelace"
    expected = [minutes, chemistry, calculus] if listed else [minutes, chemistry]
    assert [plain(line) for line in no_shows.lines] == expected
    labels = [plain(b.label) for b in no_shows.all_buttons()]
    assert labels == ["Cancel 8:00 AM Pat Pupil"] + (["Cancel 10:00 AM Sam Student"] * listed)


# --- cancel with a reason -------------------------------------------------------------------
async def _no_show(db: Factory) -> tuple[Campus, int, Chat, Screen]:
    """Sam and Ada's 10:00 session, nobody in the room at 10:20; Casey's home then."""
    c = await make_campus(db)
    session_id = await add_session(
        db, c.world.course.id, c.world.student, c.world.teachers[0], START
    )
    chat = Chat(db, c.casey.id, now=START + timedelta(minutes=20))
    screen = await chat.send(flow.StaffHome())
    assert screen is not None
    return c, session_id, chat, screen


async def test_a_coordinator_cancels_with_a_reason_and_both_people_are_told(db: Factory) -> None:
    """Inside the students' and STs' change cutoff (the session has started): a coordinator
    runs the programme, so they may."""
    c, session_id, chat, screen = await _no_show(db)
    why = await press(chat, screen, "Cancel 10:00 AM Sam Student")
    assert plain(why.title) == (
        "Why cancel the Calculus I session of Sam Student with Ada Lovelace on "
        "Wednesday, November 25, 2026, 10:00 AM UTC? Both are told."
    )
    assert [plain(b.label) for b in why.all_buttons()] == [
        m.REASON_NO_SHOW,
        m.REASON_ST_UNAVAILABLE,
        m.REASON_STUDENT_ASKED,
        m.REASON_OTHER,
        m.KEEP_IT,
    ]
    confirm = await press(chat, why, m.REASON_NO_SHOW)
    assert confirm.step == "campus_confirm"
    assert confirm.lines == (m.CANCEL_REASON.format(reason=m.REASON_NO_SHOW_TEXT),)
    assert (await stored(db, session_id)).status == "scheduled"  # nothing until "Yes"
    done = await press(chat, confirm, m.YES_CANCEL)
    assert done.step == "campus_cancelled" and "both have been told" in done.title
    cancelled = await stored(db, session_id)
    assert (cancelled.status, cancelled.cancelled_by, cancelled.cancel_reason) == (
        "cancelled",
        c.casey.id,
        m.REASON_NO_SHOW_TEXT,
    )
    people = (c.world.student.id, c.world.teachers[0].id)
    assert await job_kinds(db) == {
        *(Job.cancelled_chat(p).format() for p in people),
        *(Job.cancelled_email(p).format() for p in people),
    }
    after = await chat.send(flow.StaffHome())
    assert after is not None and "campus_course" not in [s.step for s in after.more]


async def test_other_cancels_without_a_reason_and_keep_it_keeps_the_session(db: Factory) -> None:
    _, session_id, chat, screen = await _no_show(db)
    why = await press(chat, screen, "Cancel 10:00 AM Sam Student")
    kept = await press(chat, why, m.KEEP_IT)
    assert kept.title == m.CAMPUS_KEPT and kept.toast == m.CAMPUS_KEPT
    assert (await stored(db, session_id)).status == "scheduled"
    confirm = await press(chat, why, m.REASON_OTHER)
    assert confirm.lines == (m.CAMPUS_NO_REASON,)
    await press(chat, confirm, m.YES_CANCEL)
    cancelled = await stored(db, session_id)
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", None)


async def test_non_coordinators_and_forged_presses_change_nothing(db: Factory) -> None:
    c, session_id, chat, screen = await _no_show(db)
    forged = [
        f"C:y:{session_id}",  # yes without a reason
        f"C:c:{session_id}:n",  # a question with one
        f"C:y:{session_id}:z",  # no such reason
        f"C:q:{session_id}",
        "C:c:1234567890",  # more digits than an id has
        "C:c:",
        f"C:y:{session_id + 100}:n",  # no such session
        f" C:y:{session_id}:n",
    ]
    for data in forged:
        answer = await chat.send(flow.Press(data))
        assert answer is not None and answer.unchanged and answer.toast == m.EXPIRED, data
    ada = Chat(db, c.world.teachers[0].id, chat_id="ada", now=chat.now)
    sam = Chat(db, c.world.student.id, chat_id="sam", now=chat.now)
    for person in (ada, sam):
        for data in (f"C:c:{session_id}", f"C:r:{session_id}:n", f"C:y:{session_id}:n"):
            answer = await person.send(flow.Press(data))
            assert answer is not None and answer.unchanged and answer.toast == m.EXPIRED
    # The role is checked on every press, not when the button was drawn.
    why = await press(chat, screen, "Cancel 10:00 AM Sam Student")
    confirm = await press(chat, why, m.REASON_NO_SHOW)
    async with db() as session, session.begin():
        await session.execute(
            update(User).where(User.id == c.casey.id).values(is_coordinator=False)
        )
    refused = await press(chat, confirm, m.YES_CANCEL)
    assert refused.unchanged and refused.toast == m.EXPIRED
    assert (await stored(db, session_id)).status == "scheduled"
    assert await job_kinds(db) == set()


async def test_a_session_cancelled_meanwhile_is_an_expired_option(db: Factory) -> None:
    c, session_id, chat, screen = await _no_show(db)
    why = await press(chat, screen, "Cancel 10:00 AM Sam Student")
    confirm = await press(chat, why, m.REASON_STUDENT_ASKED)
    before = START - timedelta(minutes=30)  # the student cancelled before the start (no cutoff)
    by_sam = await manage.cancel(db, session_id, c.world.student.id, before, timedelta(0))
    assert isinstance(by_sam, manage.Cancelled)
    kinds = await job_kinds(db)
    for pressed_on, label in ((screen, "Cancel 10:00 AM Sam Student"), (confirm, m.YES_CANCEL)):
        answer = await press(chat, pressed_on, label)
        assert answer.unchanged and answer.toast == m.EXPIRED
    cancelled = await stored(db, session_id)
    assert (cancelled.cancelled_by, cancelled.cancel_reason) == (c.world.student.id, None)
    assert await job_kinds(db) == kinds  # nobody is told twice


# --- the notices, through the worker ----------------------------------------------------------
class Chats:
    """Records each chat's last message with its buttons (the student's "Book another time")."""

    platform = PLATFORM

    def __init__(self) -> None:
        self.sent: dict[str, OutMessage] = {}

    async def send(self, chat_id: str, message: OutMessage) -> None:
        self.sent[chat_id] = message


async def test_both_people_are_told_by_the_worker_that_the_coordinator_cancelled_and_why(
    pg: Factory,
) -> None:
    c, _, chat, screen = await _no_show(pg)
    sam, ada = c.world.student, c.world.teachers[0]
    async with pg() as session, session.begin():
        repo = Repo(session)
        for person in (sam, ada):
            await repo.link_identity(PLATFORM, f"u{person.id}", person.id, f"chat-{person.id}")
    why = await press(chat, screen, "Cancel 10:00 AM Sam Student")
    await press(chat, await press(chat, why, m.REASON_NO_SHOW), m.YES_CANCEL)

    chats, mailbox = Chats(), Mailbox()
    dispatcher = Dispatcher(pg, Settings(), [chats], mailbox, JitsiProvider())
    worker = Worker(pg, dispatcher, WorkerSettings(), lambda: chat.now + timedelta(minutes=1))
    while await worker.run_once():
        pass
    assert set(chats.sent) == {f"chat-{sam.id}", f"chat-{ada.id}"}
    for message in chats.sent.values():
        assert plain(message.text).startswith(
            "❌ Casey Coordinator cancelled the Calculus I session on "
        )
        assert message.text.endswith("\nReason: " + m.REASON_NO_SHOW_TEXT)
    again = [b.label for row in chats.sent[f"chat-{sam.id}"].buttons for b in row]
    assert again == [m.BOOK_ANOTHER_TIME]  # the student can book another time at once
    assert chats.sent[f"chat-{ada.id}"].buttons == ()
    assert set(mailbox.sent) == {sam.email, ada.email}
    for email, other in ((sam.email, ada.name), (ada.email, sam.name)):
        text = mailbox.sent[email or ""].text
        assert f"Casey Coordinator cancelled your session with {other}." in text
        assert "\nCancelled by:     Casey Coordinator\n" in text
        assert m.REASON_NO_SHOW_TEXT in text


# --- sized to the screen ----------------------------------------------------------------------
async def test_the_campus_home_reads_the_day_in_one_query_however_many_sessions(
    pg: Factory,
) -> None:
    c = await make_campus(pg)
    ada, bob = c.world.teachers
    course = c.world.course.id

    async def statements() -> int:
        with counting(pg.kw["bind"]) as seen:
            await home(pg, c.casey.id, START + HOUR)
        return len(seen)

    await add_session(pg, course, c.world.student, ada, START)
    await statements()  # the first event also creates the chat's conversation row
    few = await statements()
    for hour in range(11, 17):
        await add_session(pg, course, c.world.student, ada, NOW.replace(hour=hour))
        await add_session(pg, c.world.other_course.id, c.pat, c.chen, NOW.replace(hour=hour))
    await add_session(pg, course, c.pat, bob, START)
    assert await statements() == few
