"""A cancellation says who cancelled and why: stored with the session, quoted in the other
person's chat notice and in both calendar-CANCEL e-mails (the worker's Dispatcher, on PostgreSQL,
with recording chat and e-mail senders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.booking import Booked, BookingRequest, book_session
from engine.chat.text import CANCEL_REASON_MAX_CHARS
from engine.followup import manage
from engine.followup.dispatch import Dispatcher
from engine.followup.notify import EmailContent
from engine.followup.reminders import Worker, WorkerSettings
from engine.followup.senders import OutMessage
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.jobs import Job
from storage.models import ReminderJob, Session
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.factories import NOW, World, add_user, make_world

Factory = async_sessionmaker[AsyncSession]
FRIDAY_10 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CUTOFF = timedelta(hours=2)
PLATFORM = "test"


class Chats:
    platform = PLATFORM

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, message: OutMessage) -> None:
        self.sent.append((chat_id, message.text))


class Mailbox:
    def __init__(self) -> None:
        self.sent: dict[str, EmailContent] = {}

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        self.sent[email.to_email] = email
        return idempotency_key


async def booked_world(db: Factory) -> tuple[World, int]:
    """Sam booked Ada for Friday 10:00; both linked a chat; the invites already went out."""
    world = await make_world(db)
    async with db() as session, session.begin():
        repo = Repo(session)
        for user in (world.student, world.teachers[0]):
            await repo.link_identity(PLATFORM, f"u{user.id}", user.id, f"chat-{user.id}")
        outcome = await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                world.teachers[0].id,
                FRIDAY_10,
                FRIDAY_10 + timedelta(hours=1),
                True,
                None,
                "test",
            ),
            reminder_offsets=[],
            now=NOW,
        )
        assert isinstance(outcome, Booked)
        await session.execute(ReminderJob.__table__.delete())
    return world, outcome.session_id


async def deliver(db: Factory) -> tuple[Chats, Mailbox]:
    chats, mailbox = Chats(), Mailbox()
    dispatcher = Dispatcher(db, Settings(), [chats], mailbox, JitsiProvider())
    worker = Worker(db, dispatcher, WorkerSettings(), lambda: NOW + timedelta(hours=1))
    while await worker.run_once():
        pass
    return chats, mailbox


async def test_the_reason_is_stored_and_quoted_in_the_other_persons_notice_and_both_emails(
    pg: Factory,
) -> None:
    world, session_id = await booked_world(pg)
    ada = world.teachers[0]
    done = await manage.cancel(
        pg, session_id, world.student.id, NOW, CUTOFF, reason="  Exam <moved>\x00 to Friday \n"
    )
    assert isinstance(done, manage.Cancelled)
    async with pg() as session:
        stored = await session.get(Session, session_id)
        assert stored is not None
        assert (stored.cancelled_by, stored.cancel_reason) == (
            world.student.id,
            "Exam <moved> to Friday",
        )

    chats, mailbox = await deliver(pg)
    ((chat, notice),) = chats.sent  # only the other person is told in chat
    assert chat == f"chat-{ada.id}"
    assert notice.startswith("❌ Sam Student cancelled the Calculus I session on ")
    assert notice.endswith("\nReason: Exam <moved> to Friday")
    for email in mailbox.sent.values():
        assert "\nReason:           Exam <moved> to Friday\n" in email.text
        assert "Exam &lt;moved&gt; to Friday" in email.html and "<moved>" not in email.html
    assert "\nCancelled by:     Sam Student\n" in mailbox.sent[ada.email or ""].text
    assert "\nCancelled by:     You\n" in mailbox.sent[world.student.email or ""].text


async def test_a_cancellation_without_a_reason_mentions_none(pg: Factory) -> None:
    world, session_id = await booked_world(pg)
    done = await manage.cancel(pg, session_id, world.teachers[0].id, NOW, CUTOFF, reason="  ")
    assert isinstance(done, manage.Cancelled)
    chats, mailbox = await deliver(pg)
    ((chat, notice),) = chats.sent
    assert chat == f"chat-{world.student.id}"
    assert notice.startswith("❌ Ada Lovelace cancelled the Calculus I session on ")
    assert "Reason" not in notice
    assert len(mailbox.sent) == 2
    assert all("Reason" not in e.text and "Reason" not in e.html for e in mailbox.sent.values())


async def test_a_reason_over_the_limit_is_refused_and_cancels_nothing(pg: Factory) -> None:
    world, session_id = await booked_world(pg)
    with pytest.raises(ValueError):
        await manage.cancel(
            pg,
            session_id,
            world.student.id,
            NOW,
            CUTOFF,
            reason="x" * (CANCEL_REASON_MAX_CHARS + 1),
        )
    async with pg() as session:
        stored = await session.get(Session, session_id)
        assert stored is not None and stored.status == "scheduled"
        assert (await session.scalars(select(ReminderJob))).all() == []


async def test_someone_cancelling_for_the_student_is_named_as_the_canceller(pg: Factory) -> None:
    """A coordinator acting for the student: both people read the coordinator's name."""
    world, session_id = await booked_world(pg)
    ada = world.teachers[0]
    async with pg() as session, session.begin():
        coordinator = await add_user(session, "Casey Coordinator")
        repo = Repo(session)
        booked = await repo.session_for_update(session_id)
        assert booked is not None
        await repo.cancel_session(booked.id, by=coordinator.id, at=NOW, reason="Student is ill")
        repo.add_job(session_id, Job.cancelled_chat(ada.id), NOW)
        for person in (world.student.id, ada.id):
            repo.add_job(session_id, Job.cancelled_email(person), NOW)

    chats, mailbox = await deliver(pg)
    ((_, notice),) = chats.sent
    assert notice.startswith("❌ Casey Coordinator cancelled the Calculus I session on ")
    assert notice.endswith("\nReason: Student is ill")
    sam_copy = mailbox.sent[world.student.email or ""]
    assert "Casey Coordinator cancelled your session with Ada Lovelace." in sam_copy.text
    assert "\nCancelled by:     Casey Coordinator\n" in sam_copy.text
    ada_copy = mailbox.sent[ada.email or ""]
    assert "Casey Coordinator cancelled your session with Sam Student." in ada_copy.text
