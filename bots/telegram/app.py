"""The PTB Application, its webhook routes, and polling (development).

The webhook is served by `bots/server.py` through the Telegram platform (`platform.py`). It
answers an update only once it was processed: Telegram forgets an update it got a 200 for, so
an update still queued when the process stops would be lost, while one left unanswered is
delivered again (to another process, where `processed_updates` makes a repeat a no-op).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bots.server import wait_for_stop, web_app
from bots.telegram.frontend import COMMANDS, TelegramApp, TelegramFrontEnd
from bots.telegram.retries import RetryingRateLimiter
from bots.telegram.settings import TelegramSettings
from engine.chat.conversation import utc_now
from engine.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"


def build_application(
    settings: Settings,
    telegram: TelegramSettings,
    factory: async_sessionmaker[AsyncSession],
    *,
    webhook: bool,
    clock: Callable[[], datetime] = utc_now,
) -> TelegramApp:
    """PTB over the engine; the Bot API base URL comes from settings (in tests: a fake)."""
    if not telegram.token:
        raise SystemExit("TELEGRAM_TOKEN is not set: create a bot with @BotFather first")

    builder = (
        Application.builder()
        .token(telegram.token)
        .base_url(telegram.api_url)
        .base_file_url(telegram.file_url)
        .rate_limiter(RetryingRateLimiter())  # paced, and replies retried (retries.py)
    )
    if webhook:
        # Each webhook request processes its update itself (webhook_routes); as many at once as
        # the process has database connections, so that a burst waits for a connection here,
        # in the open request, rather than in the pool (which times out).
        concurrent = settings.db_pool_size + settings.db_max_overflow
        builder = builder.updater(None).concurrent_updates(concurrent)
    app = builder.build()
    TelegramFrontEnd(factory, settings, clock).register(app)
    return app


def webhook_routes(app: TelegramApp, secret: str) -> list[web.RouteDef]:
    """Telegram's webhook as an aiohttp route; the secret header is checked in constant time.

    The 200 comes after the update was processed, also when a handler failed: the error
    handler has told the person (a database outage: "Unable to book. Please try again."), and
    a redelivery would only repeat that. An update cut off by a stop gets no answer at all, so
    Telegram delivers it again.
    """

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
            update = Update.de_json(data, app.bot)
        except (json.JSONDecodeError, ValueError, TypeError, KeyError):
            return web.Response(status=400, text="bad update")
        if update is None:
            return web.Response(status=400, text="bad update")
        # Not app.update_queue: whatever sits in that queue at a stop is dropped by PTB.
        await app.update_processor.process_update(update, app.process_update(update))
        return web.Response(text="ok")

    return [web.post(WEBHOOK_PATH, receive)]


def webhook_app(app: TelegramApp, secret: str) -> web.Application:
    """The webhook alone in an aiohttp app with /healthz (what `bookbot serve` mounts, minus
    the other platforms)."""
    return web_app(webhook_routes(app, secret))


async def register_commands(app: TelegramApp) -> None:
    """The command menu Telegram shows next to the text box (setMyCommands).

    A menu is a convenience: when Telegram refuses it (or is briefly down) the bot still
    starts, and the commands still work when typed.
    """
    try:
        await app.bot.set_my_commands(COMMANDS)
    except TelegramError as error:
        log.warning("setMyCommands failed (%s); starting without the command menu", error)


async def run_polling(app: TelegramApp) -> None:
    async with app:
        await register_commands(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        log.info("polling Telegram; Ctrl+C stops")
        await wait_for_stop()
        await app.updater.stop()
        await app.stop()
