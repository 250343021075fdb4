"""`bookbot serve`: one aiohttp app from the enabled platforms' routes, plus the outbox worker.

Every platform mounts its own routes (Telegram: `POST /telegram`); the server adds `/healthz`
and knows no platform by name, so it runs with none enabled too (then it serves the health
check and the worker sends e-mails).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import lru_cache

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.join import join_routes
from bots.metrics import metrics_routes
from bots.platform import Platform
from bots.shutdown import WORKER_SEND, Deadline, InFlight, stop_platforms, stop_serving
from bots.worker import build_worker
from engine.followup.notify import EmailSender
from engine.followup.reminders import utc_now
from engine.followup.video import JitsiProvider
from engine.settings import Settings, insecure_defaults
from storage.db import ping

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
    shutdown_seconds: float = Field(
        default=25.0,
        gt=0,
        description=(
            "On SIGTERM or SIGINT, `bookbot serve` (and `bookbot worker`) finish the requests and "
            "the send in flight for at most this long, then exit anyway; keep it under the "
            "supervisor's kill timeout (the recipes in deploy/ and docker-compose.yml: 40 s)."
        ),
    )


@lru_cache(maxsize=1)
def get_server_settings() -> ServerSettings:
    return ServerSettings()


Readiness = Callable[[], Awaitable[dict[str, str]]]


async def _always_ready() -> dict[str, str]:
    return {}


def web_app(
    routes: Sequence[web.RouteDef],
    ready: Readiness = _always_ready,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """An aiohttp app with `routes` and the health check: 200 "ok" while the process lives and
    every readiness check passes; 503 naming the failing check otherwise (a load balancer then
    sends no updates here, and Telegram and Slack retry them elsewhere or later)."""

    async def health(_: web.Request) -> web.Response:
        problems = {name: state for name, state in (await ready()).items() if state != "ok"}
        if problems:
            text = "not ready: " + ", ".join(f"{k} {v}" for k, v in sorted(problems.items()))
            return web.Response(status=503, text=text)
        return web.Response(text="ok")

    app = web.Application(middlewares=middlewares)
    app.add_routes([web.get(HEALTH_PATH, health), *routes])
    return app


def build_web_app(
    platforms: Sequence[Platform],
    ready: Readiness = _always_ready,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """Only the enabled platforms' routes are mounted; a clash of paths fails at start-up."""
    routes = [route for platform in platforms for route in platform.routes]
    return web_app(routes, ready, middlewares)


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

    Everything started is stopped again in reverse order, also when a later start fails. A stop
    takes no new request, lets the requests in flight finish (a Telegram update is answered only
    once processed) while the worker ends its current send and hands back the rest of its batch,
    then stops the platforms; all within `server.shutdown_seconds`, after which what still runs
    is cancelled and named in one log line (bots/shutdown.py).
    """
    started: list[Platform] = []
    outbox = (
        build_worker(settings, factory, platforms, clock, email=email) if server.worker else None
    )

    async def ready() -> dict[str, str]:
        """The database answers, and the worker (when this process runs one) keeps turning."""
        state = {"database": "ok" if await ping(factory) else "unreachable"}
        if outbox is not None:
            state["worker"] = "ok" if outbox.alive(time.monotonic()) else "stalled"
        return state

    requests = InFlight()
    app = build_web_app(platforms, ready, [requests.middleware()])
    # Join links of e-mails and invites (bots/join.py); rooms come from Jitsi, as the worker's.
    app.add_routes(join_routes(settings, factory, JitsiProvider(settings.jitsi_base_url), clock))
    app.add_routes(metrics_routes(factory))  # this process's own counts (bots/metrics.py)
    # aiohttp's own wait for busy connections only backs up the limit that stop_serving keeps.
    runner = web.AppRunner(app, shutdown_timeout=server.shutdown_seconds + 1)
    worker: asyncio.Task[None] | None = None
    try:
        for platform in platforms:
            await platform.start(True)
            started.append(platform)
        await runner.setup()
        await web.TCPSite(runner, server.host, server.port).start()
        if outbox is not None:
            worker = asyncio.create_task(outbox.run_forever(stop))
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
        deadline = Deadline(server.shutdown_seconds)
        steps = [stop_serving(runner, requests, deadline)]
        if worker is not None:
            steps.append(deadline.step(WORKER_SEND, worker))
        await asyncio.gather(*steps)
        await stop_platforms(deadline, started)
        deadline.report()
