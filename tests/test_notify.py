"""Where notices go: one chat per person, on the platform chosen with /notify, else the one used
last, else the one linked first. The rule alone (exhaustively, with hypothesis), the chat that
records "last used" on every event, the /notify dialogue, and the worker sending each notice
once through two recording senders. Storage on PostgreSQL and SQLite (the `db` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots import console
from engine.booking import Booked, BookingRequest, book_session
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.chat.screens import Screen
from engine.followup.dispatch import Dispatcher
from engine.followup.recipient import notice_order
from engine.followup.reminders import Sent, Skip
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.demo_data import load_demo
from storage.models import User
from storage.outbox import ClaimedJob
from storage.records import IdentityRecord
from storage.repositories import Repo
from storage.uow import UnitOfWork
from tests.factories import NOW, World, make_world
from tests.test_outbox import FakeTime
from tests.test_pacing import Recording, pacers
from tests.test_reminders import FRIDAY_10
from tests.test_session_dialogues import Person

Factory = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def chat(platform: str, chat_id: str | None, used: int | None = None) -> IdentityRecord:
    at = None if used is None else T0 + timedelta(minutes=used)
    return IdentityRecord(platform, f"x-{chat_id}", chat_id, 1, at)


# --- the rule ----------------------------------------------------------------------------------
def test_the_chosen_platform_wins_over_the_one_used_last() -> None:
    chats = [chat("telegram", "1", used=5), chat("slack", "D1", used=1)]
    assert notice_order(chats, "slack")[0].platform == "slack"


def test_without_a_choice_the_chat_used_last_gets_the_notice() -> None:
    chats = [chat("telegram", "1", used=1), chat("slack", "D1", used=5)]
    assert [c.platform for c in notice_order(chats, None)] == ["slack", "telegram"]


def test_a_choice_of_a_platform_no_longer_linked_falls_back_to_the_chat_used_last() -> None:
    chats = [chat("telegram", "1", used=1), chat("slack", "D1", used=5)]
    assert notice_order(chats, "matrix")[0].platform == "slack"


def test_never_used_chats_go_in_the_order_they_were_linked_after_the_used_ones() -> None:
    chats = [chat("slack", "D1"), chat("telegram", "1"), chat("email", "e", used=0)]
    assert [c.platform for c in notice_order(chats, None)] == ["email", "slack", "telegram"]


def test_an_account_without_a_chat_to_write_to_is_never_chosen() -> None:
    assert notice_order([chat("slack", None, used=9)], "slack") == []


_PLATFORMS = st.sampled_from(["telegram", "slack", "console"])
_CHATS = st.lists(
    st.builds(
        chat,
        _PLATFORMS,
        st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=3)),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    max_size=6,
)


@given(_CHATS, st.one_of(st.none(), _PLATFORMS))
def test_the_first_chat_follows_the_rule_for_any_linked_chats(
    chats: list[IdentityRecord], preferred: str | None
) -> None:
    order = notice_order(chats, preferred)
    writable = [c for c in chats if c.chat_id]
    assert sorted(map(id, order)) == sorted(map(id, writable))  # each once, none invented
    if not writable:
        return
    first = order[0]
    on_preferred = [c for c in writable if c.platform == preferred]
    pool = on_preferred or writable
    used = [c.last_used_at for c in pool if c.last_used_at is not None]
    if on_preferred:
        assert first.platform == preferred
    if used:
        assert first.last_used_at == max(used)
    else:
        assert first is pool[0]  # never used: the earliest linked
    # The order is the rule applied again to what is left.
    rest = [c for c in chats if c is not first]
    assert order[1:] == notice_order(rest, preferred)


# --- storage -------------------------------------------------------------------------------------
async def test_identities_come_earliest_linked_first_and_record_when_they_were_used(
    db: Factory,
) -> None:
    world = await make_world(db)
    sam = world.student.id
    async with db() as session, session.begin():
        repo = Repo(session)
        await repo.link_identity("telegram", "11", sam, "11")
        await repo.link_identity("slack", "U1", sam, "D1")
    async with db() as session, session.begin():
        repo = Repo(session)
        await repo.touch_identity("slack", "D1", sam, NOW)
        await repo.touch_identity("slack", "D1", world.teachers[0].id, NOW + timedelta(hours=1))
        await repo.set_notify_platform(sam, "telegram")
    async with db() as session:
        repo = Repo(session)
        found = await repo.identities_of(sam)
        user = await repo.user(sam)
    assert [(i.platform, i.last_used_at) for i in found] == [("telegram", None), ("slack", NOW)]
    assert user is not None and user.notify_platform == "telegram" and not user.is_coordinator


async def test_the_demo_has_one_coordinator(db: Factory) -> None:
    async with db() as session, session.begin():
        await load_demo(session, datetime.now(UTC))
    async with db() as session:
        staff = (await session.scalars(select(User.name).where(User.is_coordinator))).all()
        record = await Repo(session).user(
            (await session.scalars(select(User.id).where(User.is_coordinator))).one()
        )
    assert staff == ["Dana Okafor"] and record is not None and record.is_coordinator


# --- the chat: last used, and /notify ----------------------------------------------------------
async def _linked_twice(db: Factory) -> World:
    world = await make_world(db)
    async with db() as session, session.begin():
        repo = Repo(session)
        await repo.link_identity("telegram", "11", world.student.id, "11")
        await repo.link_identity("slack", "U1", world.student.id, "D1")
    return world


async def _say(
    service: ConversationService, world: World, platform: str, chat_id: str, event: flow.ChatEvent
) -> Screen:
    screen = await service.handle(
        platform=platform, chat_id=chat_id, user_id=world.student.id, event=event
    )
    assert screen is not None
    return screen


async def test_every_chat_event_records_that_its_account_was_used(db: Factory) -> None:
    world = await _linked_twice(db)
    clock = iter([NOW, NOW + timedelta(minutes=5)])
    service = ConversationService(db, Settings(), clock=lambda: next(clock))
    await _say(service, world, "telegram", "11", flow.Start(source="telegram"))
    await _say(service, world, "slack", "D1", flow.Cancel())
    async with db() as session:
        used = {
            i.platform: i.last_used_at for i in await Repo(session).identities_of(world.student.id)
        }
    assert used == {"telegram": NOW, "slack": NOW + timedelta(minutes=5)}


async def test_last_used_is_written_at_most_once_a_minute_yet_never_falls_behind(
    db: Factory,
) -> None:
    """Telegram at 0 s, Slack at 30 s, Telegram again at 50 s: the third use is recorded though
    Telegram's was under a minute old, since Slack's is newer; a fourth within the minute is not
    written again (nothing would change where notices go)."""
    world = await _linked_twice(db)
    times = iter([NOW + timedelta(seconds=t) for t in (0, 30, 50, 55)])
    service = ConversationService(db, Settings(), clock=lambda: next(times))
    for platform, chat in (
        ("telegram", "11"),
        ("slack", "D1"),
        ("telegram", "11"),
        ("telegram", "11"),
    ):
        await _say(service, world, platform, chat, flow.Cancel())
    async with db() as session:
        used = {
            i.platform: i.last_used_at for i in await Repo(session).identities_of(world.student.id)
        }
    assert used == {"telegram": NOW + timedelta(seconds=50), "slack": NOW + timedelta(seconds=30)}


async def test_notify_offers_each_linked_platform_and_keeps_the_choice(db: Factory) -> None:
    world = await _linked_twice(db)
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    shown = await _say(service, world, "telegram", "11", flow.Notify())
    assert shown.title == m.NOTICES_GO_LAST_USED
    labels = [[(b.label, b.payload) for b in row] for row in shown.buttons]
    assert labels == [[("Send notices here", "N:telegram")], [("Send notices to Slack", "N:slack")]]

    chosen = await _say(service, world, "telegram", "11", flow.Press("N:slack"))
    assert chosen.title == m.NOTICES_NOW_GO_TO.format(platform="Slack")
    again = await _say(service, world, "slack", "D1", flow.Notify())
    assert again.title == m.NOTICES_GO_TO.format(platform="Slack")
    assert [row[0].label for row in again.buttons] == [
        "Send notices to Telegram",
        m.SEND_NOTICES_HERE,
    ]


async def test_a_forged_or_stale_notify_press_changes_nothing(db: Factory) -> None:
    world = await _linked_twice(db)
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    for data in ("N:matrix", "N:", "N:SLACK", "N:slack;drop"):
        answer = await _say(service, world, "telegram", "11", flow.Press(data))
        assert answer.title == m.NOTIFY_NOT_LINKED, data
    async with db() as session:
        user = await Repo(session).user(world.student.id)
    assert user is not None and user.notify_platform is None


async def test_the_terminal_chat_asks_notify_too(db: Factory) -> None:
    world = await _linked_twice(db)
    out: list[str] = []
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    steps = ["/notify", "#Send notices to Telegram", "/quit"]
    await console.run(service, world.student.id, "en", Person(steps, out), out.append)
    text = "\n".join(out)
    assert "/notify" in console.HELP
    assert m.NOTICES_GO_LAST_USED in text
    assert m.NOTICES_NOW_GO_TO.format(platform="Telegram") in text


async def test_notify_without_a_linked_chat_says_so(db: Factory) -> None:
    world = await make_world(db)
    service = ConversationService(db, Settings(), clock=lambda: NOW)
    shown = await _say(service, world, "console", "demo", flow.Notify())
    assert shown.title == m.NOTIFY_NOTHING_LINKED and shown.buttons == ()


# --- the worker: each notice once ----------------------------------------------------------------
async def _booked_st_on_two_platforms(db: Factory) -> tuple[World, int]:
    world = await make_world(db)
    ada = world.teachers[0].id
    async with db() as session, session.begin():
        repo = Repo(session)
        await repo.link_identity("telegram", "7003", ada, "7003")
        await repo.link_identity("slack", "U-ADA", ada, "D-ADA")
        outcome = await book_session(
            UnitOfWork.over(session),
            BookingRequest(
                world.course.id,
                world.student.id,
                ada,
                FRIDAY_10,
                FRIDAY_10 + timedelta(hours=1),
                True,
                None,
                "telegram",
            ),
            reminder_offsets=[timedelta(hours=1)],
            now=NOW,
        )
    assert isinstance(outcome, Booked)
    return world, outcome.session_id


async def test_an_st_on_two_platforms_gets_each_notice_once_where_they_want_it(
    db: Factory,
) -> None:
    world, session_id = await _booked_st_on_two_platforms(db)
    ada = world.teachers[0].id
    slack, telegram = Recording("slack"), Recording("telegram")
    settings, video, paced = (
        Settings(reminder_offsets_minutes=[60]),
        JitsiProvider("x"),
        pacers(FakeTime()),
    )
    dispatcher = Dispatcher(db, settings, [slack, telegram], None, video, paced)
    now = FRIDAY_10 - timedelta(minutes=30)

    def job(kind: str) -> ClaimedJob:
        return ClaimedJob(id=0, session_id=session_id, kind=kind, due_at=now, attempts=1)

    # Never used either: the account linked first.
    assert await dispatcher(job("teacher:booked"), now) == Sent()
    assert (telegram.sent, slack.sent) == (["7003"], [])
    # Used Slack last: the next notice goes there, and only there.
    async with db() as session, session.begin():
        await Repo(session).touch_identity("slack", "D-ADA", ada, NOW)
    assert await dispatcher(job("teacher:before_1h"), now) == Sent()
    assert (telegram.sent, slack.sent) == (["7003"], ["D-ADA"])
    # Chose Telegram with /notify: that wins over "used last".
    async with db() as session, session.begin():
        await Repo(session).set_notify_platform(ada, "telegram")
    assert await dispatcher(job("teacher:before_1h"), now) == Sent()
    assert (telegram.sent, slack.sent) == (["7003", "7003"], ["D-ADA"])
    # A worker without a Telegram sender: the next chat in the same order.
    slack_only = Dispatcher(db, settings, [slack], None, video, paced)
    assert await slack_only(job("teacher:before_1h"), now) == Sent()
    assert slack.sent == ["D-ADA", "D-ADA"]
    # No sender for any of the person's platforms: nothing to send.
    nobody = Dispatcher(db, settings, [Recording("matrix")], None, video, paced)
    assert await nobody(job("teacher:before_1h"), now) == Skip("no linked chat account")
