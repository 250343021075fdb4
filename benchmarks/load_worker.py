"""`python -m benchmarks.load_worker --rate R`: `bookbot worker`, with Telegram's per-bot rate set
to R messages a second.

The reminder part of `bookbot bench load` measures how close several workers come to the rate
they are configured for; Telegram's 30/s would make 10,000 reminders a six-minute run, so the
rate is an option. Everything else is `bookbot worker`'s own code path (`bots.worker.run_worker`
over the enabled platforms), settings from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace

from bots.cli import _until_stopped_or_done, email, open_engine, refuse_insecure
from bots.platforms import enabled_platforms
from bots.server import get_server_settings
from bots.worker import run_worker
from engine.followup.senders import RateLimits
from engine.settings import get_settings, insecure_defaults
from storage.db import make_sessionmaker


async def work(rate: float) -> None:
    settings = get_settings()
    refuse_insecure(insecure_defaults(settings))
    engine = open_engine(settings.database_url)
    try:
        factory = make_sessionmaker(engine)
        platforms = [
            replace(p, limits=RateLimits(rate, p.limits.per_chat_interval))
            if p.name == "telegram"
            else p
            for p in enabled_platforms(settings, factory)
        ]
        stop = asyncio.Event()
        limit = get_server_settings().shutdown_seconds
        task = asyncio.create_task(
            run_worker(settings, factory, platforms, email(settings), stop, limit)
        )
        await _until_stopped_or_done(task, stop)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_worker")
    parser.add_argument("--rate", type=float, required=True, help="Telegram messages a second")
    asyncio.run(work(parser.parse_args(argv).rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
