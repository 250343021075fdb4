"""The dialogues about booked sessions run in the engine, so the terminal chat gets them with no
code of its own: /mysessions, cancel with its question, reschedule, schedule a saved session.
Also: no platform call while a transaction is open, and a crash between the loading state and
the booking is recovered by the next event. On PostgreSQL and SQLite (the `db` fixture)."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots import console
from engine.booking import Booked, BookingRequest, book_session
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.chat.screens import Screen
from engine.followup.manage import manage_data
from engine.settings import Settings
from storage.models import Session
from storage.uow import UnitOfWork
from tests.chat import Chat, plain
from tests.factories import NOW, World, make_world
from tests.test_flow import to_confirm

Factory = async_sessionmaker[AsyncSession]
_CHOICE = re.compile(r"^\s+(\d+)\) (.+?)(?: → .*)?$")


class Person(io.StringIO):
    """A terminal user who reads the screen before answering: each step is a line to type, or
    "#<label>" to type the number the last screen gave that label."""

    def __init__(self, steps: list[str], out: list[str]) -> None:
        super().__init__()
        self.steps, self.out = list(steps), out

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        if not self.steps:
            return ""
        step = self.steps.pop(0)
        if step.startswith("#"):
            step = self._number_of(step[1:])
        self.out.append(f"> {step}")
        return step + "\n"

    def _number_of(self, label: str) -> str:
        for block in reversed(self.out):
            for line in reversed(block.splitlines()):
                found = _CHOICE.match(plain(line))
                if found and found[2] == label:
                    return found[1]
        raise AssertionError(f"no choice {label!r} on screen:\n" + "\n".join(self.out[-3:]))


async def converse(db: Factory, world: World, steps: list[str]) -> str:
    out: list[str] = []
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    await console.run(service, world.student.id, "en", Person(steps, out), out.append)
    return plain("\n".join(out))


async def _book(db: Factory, world: World, start_hour: int = 10) -> int:
    async with db() as session, session.begin():
        start = NOW.replace(day=27, hour=start_hour)
        outcome = await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[0].id,
                start,
                start.replace(hour=start_hour + 1),
                True,
                None,
                "test",
            ),
            reminder_offsets=[],
            now=NOW,
        )
    assert isinstance(outcome, Booked)
    return outcome.session_id


async def _statuses(db: Factory) -> list[str]:
    async with db() as session:
        return list((await session.scalars(select(Session.status).order_by(Session.id))).all())


async def test_the_terminal_chat_lists_sessions_and_cancels_one_after_asking(db: Factory) -> None:
    world = await make_world(db)
    await _book(db, world)
    out = await converse(db, world, ["/mysessions", "#Cancel session", f"#{m.YES_CANCEL}", "/quit"])
    assert "== Your upcoming sessions ==" in out
    assert "Calculus I with Ada Lovelace" in out
    assert "Cancel your Calculus I session with Ada Lovelace" in out
    assert "is cancelled. Ada Lovelace has been told." in out
    assert await _statuses(db) == ["cancelled"]


async def test_keep_it_keeps_the_session(db: Factory) -> None:
    world = await make_world(db)
    await _book(db, world)
    out = await converse(db, world, ["/mysessions", "#Cancel session", f"#{m.KEEP_IT}"])
    assert m.KEPT in out
    assert await _statuses(db) == ["scheduled"]


async def test_the_terminal_chat_reschedules_to_another_slot(db: Factory) -> None:
    world = await make_world(db)
    await _book(db, world)
    steps = ["/mysessions", "#Reschedule", "#Fri, Nov 27", "#2:00 PM", "#Book Session", "/quit"]
    out = await converse(db, world, steps)
    assert "Step 2 of 4" in out and m.RESCHEDULED in out
    assert await _statuses(db) == ["cancelled", "scheduled"]


async def test_the_terminal_chat_schedules_a_saved_session(db: Factory) -> None:
    world = await make_world(db)
    steps = ["/book calculus-1", "#Schedule Later", "/mysessions", "#Schedule Calculus I"]
    steps += ["#Book with Ada Lovelace", "#Fri, Nov 27", "#10:00 AM", "#Book Session", "/quit"]
    out = await converse(db, world, steps)
    assert "not scheduled yet" in out and "Session Booked!" in out
    assert await _statuses(db) == ["scheduled"]  # the saved session itself was filled in


async def test_a_session_button_still_works_after_the_wizard_moved_on(db: Factory) -> None:
    """Session buttons are checked by who presses them and the session's state, not by the
    wizard's nonce: a reminder's Cancel works after the student used the wizard since."""
    world = await make_world(db)
    session_id = await _book(db, world)
    chat = Chat(db, world.student.id)
    await chat.start(course_id=world.course.id)
    await chat.press("Book with Ada Lovelace")
    question = await chat.send(flow.Press(manage_data("c", session_id)))
    assert question is not None and question.title.startswith("Cancel your Calculus I session")
    done = await chat.send(flow.Press(manage_data("y", session_id)))
    assert done is not None and "is cancelled" in done.title
    assert chat.screen.step == "choose_date"  # the wizard is where it was
    stranger = Chat(db, world.teachers[1].id, chat_id="chat-2")
    refused = await stranger.send(flow.Press(manage_data("c", session_id)))
    assert refused is not None and refused.unchanged and refused.toast == m.EXPIRED


async def test_join_too_early_is_an_alert_decided_by_the_engine(db: Factory) -> None:
    world = await make_world(db)
    session_id = await _book(db, world)
    answer = await Chat(db, world.student.id).send(flow.Press(manage_data("j", session_id)))
    assert answer is not None and answer.unchanged and answer.alert
    assert answer.toast is not None and "opens 10 minutes before" in answer.toast


async def test_no_transaction_is_open_while_the_loading_state_is_shown(pg: Factory) -> None:
    world = await make_world(pg)
    chat = Chat(pg, world.student.id)
    await to_confirm(chat, world)
    seen: list[str] = []

    async def probe(_: object) -> None:
        # The chat's row must be free: another connection can lock it without waiting.
        async with pg() as other, other.begin():
            await other.execute(text("SET LOCAL lock_timeout = '100ms'"))
            await other.execute(
                text("SELECT id FROM conversations WHERE chat_id = 'chat-1' FOR UPDATE NOWAIT")
            )
        seen.append("free")

    service = ConversationService(pg, Settings(), clock=lambda: NOW)
    screen = await service.handle(
        platform="test",
        chat_id="chat-1",
        user_id=world.student.id,
        event=flow.Press(chat.screen.data(chat.button("Book Session"))),
        on_loading=probe,
    )
    assert seen == ["free"]
    assert screen is not None and screen.step == "success"


@pytest.mark.parametrize("booked", [False, True])
async def test_a_crash_between_loading_and_booking_is_recovered_by_the_next_event(
    db: Factory, booked: bool
) -> None:
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)

    async def crash(_: object) -> None:
        # The process dies (a cancelled task, a kill): not an error the engine may swallow.
        raise asyncio.CancelledError("the process died after showing the loading state")

    with pytest.raises(asyncio.CancelledError):
        await ConversationService(db, Settings(), clock=lambda: NOW).handle(
            platform="test",
            chat_id="chat-1",
            user_id=world.student.id,
            event=flow.Press(chat.screen.data(chat.button("Book Session"))),
            on_loading=crash,
        )
    if booked:  # the booking had gone through (e.g. another process finished it)
        await _book(db, world)
    # Within the grace period a press is a double click on a booking under way.
    waiting = await chat.send(flow.Text("hello?"))
    assert waiting is not None and waiting.unchanged and waiting.notice == m.BOOKING_LOADING
    chat.now = NOW + flow.LOADING_GRACE
    recovered = await chat.type("hello?")
    if booked:
        assert recovered.step == "success"
    else:
        assert recovered.step == "confirm" and recovered.notice == m.BOOKING_INTERRUPTED
        again = await chat.press("Book Session")
        assert again.step == "success"


async def test_the_terminal_chat_unlinks_only_after_asking(db: Factory) -> None:
    """/unlink is an engine dialogue too: the terminal chat gets the same question."""
    from sqlalchemy import func

    from storage.models import ChatIdentity

    world = await make_world(db)
    async with db() as session, session.begin():
        session.add(
            ChatIdentity(
                platform="console", external_id="me", user_id=world.student.id, chat_id="demo"
            )
        )
    out = await converse(db, world, ["/unlink", f"#{m.KEEP_LINKED}", "/unlink", f"#{m.YES_UNLINK}"])
    assert m.UNLINK_CONFIRM.format(name="Sam Student") in out
    assert m.STAYS_LINKED.format(name="Sam Student") in out
    assert m.UNLINKED.format(name="Sam Student") in out
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(ChatIdentity)) == 0


async def test_a_failed_loading_screen_does_not_stop_the_booking(db: Factory) -> None:
    """The platform refused to draw "Booking your session…" (a closed modal, a 5xx): the
    booking goes on all the same."""
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)

    async def refused(_: object) -> None:
        raise RuntimeError("views.update: not_found")

    screen = await ConversationService(db, Settings(), clock=lambda: NOW).handle(
        platform="test",
        chat_id="chat-1",
        user_id=world.student.id,
        event=flow.Press(chat.screen.data(chat.button("Book Session"))),
        on_loading=refused,
    )
    assert screen is not None and screen.step == "success"


async def test_a_second_press_while_booking_waits_and_one_session_is_booked(db: Factory) -> None:
    """A double click on "Book Session": the second press lands between the loading state and
    the booking, and must neither book again nor undo the booking under way."""
    world = await make_world(db)
    chat = Chat(db, world.student.id)
    await to_confirm(chat, world)
    book = flow.Press(chat.screen.data(chat.button("Book Session")))
    second: list[object] = []
    service = ConversationService(db, Settings(), clock=lambda: NOW)

    async def click_again(_: object) -> None:
        second.append(
            await service.handle(
                platform="test", chat_id="chat-1", user_id=world.student.id, event=book
            )
        )

    first = await service.handle(
        platform="test",
        chat_id="chat-1",
        user_id=world.student.id,
        event=book,
        on_loading=click_again,
    )
    assert first is not None and first.step == "success"
    (answer,) = second
    assert isinstance(answer, Screen) and answer.unchanged and answer.notice == m.BOOKING_LOADING
    assert len(await _statuses(db)) == 1
