"""`/book` in Slack, end to end: the real bolt app and slack_sdk against the fake Slack, real
PostgreSQL. A coordinator picks the course and the student (the search is a block_suggestion),
then the same four steps in a modal that moves with `views.update` and its `hash`; the student
hears of it on Telegram through the outbox. Every click is built from the view the app drew."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.slack import blocks as sb
from bots.worker import build_worker
from engine.chat import messages as m
from storage.models import Session, User
from storage.repositories import Repo
from storage.uow import UnitOfWork, Units
from tests import test_slack_app
from tests.chat import plain
from tests.factories import NOW, World, add_user, enroll, make_world
from tests.fake_slack import FakeSlack
from tests.fake_telegram import FakeTelegram
from tests.slack_requests import app_home_opened, block_actions, block_suggestion, view_submission
from tests.test_slack_app import SECRET, Slack
from tests.test_telegram import SAM_TG, platforms_of, settings_for, start_bot

Factory = async_sessionmaker[AsyncSession]
JSONDict = dict[str, Any]
slack = test_slack_app.slack  # the fixture: the bolt app behind aiohttp, and the fake Slack
TRANSCRIPT = Path(__file__).parent.parent / "docs" / "slack-transcript.md"
CORA, DORA, ERIN = "U0CORA", "U0DORA", "U0ERIN"
NEW_YORK = "America/New_York"


class Staff:
    """One staff member in Slack, working in the newest modal the app opened for them."""

    def __init__(self, slack: Slack, user: str) -> None:
        self.slack, self.fake, self.user = slack, slack.fake, user
        self.view_id: str | None = None

    @property
    def name(self) -> str:
        return self.fake.users[self.user].real_name

    @property
    def view(self) -> JSONDict:
        assert self.view_id is not None, "no modal is open"
        return self.fake.views[self.view_id]

    def text(self) -> str:
        """Everything the modal shows, as plain text."""
        parts: list[str] = []
        for block in self.view["blocks"]:
            if "text" in block:
                parts.append(block["text"]["text"])
            for element in block.get("elements", []):
                if isinstance(element.get("text"), str):
                    parts.append(element["text"])
                elif "text" in element:
                    parts.append(element["text"]["text"])
        return plain("\n".join(parts))

    async def book(self, text: str = "") -> None:
        opened = len(self.fake.calls_to("views.open"))
        self.fake.note(f"{self.name}: /book {text}".rstrip())
        assert await self.slack.command(self.user, "/book", text=text) == 200
        calls = self.fake.calls_to("views.open")
        assert len(calls) == opened + 1, self.fake.method_log()
        assert calls[-1].response is not None and calls[-1].ok, calls[-1].response
        self.view_id = calls[-1].response["view"]["id"]

    def _action_id(self, label: str) -> str:
        for block in self.view["blocks"]:
            for element in [*block.get("elements", []), block.get("accessory") or {}]:
                if element.get("type") == "button" and plain(element["text"]["text"]) == label:
                    return str(element["action_id"])
        raise AssertionError(f"no button {label!r} in the modal:\n{self.text()}")

    async def _act(self, action_id: str, value: Any = None, view: JSONDict | None = None) -> int:
        request = block_actions(
            SECRET,
            user_id=self.user,
            trigger_id=self.fake.trigger_id(),
            action_id=action_id,
            value=value,
            view=view or self.view,
        )
        status, _ = await request.post(self.slack.http, self.slack.url)
        return status

    async def click(self, label: str, view: JSONDict | None = None) -> int:
        shown = view or self.view
        saved, self.view_id = self.view_id, shown["id"]
        action_id = self._action_id(label) if view is None else _find(view, label)
        self.view_id = saved
        self.fake.note(f"{self.name} clicks [{label}]" + (" on an older view" if view else ""))
        return await self._act(action_id, view=shown)

    async def pick_date(self, day: date) -> int:
        picker = next(
            e
            for b in self.view["blocks"]
            for e in b.get("elements", [])
            if e.get("type") == "datepicker"
        )
        self.fake.note(f"{self.name} picks {day.isoformat()} in the datepicker")
        return await self._act(picker["action_id"], day.isoformat())

    async def tick_reminders(self) -> int:
        self.fake.note(f"{self.name} clicks the reminders checkbox")
        return await self._act(sb.REMINDERS_ACTION)

    async def submit(self, values: dict[str, Any]) -> JSONDict:
        """Submit the modal; Slack applies an `update` answer to the modal, as here."""
        shown = {
            k: v.get("text", {}).get("text", v) if isinstance(v, dict) else v
            for k, v in values.items()
        }
        self.fake.note(f"{self.name} submits {shown}")
        request = view_submission(
            SECRET,
            user_id=self.user,
            view=self.view,
            values=values,
            trigger_id=self.fake.trigger_id(),
        )
        status, body = await request.post(self.slack.http, self.slack.url)
        assert status == 200, body
        answer: JSONDict = json.loads(body) if body else {}
        if answer.get("response_action") == "update":
            assert self.view_id is not None
            self.fake.answer_with_view(self.view_id, answer["view"])
        return answer

    async def search(self, query: str) -> list[JSONDict]:
        self.fake.note(f"{self.name} types “{query}” in the student search")
        request = block_suggestion(
            SECRET, user_id=self.user, view=self.view, action_id=sb.STUDENT_ACTION, query=query
        )
        status, body = await request.post(self.slack.http, self.slack.url)
        assert status == 200
        options: list[JSONDict] = json.loads(body)["options"]
        return options


def _find(view: JSONDict, label: str) -> str:
    for block in view["blocks"]:
        for element in block.get("elements", []):
            if element.get("type") == "button" and plain(element["text"]["text"]) == label:
                return str(element["action_id"])
    raise AssertionError(f"no button {label!r}")


async def _coordinator(db: Factory, fake: FakeSlack, slack_id: str, name: str) -> int:
    async with db() as session, session.begin():
        person = await add_user(session, name)
        person.is_coordinator = True
        fake.add_user(slack_id, name.split()[0].lower(), email=person.email, tz=NEW_YORK)
        return person.id


async def _for_sam(staff: Staff, world: World) -> None:
    """/book → the course and Sam, found by typing: the wizard's first step for Sam."""
    await staff.book()
    assert staff.view["callback_id"] == sb.FOR_CALLBACK
    (sam,) = await staff.search("sam")
    assert sam["text"]["text"] == "Sam Student (sam.student@example.edu)"
    answer = await staff.submit({sb.COURSE_ACTION: str(world.course.id), sb.STUDENT_ACTION: sam})
    assert answer["response_action"] == "update"
    assert m.BOOKING_FOR.format(name="Sam Student") in staff.text()


async def _to_confirm(staff: Staff) -> None:
    assert await staff.click("Book with Ada Lovelace") == 200
    assert await staff.pick_date(date(2026, 11, 27)) == 200
    # Ada's 10:00 UTC is 5:00 AM in New York (EST), the coordinator's Slack zone.
    assert "Times shown in America/New_York" in staff.text()
    assert await staff.click("5:00 AM") == 200
    assert m.STEP_CONFIRM in staff.text()


async def _cora_at_confirm(slack: Slack, pg: Factory) -> Staff:
    """Cora, a coordinator, at the confirm step of a booking for Sam."""
    world = await make_world(pg)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    await _for_sam(staff, world)
    await _to_confirm(staff)
    return staff


async def test_a_coordinator_books_for_a_student_who_hears_of_it_on_telegram(
    slack: Slack, pg: Factory
) -> None:
    world = await make_world(pg)
    cora = await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    async with pg() as session, session.begin():
        await Repo(session).link_identity("telegram", str(SAM_TG), world.student.id, str(SAM_TG))
    staff = Staff(slack, CORA)
    await _for_sam(staff, world)
    # The trigger was used before anything else: views.open is the app's first call (bolt
    # checks its token with auth.test once, before the first listener runs).
    calls = [c for c in slack.fake.method_log() if not c.startswith("auth.test")]
    assert calls[0] == "views.open:ok"
    await _to_confirm(staff)
    assert await staff.tick_reminders() == 200  # reminders off
    assert m.SUMMARY_REMINDERS.format(state=m.OFF) in staff.text()
    assert await staff.click(m.ADD_NOTE) == 200
    await staff.submit({sb.NOTE_ACTION: "Chapter 3, please"})
    assert "Chapter 3, please" in staff.text()
    updates_before = len(slack.fake.calls_to("views.update"))
    assert await staff.click(m.BOOK_SESSION) == 200
    shown = [c.params["view"] for c in slack.fake.calls_to("views.update")[updates_before:]]
    assert m.BOOKING_LOADING in json.dumps(shown[0], ensure_ascii=False)  # loading, then done
    assert m.SUCCESS_TITLE in staff.text()
    links = [
        e["text"]["text"] for b in staff.view["blocks"] for e in b.get("elements", []) if "url" in e
    ]
    assert {m.ADD_TO_GOOGLE, m.ADD_TO_OFFICE365, m.ADD_TO_OUTLOOK} <= set(links)
    # The .ics goes to the coordinator's DM by files_upload_v2 (three calls).
    (upload,) = [f for f in slack.fake.files.values() if f.completed]
    assert upload.filename.endswith(".ics") and upload.channels == [slack.fake.dm(CORA).id]
    async with pg() as session:
        booked = (await session.scalars(select(Session))).one()
    assert (booked.student_id, booked.created_by, booked.created_via) == (
        world.student.id,
        cora,
        "slack",
    )
    assert (booked.reminders, booked.note) == (False, "Chapter 3, please")

    async with FakeTelegram() as telegram:
        sam_tg = telegram.user(SAM_TG, "Sam")  # Sam has started the Telegram bot
        bot = await start_bot(telegram, pg)
        worker = build_worker(
            settings_for(telegram), pg, platforms_of(bot.app, telegram), lambda: NOW, email=None
        )
        try:
            while await worker.run_once():
                pass
        finally:
            await bot.app.shutdown()
        notice = sam_tg.last_message()
    transcript = slack.fake.transcript()
    TRANSCRIPT.write_text(
        "# A coordinator books for a student in Slack, as the fake Slack recorded it\n\n"
        "Generated by `tests/test_slack_booking.py::"
        "test_a_coordinator_books_for_a_student_who_hears_of_it_on_telegram` (the real "
        "slack-bolt app and slack_sdk client against `tests/fake_slack.py`). Then Sam, on "
        f"Telegram, gets:\n\n> {plain(notice.text or '')}\n\n```\n{plain(transcript)}\n```\n"
    )
    assert (notice.text or "").startswith(
        "Cora Coordinator booked a session of Calculus I for you with Ada Lovelace on "
    )
    assert notice.buttons() == [[m.JOIN, m.RESCHEDULE, m.CANCEL_SESSION]]


async def test_every_spec_error_shows_in_the_modal_in_its_words(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg, session_count=1)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    # Not enrolled in Organic Chemistry.
    await staff.book()
    (sam,) = await staff.search("sam")
    await staff.submit({sb.COURSE_ACTION: str(world.other_course.id), sb.STUDENT_ACTION: sam})
    assert m.NOT_ENROLLED in staff.text()
    # Neither a course nor a student: the form says so and stays.
    await staff.book()
    answer = await staff.submit({})
    assert answer == {
        "response_action": "errors",
        "errors": {sb.STUDENT_BLOCK: m.BOOK_FOR_PICK_BOTH},
    }
    # A day without free times, a past day, and one beyond the ST's horizon.
    async with pg() as session, session.begin():
        await Repo(session).set_day_overrides(world.teachers[0].id, [date(2026, 11, 27)], "UTC")
    await _for_sam(staff, world)
    await staff.click("Book with Ada Lovelace")
    await staff.pick_date(date(2026, 11, 27))
    assert "No free times on" in staff.text()
    await staff.pick_date(date(2026, 11, 20))
    assert "is in the past" in staff.text()
    await staff.pick_date(date(2027, 6, 1))
    assert "is too far ahead" in staff.text()
    # One session in the course, used up: "no sessions left", as the student would be told.
    await staff.pick_date(date(2026, 11, 26))
    await staff.click("5:00 AM")
    await staff.click(m.BOOK_SESSION)
    assert m.SUCCESS_TITLE in staff.text()
    await _for_sam(staff, world)
    assert "You have used all 1 sessions included in Calculus I" in staff.text()


async def test_a_stale_hash_shows_the_current_step_and_never_books_twice(
    slack: Slack, pg: Factory
) -> None:
    staff = await _cora_at_confirm(slack, pg)
    old_view = copy.deepcopy(staff.view)  # what the coordinator's screen still shows
    assert staff.view_id is not None
    slack.fake.change_view_elsewhere(staff.view_id)  # another click won at Slack's end
    assert await staff.click(m.BOOK_SESSION, view=old_view) == 200
    assert "views.update:hash_conflict" in slack.fake.method_log()
    assert m.SUCCESS_TITLE in staff.text()  # the current step, drawn without the stale hash
    # The same button again, from the old view: the engine says it expired; one booking.
    assert await staff.click(m.BOOK_SESSION, view=old_view) == 200
    assert m.SUCCESS_TITLE in staff.text()
    async with pg() as session:
        assert len((await session.scalars(select(Session))).all()) == 1


async def test_two_coordinators_race_for_one_slot_and_one_booking_is_made(
    slack: Slack, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        other = await add_user(session, "Sal Second")
        await enroll(session, other, world.course)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    await _coordinator(pg, slack.fake, DORA, "Dora Deputy")
    cora, dora = Staff(slack, CORA), Staff(slack, DORA)
    await _for_sam(cora, world)
    await dora.book()
    (sal,) = await dora.search("sal")
    await dora.submit({sb.COURSE_ACTION: str(world.course.id), sb.STUDENT_ACTION: sal})
    for staff in (cora, dora):
        await _to_confirm(staff)
    statuses = await asyncio.gather(cora.click(m.BOOK_SESSION), dora.click(m.BOOK_SESSION))
    assert statuses == [200, 200]
    async with pg() as session:
        assert len((await session.scalars(select(Session))).all()) == 1
    texts = [cora.text(), dora.text()]
    assert sum(m.SUCCESS_TITLE in t for t in texts) == 1
    assert sum(m.SLOT_TAKEN in t for t in texts) == 1


async def test_staff_who_are_students_book_for_themselves_without_the_form(
    slack: Slack, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        erin = await add_user(session, "Erin Enrolled")
        await enroll(session, erin, world.course)
        slack.fake.add_user(ERIN, "erin", email=erin.email, tz="UTC")
    staff = Staff(slack, ERIN)
    await staff.book()
    assert staff.view["callback_id"] == sb.CALLBACK_ID
    assert staff.text().startswith(f"*{m.STEP_CHOOSE_COURSE}*")
    await staff.click("Calculus I")
    assert m.BOOKING_FOR.format(name="Erin Enrolled") not in staff.text()
    assert "Book with Ada Lovelace" in staff.text()
    # Not a coordinator: the student search answers nothing, even to a forged request.
    forged = dict(staff.view, blocks=[sb.book_for_view([], "{}")["blocks"][2]])
    request = block_suggestion(
        SECRET, user_id=ERIN, view=forged, action_id=sb.STUDENT_ACTION, query="sam"
    )
    status, body = await request.post(slack.http, slack.url)
    assert (status, json.loads(body)) == (200, {"options": []})


async def test_a_coordinator_who_loses_the_role_cannot_finish(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg)
    cora = await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    await _for_sam(staff, world)
    async with pg() as session, session.begin():
        await session.execute(update(User).where(User.id == cora).values(is_coordinator=False))
    await staff.click("Book with Ada Lovelace")
    assert m.COORDINATORS_ONLY in staff.text()


async def test_an_unmatched_person_gets_one_sentence_in_the_modal(
    slack: Slack, pg: Factory
) -> None:
    await make_world(pg)
    slack.fake.add_user("U0NOBODY", "nobody", email="nobody@elsewhere.example")
    staff = Staff(slack, "U0NOBODY")
    await staff.book()
    assert staff.text() == plain(m.NOT_MATCHED)


async def test_a_redelivered_book_command_opens_nothing_more(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    trigger = slack.fake.trigger_id()
    assert await slack.command(CORA, "/book", trigger=trigger) == 200
    assert await slack.command(CORA, "/book", trigger=trigger) == 200
    opened = [c for c in slack.fake.calls_to("views.open") if c.ok]
    assert len(opened) == 1
    assert world is not None


async def test_a_429_from_slack_is_retried_after_retry_after(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    await _for_sam(staff, world)
    slack.fake.fail_next("views.update", status=429, retry_after=1)
    assert await staff.click("Book with Ada Lovelace") == 200
    log = slack.fake.method_log()
    assert log.index("views.update:ratelimited") < len(log) - 1
    assert log[-1] == "views.update:ok"
    assert any(
        e.get("type") == "datepicker" for b in staff.view["blocks"] for e in b.get("elements", [])
    )


@pytest.mark.parametrize("hours", [False, True])
async def test_time_off_from_app_home_answers_in_the_modal_and_refreshes_home(
    slack: Slack, pg: Factory, hours: bool
) -> None:
    world = await make_world(pg)
    ada = world.teachers[0]
    slack.fake.add_user("U0ADA", "ada", email=ada.email, tz="UTC")
    request = app_home_opened(SECRET, user_id="U0ADA", channel_id=slack.fake.dm("U0ADA").id)
    assert (await request.post(slack.http, slack.url))[0] == 200
    home = slack.fake.home_views["U0ADA"]
    request = block_actions(
        SECRET,
        user_id="U0ADA",
        trigger_id=slack.fake.trigger_id(),
        action_id=sb.AWAY_HOURS_ACTION if hours else sb.AWAY_DAYS_ACTION,
        view=home,
    )
    assert (await request.post(slack.http, slack.url))[0] == 200
    staff = Staff(slack, "U0ADA")
    staff.view_id = slack.fake.calls_to("views.open")[-1].response["view"]["id"]  # type: ignore[index]
    published = len(slack.fake.calls_to("views.publish"))
    if hours:
        values = {sb.HOURS_DAY: "2026-11-30", sb.HOURS_START: "10:00", sb.HOURS_END: "12:00"}
    else:
        values = {sb.AWAY_FIRST: "2026-11-30", sb.AWAY_LAST: "2026-12-01"}
    answer = await staff.submit(values)
    assert answer["response_action"] == "update"
    assert ("Special hours on" if hours else "Marked off") in staff.text()
    assert len(slack.fake.calls_to("views.publish")) == published + 1
    async with pg() as session:
        overrides = await Repo(session).overrides([ada.id], date(2026, 11, 30), date(2026, 12, 2))
    assert len(overrides) == (1 if hours else 2)


class Outage(Units):
    """The database, until `down`: then every unit of work fails as a refused connection."""

    down = False

    def __call__(self) -> UnitOfWork:
        if self.down:
            raise ConnectionRefusedError("the database is down")
        return super().__call__()


async def test_a_database_outage_gets_the_specs_words_and_the_step_stays(pg: Factory) -> None:
    world = await make_world(pg)
    units = Outage(pg)
    async with test_slack_app.running_app(units) as running:
        await _coordinator(pg, running.fake, CORA, "Cora Coordinator")
        staff = Staff(running, CORA)
        await _for_sam(staff, world)
        units.down = True
        assert await staff.click("Book with Ada Lovelace") == 200
        assert f"⚠️ {m.BOOKING_FAILED}" in staff.text()
        assert "Book with Ada Lovelace" in staff.text()  # the same step, its buttons good
        assert await running.command(CORA, "/mysessions") == 200
        ephemeral = running.fake.calls_to("chat.postEphemeral")[-1]
        assert ephemeral.params["text"] == m.BOOKING_FAILED
        units.down = False
        assert await staff.click("Book with Ada Lovelace") == 200
        assert "Step 2 of 4" in staff.text()


async def test_a_loading_view_slack_refuses_does_not_stop_the_booking(
    slack: Slack, pg: Factory
) -> None:
    staff = await _cora_at_confirm(slack, pg)
    slack.fake.fail_next("views.update", status=200, error="not_found")  # the modal was closed
    assert await staff.click(m.BOOK_SESSION) == 200
    async with pg() as session:
        assert len((await session.scalars(select(Session))).all()) == 1


async def test_a_double_click_on_book_session_books_exactly_once(slack: Slack, pg: Factory) -> None:
    staff = await _cora_at_confirm(slack, pg)
    shown = copy.deepcopy(staff.view)
    statuses = await asyncio.gather(
        staff.click(m.BOOK_SESSION, view=shown), staff.click(m.BOOK_SESSION, view=shown)
    )
    assert statuses == [200, 200]
    async with pg() as session:
        assert len((await session.scalars(select(Session))).all()) == 1
    assert m.SUCCESS_TITLE in staff.text()


async def test_a_note_typed_into_an_older_screen_is_not_read_as_something_else(
    slack: Slack, pg: Factory
) -> None:
    staff = await _cora_at_confirm(slack, pg)
    await staff.click(m.ADD_NOTE)
    note_view = copy.deepcopy(staff.view)
    await staff.click("‹ Back without changes")  # the wizard moves on, the old form is stale
    assert staff.view_id is not None
    slack.fake.views[staff.view_id] = note_view  # Slack still shows the note form somewhere
    answer = await staff.submit({sb.NOTE_ACTION: "next friday please"})
    assert answer["response_action"] == "update"
    assert m.EXPIRED in staff.text() and m.STEP_CONFIRM in staff.text()
    assert "next friday please" not in staff.text()


async def test_a_database_outage_after_the_modal_opened_says_so_in_it(pg: Factory) -> None:
    await make_world(pg)
    units = Outage(pg)
    async with test_slack_app.running_app(units) as running:
        await _coordinator(pg, running.fake, CORA, "Cora Coordinator")
        units.down = True
        staff = Staff(running, CORA)
        await staff.book()
        assert staff.text() == m.BOOKING_FAILED


async def test_a_coordinator_may_name_the_course_after_book(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    await staff.book("calculus-1")
    (course_block,) = [b for b in staff.view["blocks"] if b.get("block_id") == sb.COURSE_BLOCK]
    assert course_block["element"]["initial_option"]["value"] == str(world.course.id)
