"""The Slack ChatSender with the real slack_sdk client against the fake Slack Web API: the
engine's notices arrive as DMs with their buttons, and Slack's failures become the worker's
retry, skip or wait (429 Retry-After)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.slack.sender import SlackSender
from engine.followup.dispatch import Dispatcher
from engine.followup.reminders import Sent
from engine.followup.senders import OutButton, OutMessage, SendError
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.outbox import ClaimedJob
from storage.repositories import Repo
from tests.factories import NOW, make_world
from tests.fake_slack import FakeSlack
from tests.test_session_dialogues import _book

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def sender_for(fake: FakeSlack, token: str | None = None) -> SlackSender:
    return SlackSender(AsyncWebClient(token=token or fake.token, base_url=fake.base_url))


async def test_a_notice_arrives_as_a_dm_with_its_buttons(slack: FakeSlack) -> None:
    slack.add_user("U1", "ada")
    dm = slack.dm("U1")
    message = OutMessage(
        "⏰ Reminder: <Calculus & Co> at 10:00",
        ((OutButton("Join", data="S:j:5"), OutButton("Open", url="https://meet.example.edu/x")),),
    )
    await sender_for(slack).send(dm.id, message)
    sent = slack.last_message(dm.id)
    assert sent.text == message.text  # the notification's plain fallback
    section, actions = sent.blocks[0], sent.blocks[1]
    assert "&lt;Calculus &amp; Co&gt;" in section["text"]["text"]  # mrkdwn escaped
    join, room = actions["elements"]
    assert (join["value"], room["url"]) == ("S:j:5", "https://meet.example.edu/x")


async def test_a_429_becomes_a_wait_of_retry_after(slack: FakeSlack) -> None:
    slack.add_user("U1", "ada")
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SendError) as caught:
        await sender_for(slack).send(slack.dm("U1").id, OutMessage("hi"))
    assert caught.value.retry_after == 7 and not caught.value.permanent


@pytest.mark.parametrize("error", ["channel_not_found", "account_inactive"])
async def test_a_gone_channel_or_person_is_permanent(slack: FakeSlack, error: str) -> None:
    slack.add_user("U1", "ada")
    slack.fail_next("chat.postMessage", status=200, error=error)
    with pytest.raises(SendError) as caught:
        await sender_for(slack).send(slack.dm("U1").id, OutMessage("hi"))
    assert caught.value.permanent and caught.value.retry_after is None


async def test_a_wrong_token_is_permanent_and_never_logged(slack: FakeSlack) -> None:
    with pytest.raises(SendError) as caught:
        await sender_for(slack, token="xoxb-wrong").send("D1", OutMessage("hi"))
    assert caught.value.permanent and "xoxb" not in str(caught.value)


async def test_the_st_gets_the_new_booking_notice_in_slack(slack: FakeSlack, pg: Factory) -> None:
    """An ST linked only on Slack: the outbox's notice goes out through the Slack sender."""
    world = await make_world(pg)
    slack.add_user("U-ADA", "ada")
    dm = slack.dm("U-ADA")
    async with pg() as session, session.begin():
        await Repo(session).link_identity("slack", "U-ADA", world.teachers[0].id, dm.id)
    session_id = await _book(pg, world)
    dispatcher = Dispatcher(
        pg, Settings(), [sender_for(slack)], None, JitsiProvider("https://meet.example.edu")
    )
    job = ClaimedJob(id=0, session_id=session_id, kind="teacher:booked", due_at=NOW, attempts=1)
    assert await dispatcher(job, NOW + timedelta(minutes=1)) == Sent()
    assert "New booking: Sam Student booked Calculus I" in slack.last_message(dm.id).text


async def test_slack_is_enabled_by_its_bot_token_and_checks_it_at_start(
    slack: FakeSlack, pg: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slack_sdk.errors import SlackApiError

    from bots.platforms import enabled_platforms, platform_secrets
    from bots.slack.settings import get_slack_settings

    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    try:
        for token, works in ((slack.token, True), ("xoxb-not-the-token", False)):
            monkeypatch.setenv("SLACK_BOT_TOKEN", token)
            get_slack_settings.cache_clear()
            (platform,) = enabled_platforms(Settings(), pg)
            assert platform.name == "slack" and not platform.routes
            assert token in platform_secrets()
            if works:
                await platform.start(True)
            else:
                with pytest.raises(SlackApiError):
                    await platform.start(True)
        monkeypatch.delenv("SLACK_BOT_TOKEN")
        get_slack_settings.cache_clear()
        assert enabled_platforms(Settings(), pg) == []
    finally:
        get_slack_settings.cache_clear()
