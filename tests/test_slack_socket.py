"""Socket Mode start-up against the fake Slack: the real bolt AsyncSocketModeHandler (slack_sdk's
aiohttp socket client) asks the fake's `apps.connections.open` for a WebSocket URL with the
app-level token, gets Slack's `hello`, acknowledges a pushed slash command envelope and runs the
same listener as over HTTP; then it closes cleanly. Real Slack cannot be reached from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.slack.settings import SlackSettings, get_slack_settings
from bots.slack.socket import TokenRefused, refusal, run_socket_mode, socket_mode_handler
from engine.settings import Settings
from tests.factories import NOW, make_world
from tests.fake_slack import TEAM_ID, FakeSlack
from tests.test_session_dialogues import _book

Factory = async_sessionmaker[AsyncSession]
ADA = "U0ADA"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


def socket_settings(fake: FakeSlack) -> SlackSettings:
    """No signing secret: Socket Mode does without one."""
    return SlackSettings(bot_token=fake.token, app_token=fake.app_token, api_url=fake.base_url)


def mysessions(fake: FakeSlack, user: str) -> dict[str, Any]:
    """A slash command's payload as Socket Mode carries it (the HTTP form's fields, as JSON)."""
    return {
        "team_id": TEAM_ID,
        "channel_id": fake.dm(user).id,
        "user_id": user,
        "command": "/mysessions",
        "text": "",
        "api_app_id": "A0BOOKBOT",
        "response_url": fake.response_url(),
        "trigger_id": fake.trigger_id(),
    }


async def test_socket_mode_connects_with_the_app_token_and_answers_a_slash_command(
    fake: FakeSlack, pg: Factory
) -> None:
    world = await make_world(pg)
    fake.add_user(ADA, "ada", email=world.teachers[0].email)
    await _book(pg, world)
    handler = socket_mode_handler(Settings(), socket_settings(fake), pg, clock=lambda: NOW)
    received: list[dict[str, Any]] = []

    async def seen(client: object, message: dict[str, Any], raw: str | None) -> None:
        received.append(message)

    handler.client.message_listeners.append(seen)
    try:
        await handler.connect_async()
        await fake.wait_until(lambda: any(m.get("type") == "hello" for m in received))
        (opened,) = fake.calls_to("apps.connections.open")
        assert opened.ok and opened.token == fake.app_token

        envelope = await fake.push_envelope("slash_commands", mysessions(fake, ADA))
        dm = fake.dm(ADA).id
        await fake.wait_until(lambda: bool(fake.acknowledgements(envelope)))
        assert fake.acknowledgements(envelope) == [{"envelope_id": envelope}]
        await fake.wait_until(lambda: bool(fake.messages(dm)))
        assert "you teach Calculus I to Sam Student" in fake.last_message(dm).text
        assert {c.token for c in fake.calls if c.method != "apps.connections.open"} == {fake.token}
    finally:
        await handler.close_async()
    await fake.wait_until(lambda: fake.socket_clients == 0)


async def test_run_socket_mode_stays_connected_until_told_to_stop(
    fake: FakeSlack, pg: Factory
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_socket_mode(Settings(), socket_settings(fake), pg, until=stop.wait)
    )
    try:
        await fake.wait_until(lambda: fake.socket_clients == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    await fake.wait_until(lambda: fake.socket_clients == 0)
    assert len(fake.calls_to("apps.connections.open")) == 1


@pytest.mark.parametrize("wrong", ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"])
async def test_a_token_slack_refuses_stops_start_up_with_a_sentence(
    fake: FakeSlack, pg: Factory, wrong: str
) -> None:
    slack = socket_settings(fake)
    if wrong == "SLACK_BOT_TOKEN":
        slack.bot_token = "xoxb-not-the-token"
    else:
        slack.app_token = "xapp-not-the-token"
    never = asyncio.Event()
    with pytest.raises(TokenRefused, match=f"Slack refused {wrong}: invalid_auth"):
        await asyncio.wait_for(run_socket_mode(Settings(), slack, pg, until=never.wait), 5)
    assert fake.socket_clients == 0


def test_socket_mode_needs_both_tokens_and_an_app_level_one() -> None:
    assert refusal(SlackSettings(bot_token="xoxb-1", app_token="xapp-1")) is None
    for missing, slack in (
        ("SLACK_BOT_TOKEN and SLACK_APP_TOKEN", SlackSettings()),
        ("SLACK_APP_TOKEN", SlackSettings(bot_token="xoxb-1")),
        ("SLACK_BOT_TOKEN", SlackSettings(app_token="xapp-1")),
    ):
        assert f"needs {missing} set" in (refusal(slack) or "")
    wrong_kind = refusal(SlackSettings(bot_token="xoxb-1", app_token="xoxb-1"))
    assert wrong_kind is not None and "xapp-" in wrong_kind


@pytest.mark.parametrize(
    "present", [{}, {"SLACK_BOT_TOKEN": "xoxb-1"}, {"SLACK_APP_TOKEN": "xapp-1"}]
)
def test_bookbot_slack_socket_without_a_token_exits_2_with_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], present: dict[str, str]
) -> None:
    from bots.launcher import main

    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in present.items():
        monkeypatch.setenv(name, value)
    get_slack_settings.cache_clear()
    try:
        assert main(["slack", "--socket"]) == 2
    finally:
        get_slack_settings.cache_clear()
    said = capsys.readouterr().err.strip()
    assert said.startswith("bookbot slack --socket needs SLACK_") and said.count(".") == 1
    assert "\n" not in said
