"""`bookbot serve`: one aiohttp app from the enabled platforms' routes, plus the outbox worker.

Every platform mounts its own routes (Telegram: `POST /telegram`); the server adds `/healthz`
and knows no platform by name, so it runs with none enabled too (then it serves the health
check and the worker sends e-mails).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache

from aiohttp import web
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform
from bots.worker import build_worker
from engine.followup.notify import EmailSender
from engine.followup.reminders import utc_now
from engine.settings import Settings, insecure_defaults

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"


class ServerSettings(BaseSettings):
    """`SERVE_HOST` / `SERVE_PORT`: where `bookbot serve` listens."""

    model_config = SettingsConfigDict(env_prefix="SERVE_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="`bookbot serve` listen address.")
    port: int = Field(default=8080, description="`bookbot serve` listen port.")
    migrate: bool = Field(
        default=True,
        description=(
            "Bring the schema up to date at start. Off where a migration service does it first "
            "(docker-compose.yml): several processes migrating at once would race."
        ),
    )
    worker: bool = Field(
        default=True,
        description="Run the outbox worker in this process (`bookbot serve --no-worker`: off).",
    )


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    return ServerSettings()


async def _health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def web_app(routes: Sequence[web.RouteDef]) -> web.Application:
    """An aiohttp app with `routes` and the health check."""
    app = web.Application()
    app.add_routes([web.get(HEALTH_PATH, _health), *routes])
    return app


def build_web_app(platforms: Sequence[Platform]) -> web.Application:
    """Only the enabled platforms' routes are mounted; a clash of paths fails at start-up."""
    return web_app([route for platform in platforms for route in platform.routes])


async def startup_problems(settings: Settings, platforms: Sequence[Platform]) -> list[str]:
    """The engine's insecure defaults and each platform's own start-up checks."""
    found = insecure_defaults(settings)
    for platform in platforms:
        found += await platform.check()
    return found


async def wait_for_stop() -> None:
    """Until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    platforms: Sequence[Platform],
    email: EmailSender | None,
    server: ServerSettings,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Start the platforms (receiving), the web app and the worker; run until `stop` is set.

    Everything started is stopped again in reverse order, also when a later start fails.
    """
    started: list[Platform] = []
    runner = web.AppRunner(build_web_app(platforms))
    worker: asyncio.Task[None] | None = None
    try:
        for platform in platforms:
            await platform.start(True)
            started.append(platform)
        await runner.setup()
        await web.TCPSite(runner, server.host, server.port).start()
        if server.worker:
            worker = asyncio.create_task(
                build_worker(settings, factory, platforms, clock, email=email).run_forever(stop)
            )
        log.info(
            "serving on %s:%s with %s%s",
            server.host,
            server.port,
            ", ".join(p.name for p in platforms) or "no chat platform",
            "" if server.worker else ", without the outbox worker",
        )
        await stop.wait()
    finally:
        stop.set()
        if worker is not None:
            await worker
        await runner.cleanup()
        for platform in reversed(started):
            await platform.stop()
