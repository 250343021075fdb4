"""The Slack app end to end: the real slack-bolt AsyncApp behind aiohttp, the real slack_sdk
client against the fake Slack Web API, real PostgreSQL. A test acts as a staff member sending
signed slash commands and clicking buttons built from the messages the app really sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.slack.app import build_slack_app, slack_routes
from bots.slack.settings import SlackSettings
from engine.chat import messages as m
from engine.settings import Settings
from storage.models import ChatIdentity
from storage.uow import UnitsLike
from tests.factories import NOW, World, make_world
from tests.fake_slack import FakeSlack, Message
from tests.slack_requests import SignOptions, block_actions, slash_command
from tests.test_session_dialogues import _book, _statuses

Factory = async_sessionmaker[AsyncSession]
SECRET = "slack-signing-secret-for-tests"
SIGNED = SignOptions()
ADA = "U0ADA"


@dataclass
class Slack:
    fake: FakeSlack
    url: str
    http: aiohttp.ClientSession

    async def command(
        self,
        user: str,
        command: str,
        options: SignOptions = SIGNED,
        trigger: str | None = None,
        text: str = "",
    ) -> int:
        request = slash_command(
            SECRET,
            command=command,
            text=text,
            user_id=user,
            trigger_id=trigger or self.fake.trigger_id(),
            response_url=self.fake.response_url(),
            options=options,
        )
        status, _ = await request.post(self.http, self.url)
        return status

    async def click(self, user: str, message: Message, label: str) -> int:
        payload = message.to_api()
        action_id = next(
            element["action_id"]
            for block in payload["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
            if element["text"]["text"] == label
        )
        request = block_actions(
            SECRET,
            user_id=user,
            trigger_id=self.fake.trigger_id(),
            action_id=action_id,
            message=payload,
            channel_id=message.channel,
            response_url=self.fake.response_url(),
        )
        status, _ = await request.post(self.http, self.url)
        return status


@asynccontextmanager
async def running_app(units: UnitsLike) -> AsyncIterator[Slack]:
    """The bolt app at /slack/events on 127.0.0.1, over `units`, talking to a fresh fake Slack."""
    async with FakeSlack() as fake:
        settings = SlackSettings(bot_token=fake.token, signing_secret=SECRET, api_url=fake.base_url)
        app = build_slack_app(Settings(), settings, units, clock=lambda: NOW)
        server = web.Application()
        server.add_routes(slack_routes(app))
        runner = web.AppRunner(server, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as http:
                yield Slack(fake, f"http://127.0.0.1:{port}/slack/events", http)
        finally:
            await runner.cleanup()


@pytest.fixture
async def slack(pg: Factory) -> AsyncIterator[Slack]:
    async with running_app(pg) as running:
        yield running


async def _ada(slack: Slack, world: World) -> None:
    """Ada, the world's first ST, in Slack with the address the platform knows."""
    slack.fake.add_user(ADA, "ada", email=world.teachers[0].email, tz="UTC")


async def test_an_st_matched_by_verified_email_lists_and_cancels_a_session(
    slack: Slack, pg: Factory
) -> None:
    world = await make_world(pg)
    await _ada(slack, world)
    await _book(pg, world)
    assert await slack.command(ADA, "/mysessions") == 200
    dm = slack.fake.dm(ADA).id
    entry = slack.fake.last_message(dm)
    assert "you teach Calculus I to Sam Student" in entry.text
    assert await slack.click(ADA, entry, m.CANCEL_SESSION) == 200
    question = slack.fake.last_message(dm)
    assert question.ts == entry.ts and "Cancel your Calculus I session" in question.text
    assert await slack.click(ADA, question, m.YES_CANCEL) == 200
    assert "is cancelled. Sam Student has been told." in slack.fake.last_message(dm).text
    assert await _statuses(pg) == ["cancelled"]
    async with pg() as session:
        (linked,) = (await session.scalars(select(ChatIdentity))).all()
    assert (linked.platform, linked.external_id, linked.user_id) == (
        "slack",
        ADA,
        world.teachers[0].id,
    )


async def test_the_dm_is_opened_once_not_on_every_request(slack: Slack, pg: Factory) -> None:
    """`conversations.open` is Tier 3 (50 a minute): opened per request, it queued presses for
    seconds under load. A DM's id never changes, so each process opens it once."""
    world = await make_world(pg)
    await _ada(slack, world)
    for _ in range(3):
        assert await slack.command(ADA, "/mysessions") == 200
    assert len(slack.fake.calls_to("conversations.open")) == 1
    assert len(slack.fake.messages(slack.fake.dm(ADA).id)) == 3


async def test_an_unknown_or_unverified_address_gets_one_clear_sentence(
    slack: Slack, pg: Factory
) -> None:
    world = await make_world(pg)
    slack.fake.add_user("U0NEW", "newcomer", email="nobody@example.edu")
    slack.fake.add_user("U0UNV", "unverified", email=world.teachers[0].email, email_verified=False)
    for user in ("U0NEW", "U0UNV"):
        assert await slack.command(user, "/mysessions") == 200
    answers = [body["text"] for bodies in slack.fake.responses.values() for body in bodies]
    assert answers == [m.NOT_MATCHED, m.NOT_MATCHED]
    async with pg() as session:
        assert (await session.scalars(select(ChatIdentity))).all() == []


@pytest.mark.parametrize("spoiled", [SignOptions(wrong_signature=True), SignOptions(stale=True)])
async def test_unsigned_or_stale_requests_get_401_and_change_nothing(
    slack: Slack, pg: Factory, spoiled: SignOptions
) -> None:
    world = await make_world(pg)
    await _ada(slack, world)
    assert await slack.command(ADA, "/mysessions", spoiled) == 401
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_a_repeated_delivery_is_a_no_op(slack: Slack, pg: Factory) -> None:
    world = await make_world(pg)
    await _ada(slack, world)
    trigger = slack.fake.trigger_id()
    assert await slack.command(ADA, "/mysessions", trigger=trigger) == 200
    sent = len(slack.fake.calls_to("chat.postMessage"))
    again = SignOptions(retry_num=1)
    assert await slack.command(ADA, "/mysessions", again, trigger=trigger) == 200
    assert len(slack.fake.calls_to("chat.postMessage")) == sent


async def test_app_home_shows_the_sts_day_week_hours_and_days_off(
    slack: Slack, pg: Factory
) -> None:
    from datetime import date, timedelta

    from sqlalchemy import update

    from storage.models import AvailabilityOverride, Session
    from tests.slack_requests import app_home_opened

    world = await make_world(pg)
    await _ada(slack, world)
    session_id = await _book(pg, world)  # Friday 27 November, 10:00 UTC
    async with pg() as session, session.begin():
        await session.execute(
            update(Session).where(Session.id == session_id).values(note="Chapter <3> & limits")
        )
        session.add(
            AvailabilityOverride(
                user_id=world.teachers[0].id, date=date(2026, 12, 4), timezone="UTC"
            )
        )
    home_clock = NOW + timedelta(days=2)  # Friday morning: the session is today
    slack_app = build_slack_app(
        Settings(),
        SlackSettings(
            bot_token=slack.fake.token, signing_secret=SECRET, api_url=slack.fake.base_url
        ),
        pg,
        clock=lambda: home_clock,
    )
    server = web.Application()
    server.add_routes(slack_routes(slack_app))
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        opened = app_home_opened(
            SECRET, user_id=ADA, channel_id=slack.fake.dm(ADA).id, event_id="Ev0HOME1"
        )
        status, _ = await opened.post(slack.http, url)
        assert status == 200
        await slack.fake.wait_until(lambda: ADA in slack.fake.home_views)
        home = json.dumps(slack.fake.home_views[ADA], ensure_ascii=False).replace("\u202f", " ")
        for shown in (
            m.HOME_TODAY,
            "10:00 AM: Calculus I with Sam Student",
            "Chapter &lt;3&gt; &amp; limits",
            m.HOME_WEEK,
            m.HOME_HOURS,
            "Monday: 9:00 AM",
            m.HOME_DAYS_OFF,
            "December 4",
        ):
            assert shown in home, shown
        publishes = len(slack.fake.calls_to("views.publish"))
        again = app_home_opened(
            SECRET,
            user_id=ADA,
            channel_id=slack.fake.dm(ADA).id,
            event_id="Ev0HOME1",
            options=SignOptions(retry_num=1),
        )
        assert (await again.post(slack.http, url))[0] == 200
        # A redelivery publishes the same home again (it changes nothing, and repairs a
        # publish that failed the first time).
        calls = slack.fake.calls_to("views.publish")
        assert len(calls) == publishes + 1
        assert calls[-1].params["view"] == calls[-2].params["view"]
    finally:
        await runner.cleanup()


async def test_away_in_slack_asks_then_cancels_and_the_student_can_book_again(
    slack: Slack, pg: Factory
) -> None:
    """The same dialogue through the Slack app; the student's notice carries "Book another time"."""
    from datetime import timedelta

    from engine.followup.dispatch import Dispatcher
    from engine.followup.reminders import Sent
    from engine.followup.video import JitsiProvider
    from engine.settings import Settings
    from storage.outbox import ClaimedJob
    from storage.repositories import Repo
    from tests.factories import NOW
    from tests.test_slack_sender import sender_for

    bot = slack
    world = await make_world(pg)
    await _ada(bot, world)
    session_id = await _book(pg, world)
    assert await bot.command(ADA, "/away", text="27 Nov") == 200
    dm = bot.fake.dm(ADA).id
    question = bot.fake.last_message(dm)
    assert "These sessions are booked then" in question.text
    assert await bot.click(ADA, question, m.AWAY_CANCEL) == 200
    assert "Cancelled 1 session" in bot.fake.last_message(dm).text
    # The student, on Slack too, is told with a button that reopens the wizard.
    student_fake: FakeSlack = bot.fake
    student_fake.add_user("U0SAM", "sam")
    sam_dm = student_fake.dm("U0SAM").id
    async with pg() as session, session.begin():
        await Repo(session).link_identity("slack", "U0SAM", world.student.id, sam_dm)
    dispatcher = Dispatcher(
        pg, Settings(), [sender_for(student_fake)], None, JitsiProvider("https://m.example")
    )
    job = ClaimedJob(
        id=0,
        session_id=session_id,
        kind=f"cancelled:chat:{world.student.id}",
        due_at=NOW,
        attempts=1,
    )
    assert await dispatcher(job, NOW + timedelta(minutes=1)) == Sent()
    notice = student_fake.last_message(sam_dm)
    assert "Reason: " + m.AWAY_REASON in notice.text
    buttons = [
        e["text"]["text"] for b in notice.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == [m.BOOK_ANOTHER_TIME]
