"""Random presses on session buttons (forged, stale, other people's) through ConversationService:
the session dialogues keep their invariants whatever arrives, on a real database (SQLite here,
a fresh copy of one migrated file per example, so hypothesis can try many).

- A scheduled session becomes cancelled only by "Yes, cancel it" from its student or its ST.
- A refused press is a toast: nothing saved, the presser's wizard keeps its nonce.
- A session dialogue never moves the presser's wizard (only reschedule / schedule now start it).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.booking import Booked, BookingRequest, book_session
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.chat.screens import Placement
from engine.followup.manage import OPS, manage_data
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.migrate import upgrade
from storage.models import Conversation, Session
from storage.uow import UnitOfWork
from tests.factories import NOW, add_user, enroll, make_world

T = TypeVar("T")
_TEMPLATE: dict[str, Path] = {}


def run(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _migrated_template() -> Path:
    if "db" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="bookbot-props-"))
        engine = make_engine(f"sqlite:///{folder / 'template.db'}")
        await upgrade(engine)
        await engine.dispose()
        _TEMPLATE["db"] = folder / "template.db"
    return _TEMPLATE["db"]


async def scenario(data: st.DataObject) -> None:
    template = await _migrated_template()
    folder = Path(tempfile.mkdtemp(prefix="bookbot-props-"))
    try:
        shutil.copy(template, folder / "chat.db")
        engine = make_engine(f"sqlite:///{folder / 'chat.db'}")
        try:
            await _play(data, make_sessionmaker(engine))
        finally:
            await engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _play(data: st.DataObject, db: Any) -> None:
    world = await make_world(db)
    async with db() as session, session.begin():
        other = await add_user(session, "Olive Other", "UTC", "en")
        await enroll(session, other, world.course)
    sessions = []
    for student, teacher, hour in (
        (world.student.id, world.teachers[0].id, 10),
        (other.id, world.teachers[1].id, 11),
        (world.student.id, world.teachers[1].id, 14),
    ):
        start = NOW.replace(day=27, hour=hour)
        async with db() as session, session.begin():
            booked = await book_session(
                UnitOfWork.over(session),
                BookingRequest(
                    world.course.id,
                    student,
                    teacher,
                    start,
                    start + timedelta(hours=1),
                    True,
                    None,
                    "test",
                ),
                reminder_offsets=[],
                now=NOW,
            )
        assert isinstance(booked, Booked)
        sessions.append(booked.session_id)
    people = [world.student.id, other.id, world.teachers[0].id, world.teachers[1].id]
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    targets = [*sessions, world.course.id, 0, 999_999_999]
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        user = data.draw(st.sampled_from(people), label="presser")
        op = data.draw(st.sampled_from(sorted(OPS)), label="op")
        target = data.draw(st.sampled_from(targets), label="target")
        chat = f"chat-{user}"
        before = await _snapshot(db, chat)
        answer = await service.handle(
            platform="test",
            chat_id=chat,
            user_id=user,
            event=flow.Press(manage_data(op, target)),
        )
        after = await _snapshot(db, chat)
        assert answer is not None
        _check(answer, op, target, user, before, after, world)
        if data.draw(st.booleans(), label="wizard in between"):
            await service.handle(
                platform="test", chat_id=chat, user_id=user, event=flow.MySessions()
            )


async def _snapshot(db: Any, chat: str) -> tuple[dict[int, tuple[str, int | None]], int]:
    async with db() as session:
        rows = await session.execute(select(Session.id, Session.status, Session.cancelled_by))
        statuses = {row[0]: (row[1], row[2]) for row in rows}
        version = await session.scalar(
            select(Conversation.version).where(Conversation.chat_id == chat)
        )
    return statuses, version or 0


def _check(
    answer: Any,
    op: str,
    target: int,
    user: int,
    before: tuple[dict[int, tuple[str, int | None]], int],
    after: tuple[dict[int, tuple[str, int | None]], int],
    world: Any,
) -> None:
    (was, nonce_before), (now, nonce_after) = before, after
    changed = {i for i in now if now[i] != was.get(i)}
    event("a session was cancelled" if changed else f"answer: {answer.step}")
    if changed:
        # Only "Yes, cancel it" changes a session, only its own, and only by a participant.
        assert OPS[op[0]] == "cancel" and changed == {target}
        assert was[target][0] == "scheduled" and now[target] == ("cancelled", user)
    if answer.unchanged:
        assert answer.toast and not answer.more
        assert nonce_after == nonce_before  # the wizard's buttons stay valid
    if OPS[op[0]] in ("reschedule", "now") and not answer.unchanged:
        assert answer.placement is Placement.WIZARD  # the wizard starts
    elif not answer.unchanged:
        assert answer.placement is not Placement.WIZARD
        assert nonce_after == nonce_before  # a session dialogue leaves the wizard alone
    if OPS[op[0]] == "ask_cancel" and not answer.unchanged:
        assert [b.payload for row in answer.buttons for b in row] == [
            manage_data("y", target),
            manage_data("k", target),
        ]
    if answer.unchanged and answer.toast == m.EXPIRED:
        assert not changed


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_session_presses_keep_every_invariant(data: st.DataObject) -> None:
    run(scenario(data))
