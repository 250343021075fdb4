"""The PTB Application, and the two ways to run it: polling (development) and a webhook."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application

from bots.telegram.frontend import COMMANDS, TelegramApp, TelegramFrontEnd
from engine.conversation import utc_now
from engine.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"


def build_application(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    *,
    webhook: bool,
    clock: Callable[[], datetime] = utc_now,
) -> TelegramApp:
    """PTB over the engine; the Bot API base URL comes from settings (in tests: a fake)."""
    if not settings.telegram_token:
        raise SystemExit("TELEGRAM_TOKEN is not set: create a bot with @BotFather first")

    builder = (
        Application.builder()
        .token(settings.telegram_token)
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .rate_limiter(AIORateLimiter())
    )
    if webhook:
        builder = builder.updater(None)
    app = builder.build()
    TelegramFrontEnd(factory, settings, clock).register(app)
    return app


def webhook_app(app: TelegramApp, secret: str) -> web.Application:
    """aiohttp routes: Telegram's webhook (secret checked) and a health check."""

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
        await app.update_queue.put(update)  # answered at once; the Application works it off
        return web.Response(text="ok")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post(WEBHOOK_PATH, receive)
    web_app.router.add_get("/healthz", health)
    return web_app


async def register_commands(app: TelegramApp) -> None:
    """The command menu Telegram shows next to the text box (setMyCommands).

    A menu is a convenience: when Telegram refuses it (or is briefly down) the bot still
    starts, and the commands still work when typed.
    """
    try:
        await app.bot.set_my_commands(COMMANDS)
    except TelegramError as error:
        log.warning("setMyCommands failed (%s); starting without the command menu", error)


async def wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


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


async def run_webhook(
    app: TelegramApp, settings: Settings, factory: async_sessionmaker[AsyncSession]
) -> None:
    """The webhook and the outbox worker in one process (the worker uses the app's bot)."""
    from bots.worker import build_worker

    stop = asyncio.Event()
    async with app:
        await register_commands(app)
        await app.start()
        if settings.telegram_webhook_url:
            await app.bot.set_webhook(
                settings.telegram_webhook_url,
                secret_token=settings.telegram_webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )
        runner = web.AppRunner(webhook_app(app, settings.telegram_webhook_secret))
        await runner.setup()
        site = web.TCPSite(runner, settings.serve_host, settings.serve_port)
        await site.start()
        worker = asyncio.create_task(build_worker(settings, factory, app.bot).run_forever(stop))
        log.info("serving on %s:%s", settings.serve_host, settings.serve_port)
        try:
            await wait_for_stop()
        finally:
            stop.set()
            await worker
            await runner.cleanup()
            await app.stop()
