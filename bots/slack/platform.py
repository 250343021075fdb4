"""Slack as a `Platform`: the worker's notices reach staff as Slack DMs, and with a signing
secret the app answers at `/slack/events` (bots/slack/app.py). Start-up checks the token with
`auth.test`, as Telegram's does with `getMe`, so a wrong token stops `bookbot serve` at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform, PlatformProvider
from bots.slack.app import PLATFORM, build_slack_app, slack_routes
from bots.slack.client import make_client
from bots.slack.sender import SlackSender
from bots.slack.settings import SlackSettings, get_slack_settings
from engine.followup.senders import RateLimits
from engine.settings import Settings
from storage.uow import UnitsLike

LIMITS = RateLimits(per_second=10.0, per_chat_interval=1.0)
"""Slack: about one message a second per channel (chat.postMessage's special tier), bursts
across channels allowed; a 429 carries Retry-After, which the worker honours."""


def slack_platform(
    slack: SlackSettings,
    settings: Settings,
    units: UnitsLike,
    clock: Callable[[], datetime],
) -> Platform:
    """Sending with the bot token; with the signing secret too, the app at /slack/events."""
    assert slack.bot_token is not None
    client = make_client(slack)

    async def start(receive: bool) -> None:
        await client.auth_test()  # a wrong token fails here, at start-up

    routes = (
        slack_routes(build_slack_app(settings, slack, units, clock)) if slack.signing_secret else []
    )
    return Platform(
        name=PLATFORM,
        sender=SlackSender(client),
        limits=replace(LIMITS, per_second=slack.send_rate),
        routes=routes,
        start=start,
    )


def build(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
) -> Platform | None:
    """Enabled when SLACK_BOT_TOKEN is set."""
    slack = get_slack_settings()
    return slack_platform(slack, settings, factory, clock) if slack.bot_token else None


SLACK = PlatformProvider(build=build, secrets=lambda: get_slack_settings().secrets())
