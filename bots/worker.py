"""`bookbot worker`: sends due outbox rows (reminders, room links, e-mails, notices)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot

from bots.telegram.sender import TelegramSender
from engine.dispatch import Dispatcher
from engine.housekeeping import Housekeeping
from engine.notify import EmailSender, OutboxFolderSender, ResendSender
from engine.reminders import Worker, WorkerSettings, utc_now
from engine.senders import ChatSender
from engine.settings import Settings
from engine.video import JitsiProvider


def email_sender(settings: Settings) -> EmailSender:
    """Resend when there is an API key; otherwise .eml files in EMAIL_OUTBOX_DIR (local)."""
    if settings.resend_api_key:
        return ResendSender(settings.resend_api_key, settings.email_from, settings.resend_api_url)
    return OutboxFolderSender(Path(settings.email_outbox_dir), settings.email_from)


def build_worker(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    bot: Bot | None,
    clock: Callable[[], datetime] = utc_now,
) -> Worker:
    senders: list[ChatSender] = [TelegramSender(bot)] if bot is not None else []
    dispatcher = Dispatcher(
        factory, settings, senders, email_sender(settings), JitsiProvider(settings.jitsi_base_url)
    )
    # The Dispatcher paces per real chat; the worker itself need not pace again.
    return Worker(
        factory,
        dispatcher,
        WorkerSettings(),
        clock,
        pacer=None,
        housekeeping=Housekeeping.from_settings(factory, settings),
    )


async def run_worker(
    settings: Settings, factory: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    if settings.telegram_token:
        bot = Bot(
            settings.telegram_token,
            base_url=settings.telegram_api_url,
            base_file_url=settings.telegram_file_url,
        )
        async with bot:
            await build_worker(settings, factory, bot).run_forever(stop)
    else:
        await build_worker(settings, factory, None).run_forever(stop)
