"""`bookbot worker`: sends due outbox rows (reminders, room links, e-mails, notices).

Its chat senders, their rate limits (a pacer per platform, whose overall rate every worker of
the bot shares through the database) and the sign-in link for e-mails' "Manage" buttons come
from the enabled platforms; it names none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform
from bots.shutdown import WORKER_SEND, Deadline, stop_platforms
from engine.followup.dispatch import Dispatcher
from engine.followup.housekeeping import Housekeeping
from engine.followup.notify import EmailSender
from engine.followup.reminders import Pacers, Worker, WorkerSettings, utc_now
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.send_rate import SendRates


def build_worker(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    platforms: Sequence[Platform],
    clock: Callable[[], datetime] = utc_now,
    *,
    email: EmailSender | None,
) -> Worker:
    """The outbox worker over the given platforms and e-mail sender (None: e-mails skipped)."""
    # Each platform's overall rate is taken from the database, shared with every other worker
    # of the bot (engine/followup/pacing.py); per-chat spacing stays in this process.
    pacers = Pacers(
        {platform.name: platform.limits for platform in platforms}, shared=SendRates(factory)
    )
    sign_in_link = next((p.sign_in_link for p in platforms if p.sign_in_link is not None), None)
    dispatcher = Dispatcher(
        factory,
        settings,
        [platform.sender for platform in platforms],
        email,
        JitsiProvider(settings.jitsi_base_url),
        pacers,
        sign_in_link,
    )
    # The Dispatcher paces per platform and real chat; the worker itself need not pace again.
    return Worker(
        factory,
        dispatcher,
        WorkerSettings(lease=timedelta(seconds=settings.worker_lease_seconds)),
        clock,
        pacer=None,
        housekeeping=Housekeeping.from_settings(factory, settings),
    )


async def run_worker(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    platforms: Sequence[Platform],
    email: EmailSender | None,
    stop: asyncio.Event,
    shutdown_seconds: float = 25.0,
) -> None:
    """Connect each platform for sending only (no webhook, no polling) and work until `stop`.

    Then, within `shutdown_seconds` (SERVE_SHUTDOWN_SECONDS), the current send finishes, the
    rest of the batch is handed back, and the platforms stop (bots/shutdown.py).
    """
    started: list[Platform] = []
    running: asyncio.Task[None] | None = None
    try:
        for platform in platforms:
            await platform.start(False)
            started.append(platform)
        worker = build_worker(settings, factory, platforms, email=email)
        running = asyncio.create_task(worker.run_forever(stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        stop.set()
        deadline = Deadline(shutdown_seconds)
        if running is not None:
            await deadline.step(WORKER_SEND, running)
        await stop_platforms(deadline, started)
        deadline.report()
