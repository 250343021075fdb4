"""Telegram as a `Platform`: the webhook route, the ChatSender, Telegram's rate limits, t.me
sign-in links, the webhook-secret check, and the Application's start and stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update

from bots.platform import Platform, PlatformProvider
from bots.telegram.app import build_application, register_commands, webhook_routes
from bots.telegram.frontend import PLATFORM, TelegramApp
from bots.telegram.links import deep_link
from bots.telegram.sender import TelegramSender
from bots.telegram.settings import TelegramSettings, get_telegram_settings
from engine.followup.senders import RateLimits
from engine.settings import Settings

LIMITS = RateLimits(per_second=30.0, per_chat_interval=1.0)
"""Telegram: about 30 messages a second per bot, one a second per chat (429 carries retry_after)."""


def telegram_platform(app: TelegramApp, telegram: TelegramSettings) -> Platform:
    """The Platform over an Application built with `build_application(..., webhook=True)`."""

    async def check() -> list[str]:
        return telegram.insecure_defaults(webhook=True)

    async def start(receive: bool) -> None:
        await app.initialize()  # getMe: a wrong token fails here, at start-up
        if not receive:
            return
        await register_commands(app)
        await app.start()
        if telegram.webhook_url:
            await app.bot.set_webhook(
                telegram.webhook_url,
                secret_token=telegram.webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )

    async def stop() -> None:
        """Last at a stop: `serve` has finished (or cut off) the webhook's requests by now."""
        if app.running:
            await app.stop()
        await app.shutdown()

    return Platform(
        name=PLATFORM,
        sender=TelegramSender(app.bot),
        limits=replace(LIMITS, per_second=telegram.send_rate),
        routes=webhook_routes(app, telegram.webhook_secret),
        sign_in_link=partial(deep_link, telegram.bot_username),
        check=check,
        start=start,
        stop=stop,
    )


def build(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
) -> Platform | None:
    """Enabled when TELEGRAM_TOKEN is set."""
    telegram = get_telegram_settings()
    if not telegram.token:
        return None
    app = build_application(settings, telegram, factory, webhook=True, clock=clock)
    return telegram_platform(app, telegram)


TELEGRAM = PlatformProvider(build=build, secrets=lambda: get_telegram_settings().secrets())
