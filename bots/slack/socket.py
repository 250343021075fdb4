"""`bookbot slack --socket`: the Slack app in Socket Mode, for development without a public URL.

The app opens a WebSocket to Slack (`apps.connections.open` with the app-level token, at
`SLACK_API_URL`) and Slack sends slash commands, clicks and events down it instead of POSTing
them to /slack/events; each envelope is acknowledged over the socket. The listeners are the
ones `build_slack_app` wires for HTTP, so both modes run the same code. No signing secret is
needed: the token-authenticated socket replaces the signature. Like `bookbot telegram
--polling`, no worker runs inside; run `bookbot worker` beside it for notices and reminders.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bots.slack.app import build_slack_app
from bots.slack.settings import SlackSettings
from engine.chat.conversation import utc_now
from engine.settings import Settings
from storage.uow import UnitsLike

log = logging.getLogger(__name__)

APP_TOKEN_PREFIX = "xapp-"


class TokenRefused(Exception):
    """Slack said no to a token at start-up; the message is the sentence to show."""


def refusal(slack: SlackSettings) -> str | None:
    """Why Socket Mode cannot start, in one sentence; None when it can."""
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", slack.bot_token),
            ("SLACK_APP_TOKEN", slack.app_token),
        )
        if not value
    ]
    if missing:
        return (
            f"bookbot slack --socket needs {' and '.join(missing)} set (SLACK_BOT_TOKEN: the "
            "bot token, xoxb-…; SLACK_APP_TOKEN: an app-level token, xapp-…, with "
            "connections:write, made on the app's Basic Information page)."
        )
    if not (slack.app_token or "").startswith(APP_TOKEN_PREFIX):
        return "SLACK_APP_TOKEN must be an app-level token (xapp-…), not the bot token."
    return None


def socket_mode_handler(
    settings: Settings,
    slack: SlackSettings,
    units: UnitsLike,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncSocketModeHandler:
    """Call inside the running loop: the socket client starts its message task at once."""
    assert slack.app_token is not None
    app = build_slack_app(settings, slack, units, clock, socket_mode=True)
    # The app's own client asks for the socket URL: paced, and at SLACK_API_URL.
    return AsyncSocketModeHandler(app, slack.app_token, web_client=app.client)


async def _check_tokens(handler: AsyncSocketModeHandler) -> None:
    """A wrong token stops start-up here with a sentence; the SDK's connect would retry
    forever. The socket URL fetched here is the one `connect` then uses."""
    try:
        await handler.app.client.auth_test()
    except SlackApiError as error:
        raise TokenRefused(
            f"Slack refused SLACK_BOT_TOKEN: {error.response.get('error')}"
        ) from None
    try:
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
    except SlackApiError as error:
        raise TokenRefused(
            f"Slack refused SLACK_APP_TOKEN: {error.response.get('error')} (is Socket Mode "
            "enabled for the app, and does the token have connections:write?)"
        ) from None


async def run_socket_mode(
    settings: Settings,
    slack: SlackSettings,
    units: UnitsLike,
    until: Callable[[], Awaitable[object]],
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Connected from start-up until `until()` returns (a signal, in the command)."""
    handler = socket_mode_handler(settings, slack, units, clock)
    # slack_bolt leaves these two unannotated (both return None).
    try:
        await _check_tokens(handler)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode; Ctrl+C stops")
        await until()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
