"""Join links (`<PUBLIC_BASE_URL>/join/<token>`): the rule alone, exhaustively at its
boundaries, then the real aiohttp route over PostgreSQL (the room made on demand once for both
people and for simultaneous clicks, the pages before, after and instead of a session, 404 for
anything not genuine), the links the worker's e-mails and invites carry, and `bookbot serve`
mounting the route."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import icalendar
import pytest
import vobject
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.join import join_routes
from bots.server import ServerSettings, serve
from engine.booking import Booked
from engine.followup import manage
from engine.followup.dispatch import Dispatcher
from engine.followup.join import (
    JOIN_PATH,
    HasEnded,
    NotFound,
    NotYet,
    RoomOpen,
    WasCancelled,
    decide,
    join_url,
)
from engine.followup.manage import ROOM_OPENS_BEFORE
from engine.followup.notify import EmailContent
from engine.followup.reminders import Worker, WorkerSettings
from engine.links import JOIN_LINK_GRACE
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.models import Session
from storage.records import SessionRecord, SessionStatus
from tests.factories import NOW, World, make_world
from tests.test_manage import book as book_with_reminders

Factory = async_sessionmaker[AsyncSession]
SECRET = "join-link-tests-" + "s" * 32
BASE = "https://bot.tutoring.example.edu"
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
END = FRIDAY_10 + timedelta(hours=1)
OPENS = FRIDAY_10 - ROOM_OPENS_BEFORE
CUTOFF = timedelta(hours=2)
SETTINGS = Settings(link_secret=SECRET, public_base_url=BASE)


# --- the rule ----------------------------------------------------------------------------------
STUDENT, TEACHER, STRANGER = 1, 2, 3


def record(**changes: object) -> SessionRecord:
    base = SessionRecord(
        id=7,
        course_id=1,
        student_id=STUDENT,
        teacher_id=TEACHER,
        scheduled_start=FRIDAY_10,
        scheduled_end=END,
        blocked_until=None,
        status=SessionStatus.SCHEDULED.value,
        reminders=True,
        note=None,
        created_via="test",
        created_by=STUDENT,
        created_at=NOW,
        video_url=None,
        sequence=0,
        cancelled_at=None,
        cancelled_by=None,
        cancel_reason=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW, NotYet(OPENS)),
        (OPENS - TICK, NotYet(OPENS)),
        (OPENS, RoomOpen()),  # exactly 10 minutes before: open
        (FRIDAY_10, RoomOpen()),  # at the start
        (END - TICK, RoomOpen()),
        (END, HasEnded()),  # at the end: over
        (END + JOIN_LINK_GRACE, HasEnded()),
    ],
)
def test_the_room_is_open_from_ten_minutes_before_the_start_until_the_end(
    now: datetime, expected: object
) -> None:
    for person in (STUDENT, TEACHER):
        assert decide(record(), person, now) == expected


def test_a_cancelled_session_reads_cancelled_at_any_time_even_after_its_end() -> None:
    cancelled = record(status=SessionStatus.CANCELLED.value)
    for now in (NOW, OPENS, FRIDAY_10, END, END + timedelta(hours=5)):
        assert decide(cancelled, STUDENT, now) == WasCancelled()


def test_a_completed_session_has_ended_even_before_its_scheduled_end() -> None:
    assert decide(record(status=SessionStatus.COMPLETED.value), TEACHER, FRIDAY_10) == HasEnded()


def test_no_session_a_stranger_or_a_session_without_a_time_is_not_found() -> None:
    assert decide(None, STUDENT, FRIDAY_10) == NotFound("no_session")
    assert decide(record(), STRANGER, FRIDAY_10) == NotFound("not_in_session")
    assert decide(record(teacher_id=None), TEACHER, FRIDAY_10) == NotFound("not_in_session")
    later = record(status=SessionStatus.UNSCHEDULED.value, scheduled_start=None, scheduled_end=None)
    assert decide(later, STUDENT, FRIDAY_10) == NotFound("unscheduled")
    # Even a cancelled or ended session tells a stranger nothing.
    for status in SessionStatus:
        assert decide(record(status=status.value), STRANGER, FRIDAY_10) == NotFound(
            "not_in_session"
        )


@given(
    status=st.sampled_from(list(SessionStatus)),
    person=st.sampled_from([STUDENT, TEACHER, STRANGER]),
    start_minutes=st.integers(-10_000, 10_000),
    length=st.integers(1, 300),
    now_seconds=st.integers(-1_000_000, 1_000_000),
)
def test_every_session_person_and_moment_gets_exactly_the_documented_answer(
    status: SessionStatus, person: int, start_minutes: int, length: int, now_seconds: int
) -> None:
    start = FRIDAY_10 + timedelta(minutes=start_minutes)
    end = start + timedelta(minutes=length)
    now = FRIDAY_10 + timedelta(seconds=now_seconds)
    booked = record(status=status.value, scheduled_start=start, scheduled_end=end)
    got = decide(booked, person, now)
    if person == STRANGER:
        assert got == NotFound("not_in_session")
    elif status is SessionStatus.CANCELLED:
        assert got == WasCancelled()
    elif status is SessionStatus.COMPLETED or (status is SessionStatus.SCHEDULED and now >= end):
        assert got == HasEnded()
    elif status is SessionStatus.UNSCHEDULED:
        assert got == NotFound("unscheduled")
    elif now < start - ROOM_OPENS_BEFORE:
        assert got == NotYet(start - ROOM_OPENS_BEFORE)
    else:
        assert start - ROOM_OPENS_BEFORE <= now < end
        assert got == RoomOpen()


def test_the_link_is_the_public_base_url_and_a_token_the_same_on_every_call() -> None:
    url = join_url(BASE + "/", SECRET, 7, STUDENT, END)
    assert url.startswith(f"{BASE}{JOIN_PATH}") and "//join" not in url
    assert url == join_url(BASE, SECRET, 7, STUDENT, END)
    assert url != join_url(BASE, SECRET, 7, TEACHER, END)  # each person their own
    assert Settings().public_base_url == "http://127.0.0.1:8080"  # serve's default address
    assert ServerSettings().port == 8080 and ServerSettings().host == "127.0.0.1"


# --- the route over PostgreSQL -------------------------------------------------------------------
class Rooms:
    """A VideoProvider that records each room it makes. It takes a moment, as a real API call
    would, so simultaneous first clicks really do overlap."""

    def __init__(self) -> None:
        self.made: list[int] = []

    async def create_room(self, session_id: int) -> str:
        self.made.append(session_id)
        room = f"https://meet.example.edu/Tutoring-{session_id}-{len(self.made)}"
        await asyncio.sleep(0.05)
        return room


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    client: TestClient[web.Request, web.Application]
    rooms: Rooms
    clock: Clock
    world: World
    session_id: int
    db: Factory

    def path(self, user_id: int, session_id: int | None = None, secret: str = SECRET) -> str:
        url = join_url(BASE, secret, session_id or self.session_id, user_id, END)
        return urlsplit(url).path

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        response = await self.client.get(path, allow_redirects=False)
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.text(), response

    async def stored_room(self) -> str | None:
        async with self.db() as session:
            row = await session.get(Session, self.session_id)
            assert row is not None
            return row.video_url


async def book(db: Factory, world: World, replaces: int | None = None) -> int:
    """Sam with Ada, Friday 10:00 (a reschedule: 12:00), reminders 24 h and 1 h before."""
    start = FRIDAY_10 + (timedelta(hours=2) if replaces else timedelta())
    outcome = await book_with_reminders(db, world, start, replaces=replaces)
    assert isinstance(outcome, Booked)
    return outcome.session_id


@asynccontextmanager
async def site(db: Factory, **world_options: object) -> AsyncIterator[Site]:
    world = await make_world(db, **world_options)  # type: ignore[arg-type]
    session_id = await book(db, world)
    rooms, clock = Rooms(), Clock()
    app = web.Application()
    app.add_routes(join_routes(SETTINGS, db, rooms, clock))
    async with TestClient(TestServer(app)) as client:
        yield Site(client, rooms, clock, world, session_id, db)


async def test_before_the_room_opens_each_person_reads_when_in_their_own_zone(pg: Factory) -> None:
    async with site(pg, student_timezone="America/New_York", student_locale="en_US") as s:
        ada = s.world.teachers[0]
        status, page, response = await s.get(s.path(s.world.student.id))
        assert status == 200 and response.content_type == "text/html"
        assert "The video room is not open yet" in page
        assert "Calculus I" in page
        assert "Friday, November 27, 2026, 4:50\u202fAM EST" in page  # 09:50 UTC in New York
        assert "opens in 2 days" in page
        assert 'http-equiv="refresh"' not in page  # two days away: no timer that long
        _, for_ada, _ = await s.get(s.path(ada.id))
        assert "9:50\u202fAM UTC" in for_ada  # the ST's zone (UTC on record)
        for text in (page, for_ada):  # a forwarded link shows nobody's name or address
            for private in ("Sam", "Ada", "Lovelace", "@example.edu"):
                assert private not in text
        assert s.rooms.made == [] and await s.stored_room() is None

        s.clock.now = OPENS - timedelta(minutes=30, seconds=0.5)
        _, soon, _ = await s.get(s.path(ada.id))
        assert "opens in 30 minutes" in soon
        # Reloads itself a second after the opening, whole seconds rounded up.
        assert '<meta http-equiv="refresh" content="1802">' in soon


async def test_from_ten_minutes_before_the_start_both_people_go_to_one_room(pg: Factory) -> None:
    async with site(pg) as s:
        s.clock.now = OPENS
        status, _, response = await s.get(s.path(s.world.student.id))
        assert status == 303
        room = response.headers["Location"]
        assert room.startswith("https://meet.example.edu/Tutoring-")
        assert await s.stored_room() == room
        s.clock.now = END - timedelta(seconds=1)
        status, _, response = await s.get(s.path(s.world.teachers[0].id))
        assert (status, response.headers["Location"]) == (303, room)
        assert s.rooms.made == [s.session_id]


async def test_the_chats_join_and_the_link_share_the_room(pg: Factory) -> None:
    async with site(pg) as s:
        s.clock.now = FRIDAY_10
        _, _, response = await s.get(s.path(s.world.student.id))
        joined = await manage.join(pg, s.session_id, s.world.teachers[0].id, FRIDAY_10, s.rooms)
        assert isinstance(joined, manage.RoomReady)
        assert joined.url == response.headers["Location"]
        assert s.rooms.made == [s.session_id]


async def test_simultaneous_first_clicks_of_both_people_make_one_room(pg: Factory) -> None:
    async with site(pg) as s:
        s.clock.now = FRIDAY_10
        paths = [s.path(s.world.student.id), s.path(s.world.teachers[0].id)] * 8
        answers = await asyncio.gather(*(s.get(path) for path in paths))
        assert {status for status, _, _ in answers} == {303}
        locations = {response.headers["Location"] for _, _, response in answers}
        assert len(locations) == 1
        assert s.rooms.made == [s.session_id]  # the provider was asked exactly once
        assert await s.stored_room() == locations.pop()


async def test_after_a_cancellation_the_link_says_so_and_makes_no_room(pg: Factory) -> None:
    async with site(pg) as s:
        done = await manage.cancel(pg, s.session_id, s.world.teachers[0].id, NOW, CUTOFF)
        assert isinstance(done, manage.Cancelled)
        s.clock.now = FRIDAY_10
        for person in (s.world.student.id, s.world.teachers[0].id):
            status, page, _ = await s.get(s.path(person))
            assert status == 410
            assert "This session was cancelled" in page and "Calculus I" in page
            assert "Friday, November 27, 2026, 10:00\u202fAM UTC" in page
        assert s.rooms.made == []


async def test_a_reschedule_cancels_the_old_times_link_and_the_new_one_has_its_own(
    pg: Factory,
) -> None:
    async with site(pg) as s:
        moved = await book(pg, s.world, replaces=s.session_id)
        s.clock.now = FRIDAY_10
        status, page, _ = await s.get(s.path(s.world.student.id))
        assert status == 410 and "This session was cancelled" in page
        s.clock.now = FRIDAY_10 + timedelta(hours=2)
        new_link = urlsplit(
            join_url(BASE, SECRET, moved, s.world.student.id, END + timedelta(hours=2))
        ).path
        assert (await s.get(new_link))[0] == 303
        assert s.rooms.made == [moved]


async def test_after_the_end_the_page_says_ended_then_the_link_expires(pg: Factory) -> None:
    async with site(pg) as s:
        s.clock.now = END
        status, page, _ = await s.get(s.path(s.world.student.id))
        assert status == 410 and "This session has ended" in page
        s.clock.now = END + JOIN_LINK_GRACE - timedelta(seconds=1)
        assert (await s.get(s.path(s.world.student.id)))[0] == 410
        s.clock.now = END + JOIN_LINK_GRACE
        status, page, _ = await s.get(s.path(s.world.student.id))
        assert status == 404 and "Not found" in page
        assert s.rooms.made == []


async def test_anything_but_a_genuine_link_of_someone_in_the_session_is_a_plain_404(
    pg: Factory,
) -> None:
    async with site(pg) as s:
        s.clock.now = FRIDAY_10
        genuine = s.path(s.world.student.id)
        token = genuine.removeprefix(JOIN_PATH)
        flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        wrong = [
            JOIN_PATH + flipped,  # forged: one character changed
            JOIN_PATH + token[:-1],
            s.path(s.world.student.id, secret="another secret of 32 bytes or more!"),
            s.path(s.world.teachers[1].id),  # genuine, but not in this session
            s.path(s.world.student.id, session_id=s.session_id + 1000),  # no such session
            JOIN_PATH,
            JOIN_PATH + "not-a-token",
            JOIN_PATH + token + "/extra",
            JOIN_PATH + "%3Cscript%3E",
        ]
        for path in wrong:
            status, page, response = await s.get(path)
            assert status == 404, path
            assert response.content_type == "text/html"
            assert "Not found" in page and "<script>" not in page
        assert s.rooms.made == [] and await s.stored_room() is None
        assert (await s.get(genuine))[0] == 303  # and the genuine one still works


async def test_the_token_never_reaches_a_log_line(
    pg: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with site(pg) as s:
        tokens = [s.path(user).removeprefix(JOIN_PATH) for user in (s.world.student.id, 999)]
        s.clock.now = FRIDAY_10
        for token in tokens:
            await s.get(JOIN_PATH + token)
    mine = [r.getMessage() for r in caplog.records if r.name == "bots.join"]
    assert f"join link: session {s.session_id}, to its video room" in mine
    assert f"join link: session {s.session_id}, not_found page (not_in_session)" in mine
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert access and all("/join/<token>" in r.getMessage() for r in access)
    for entry in caplog.records:
        for value in (entry.getMessage(), *map(str, vars(entry).values())):
            assert not any(token in value for token in tokens)


async def test_a_database_outage_gets_a_try_again_page(tmp_path: Path) -> None:
    engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nothing")
    try:
        app = web.Application()
        app.add_routes(join_routes(SETTINGS, make_sessionmaker(engine), Rooms(), Clock()))
        async with TestClient(TestServer(app)) as client:
            path = urlsplit(join_url(BASE, SECRET, 1, 1, END)).path
            response = await client.get(path, allow_redirects=False)
            assert response.status == 503
            assert response.headers["Retry-After"] == "30"
            assert "try again" in (await response.text()).lower()
    finally:
        await engine.dispose()


# --- what the e-mails and invites carry ---------------------------------------------------------
class Mailbox:
    def __init__(self) -> None:
        self.sent: list[EmailContent] = []

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        self.sent.append(email)
        return idempotency_key


async def run_worker(db: Factory, mailbox: Mailbox, settings: Settings, at: datetime) -> None:
    dispatcher = Dispatcher(db, settings, [], mailbox, Rooms())
    worker = Worker(db, dispatcher, WorkerSettings(), lambda: at)
    while await worker.run_once():
        pass


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.extend(value or "" for name, value in attrs if name == "href")


def hrefs(html: str) -> list[str]:
    """The links as a mail client reads them (entities decoded)."""
    parser = _Hrefs()
    parser.feed(html)
    return parser.found


def location_param(url: str) -> str:
    (value,) = parse_qs(urlsplit(url).query)["location"]
    return value


async def test_each_persons_emails_and_invite_carry_their_own_working_join_link(
    pg: Factory,
) -> None:
    async with site(pg) as s:
        base = str(s.client.make_url("/")).rstrip("/")  # the browsers' way to this server
        settings = Settings(link_secret=SECRET, public_base_url=base)
        mailbox = Mailbox()
        await run_worker(pg, mailbox, settings, NOW)  # the two confirmations
        await run_worker(pg, mailbox, settings, FRIDAY_10 - timedelta(hours=23))  # reminder
        by_address: dict[str, list[EmailContent]] = {}
        for email in mailbox.sent:
            by_address.setdefault(email.to_email, []).append(email)
        student, ada = s.world.student, s.world.teachers[0]
        people = {student.email: student.id, ada.email: ada.id}
        assert [len(by_address[a or ""]) for a in people] == [2, 1]  # the ST gets no reminder

        rooms: set[str] = set()
        s.clock.now = OPENS
        for address, emails in by_address.items():
            link = join_url(base, SECRET, s.session_id, people[address], END)
            for email in emails:
                assert f"Join the session: {link}\n" in email.text
                assert f'href="{link}"' in email.html
            confirmation = emails[0]
            invite = confirmation.ics
            assert invite is not None and confirmation.subject.startswith("Session Booked!")
            event = icalendar.Calendar.from_ical(invite).events[0]
            assert str(event["LOCATION"]) == str(event["URL"]) == link
            other = vobject.readOne(invite.decode()).vevent
            assert other.location.value == other.url.value == link
            calendar_links = [h for h in hrefs(confirmation.html) if "location=" in h]
            assert len(calendar_links) == 3  # Google, Outlook.com, Office 365
            assert {location_param(url) for url in calendar_links} == {link}
            status, _, response = await s.get(urlsplit(link).path)
            assert status == 303
            rooms.add(response.headers["Location"])
        assert len(rooms) == 1 and s.rooms.made == [s.session_id]
        reminder = by_address[student.email or ""][1]
        assert reminder.ics is None and reminder.subject.startswith("Session reminder")


# --- bookbot serve ------------------------------------------------------------------------------
async def test_bookbot_serve_answers_join_links_with_jitsi_rooms(
    pg: Factory, unused_tcp_port: int
) -> None:
    world = await make_world(pg)
    session_id = await book(pg, world)
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port, worker=False)
    running = asyncio.create_task(
        serve(SETTINGS, pg, [], None, server, stop, clock=lambda: FRIDAY_10)
    )
    base = f"http://127.0.0.1:{unused_tcp_port}"
    link = join_url(base, SECRET, session_id, world.student.id, END)
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(200):
                try:
                    async with client.get(link, allow_redirects=False) as response:
                        status, room = response.status, response.headers.get("Location")
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("bookbot serve did not start")
            assert status == 303 and room is not None
            assert room.startswith(f"{SETTINGS.jitsi_base_url}/Tutoring-{session_id}-")
            async with client.get(f"{base}{JOIN_PATH}nonsense") as response:
                assert response.status == 404 and "Not found" in await response.text()
        async with pg() as session:
            stored = await session.scalar(select(Session.video_url).where(Session.id == session_id))
        assert stored == room
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
