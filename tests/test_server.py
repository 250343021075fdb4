"""`bookbot serve` through the platform seam: one aiohttp app with /healthz and the routes of the
enabled platforms only; it runs with no platform at all, and with Telegram against the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform, PlatformProvider
from bots.platforms import PLATFORMS, enabled_platforms, platform_secrets
from bots.server import ServerSettings, build_web_app, serve
from bots.telegram.app import WEBHOOK_PATH, build_application
from bots.telegram.platform import telegram_platform
from bots.telegram.settings import get_telegram_settings
from engine.followup.reminders import Worker, WorkerSettings
from engine.followup.senders import OutMessage, RateLimits
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.models import ReminderJob
from storage.uow import Units
from tests.channels import eml
from tests.factories import NOW, make_world
from tests.fake_telegram import FakeTelegram
from tests.test_flow import book_elsewhere
from tests.test_telegram import (
    SAM_TG,
    WEBHOOK_SECRET,
    payload,
    settings_for,
    telegram_settings_for,
    texts,
)

Factory = async_sessionmaker[AsyncSession]


class NullSender:
    def __init__(self, platform: str) -> None:
        self.platform = platform

    async def send(self, chat_id: str, message: OutMessage) -> None:
        return None


def dummy(name: str, events: list[str], *, fails_to_start: bool = False) -> Platform:
    """A platform with one route that answers its own name, and start/stop recorded."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text=name)

    async def start(receive: bool) -> None:
        if fails_to_start:
            raise RuntimeError(f"{name} refused to start")
        events.append(f"start {name} receive={receive}")

    async def stop() -> None:
        events.append(f"stop {name}")

    return Platform(
        name=name,
        sender=NullSender(name),
        limits=RateLimits(),
        routes=[web.post(f"/{name}", hello)],
        start=start,
        stop=stop,
    )


@pytest.fixture
def telegram_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """Set or unset TELEGRAM_TOKEN for the registry, which reads Telegram's own settings."""

    def set_token(token: str | None) -> None:
        if token is None:
            monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
        else:
            monkeypatch.setenv("TELEGRAM_TOKEN", token)
        get_telegram_settings.cache_clear()

    yield set_token
    get_telegram_settings.cache_clear()


async def test_the_server_answers_healthz_and_mounts_only_the_given_platforms_routes() -> None:
    app = build_web_app([dummy("chatty", [])])
    async with TestClient(TestServer(app)) as client:
        health = await client.get("/healthz")
        assert (health.status, await health.text()) == (200, "ok")
        routed = await client.post("/chatty")
        assert (routed.status, await routed.text()) == (200, "chatty")
        assert (await client.post(WEBHOOK_PATH)).status == 404  # Telegram is not enabled


async def test_two_platforms_with_the_same_path_fail_at_start_up() -> None:
    with pytest.raises(RuntimeError):
        build_web_app([dummy("twin", []), dummy("twin", [])])


def test_telegram_is_enabled_only_when_its_token_is_set(
    pg: Factory, telegram_env: Callable[[str | None], None]
) -> None:
    telegram_env(None)
    assert enabled_platforms(Settings(), pg) == []
    telegram_env("123456:test-token-for-the-registry")
    (telegram,) = enabled_platforms(Settings(), pg)
    assert telegram.name == "telegram"
    assert [route.path for route in telegram.routes] == [WEBHOOK_PATH]
    assert telegram.sign_in_link is not None
    assert telegram.sign_in_link("abc").startswith("https://t.me/")
    assert "123456:test-token-for-the-registry" in platform_secrets()


def test_the_registry_takes_any_provider_and_skips_the_unconfigured(pg: Factory) -> None:
    providers = {
        "chatty": PlatformProvider(build=lambda *_: dummy("chatty", []), secrets=lambda: []),
        "quiet": PlatformProvider(build=lambda *_: None, secrets=lambda: ["quiet-secret"]),
    }
    assert [p.name for p in enabled_platforms(Settings(), pg, providers=providers)] == ["chatty"]
    assert platform_secrets(providers) == ["quiet-secret"]
    assert list(PLATFORMS) == ["telegram", "slack"]  # one line each


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def healthy(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def test_serve_starts_with_no_platform_and_answers_healthz(
    pg: Factory, tmp_path: Path, unused_tcp_port: int
) -> None:
    settings = Settings()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port)
    running = asyncio.create_task(serve(settings, pg, [], eml(tmp_path, settings), server, stop))
    await until(lambda: healthy(unused_tcp_port))
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, 10)
    assert not await healthy(unused_tcp_port)


async def test_serve_starts_each_platform_receiving_and_stops_them_in_reverse(
    pg: Factory, tmp_path: Path, unused_tcp_port: int
) -> None:
    events: list[str] = []
    platforms = [dummy("first", events), dummy("second", events)]
    settings = Settings()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port)
    running = asyncio.create_task(
        serve(settings, pg, platforms, eml(tmp_path, settings), server, stop)
    )
    await until(lambda: healthy(unused_tcp_port))
    async with aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{unused_tcp_port}/second") as response:
            assert await response.text() == "second"
    stop.set()
    await asyncio.wait_for(running, 10)
    assert events == [
        "start first receive=True",
        "start second receive=True",
        "stop second",
        "stop first",
    ]


async def test_a_platform_that_fails_to_start_stops_the_ones_already_started(
    pg: Factory, tmp_path: Path, unused_tcp_port: int
) -> None:
    events: list[str] = []
    platforms = [dummy("first", events), dummy("broken", events, fails_to_start=True)]
    settings = Settings()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port)
    with pytest.raises(RuntimeError, match="broken refused to start"):
        await serve(settings, pg, platforms, eml(tmp_path, settings), server, asyncio.Event())
    assert events == ["start first receive=True", "stop first"]


async def test_serve_takes_telegram_webhooks_through_the_platform(
    pg: Factory, tmp_path: Path, unused_tcp_port: int
) -> None:
    world = await make_world(pg)
    async with FakeTelegram() as fake:
        public = f"https://bots.example.edu{WEBHOOK_PATH}"
        telegram = telegram_settings_for(fake).model_copy(update={"webhook_url": public})
        settings = settings_for(fake)
        app = build_application(settings, telegram, pg, webhook=True, clock=lambda: NOW)
        stop = asyncio.Event()
        server = ServerSettings(host="127.0.0.1", port=unused_tcp_port)
        running = asyncio.create_task(
            serve(
                settings,
                pg,
                [telegram_platform(app, telegram)],
                eml(tmp_path, settings),
                server,
                stop,
            )
        )
        try:
            await until(lambda: healthy(unused_tcp_port))
            (hook,) = fake.calls_to("setWebhook")
            assert (hook.params["url"], hook.params["secret_token"]) == (public, WEBHOOK_SECRET)
            assert [c["command"] for c in fake.commands()][:2] == ["book", "mysessions"]
            update = fake.user(SAM_TG, "Sam").send_text(f"/start {payload(world)}")
            url = f"http://127.0.0.1:{unused_tcp_port}{WEBHOOK_PATH}"
            assert await fake.deliver_webhook(url, update) == 403
            assert await fake.deliver_webhook(url, update, secret=WEBHOOK_SECRET) == 200
            await fake.wait_until(lambda: "Step 1 of 4" in texts(fake, SAM_TG))
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)
        assert not app.running


@pytest.mark.parametrize("worker", [True, False])
async def test_serve_runs_the_outbox_worker_unless_told_not_to(
    pg: Factory, tmp_path: Path, unused_tcp_port: int, worker: bool
) -> None:
    """`bookbot serve --no-worker` (SERVE_WORKER=false): the web app only; the confirmation
    e-mails of a booking stay queued for a worker elsewhere."""
    world = await make_world(pg)
    await book_elsewhere(pg, world, world.student.id, world.teachers[0].id)
    settings = Settings()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port, worker=worker)
    running = asyncio.create_task(serve(settings, pg, [], eml(tmp_path, settings), server, stop))
    await until(lambda: healthy(unused_tcp_port))

    async def sent() -> int:
        async with pg() as session:
            done = select(func.count()).where(ReminderJob.status != "pending")
            return int(await session.scalar(done) or 0)

    if worker:

        async def some_sent() -> bool:
            return await sent() > 0

        await until(some_sent)
    else:
        await asyncio.sleep(1.5)  # the worker would have claimed the due e-mails by now
        assert await sent() == 0
    stop.set()
    await asyncio.wait_for(running, 10)


async def _health(port: int) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.text()


async def test_healthz_is_not_ready_while_the_database_cannot_be_reached(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    """Liveness and readiness: the process answers, but 503 names the database it cannot reach
    (the worker keeps turning meanwhile, so only the database is named)."""
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    settings = Settings()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port)
    running = asyncio.create_task(
        serve(settings, make_sessionmaker(engine), [], eml(tmp_path, settings), server, stop)
    )
    try:

        async def answering() -> bool:
            try:
                return (await _health(unused_tcp_port))[0] == 503
            except aiohttp.ClientConnectionError:
                return False

        await until(answering)
        assert await _health(unused_tcp_port) == (503, "not ready: database unreachable")
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await engine.dispose()


def test_the_worker_counts_as_alive_for_two_polling_periods_after_a_pass_began() -> None:
    worker = Worker(
        Units.of(make_sessionmaker(make_engine("sqlite:///unused.db"))),
        None,  # type: ignore[arg-type]  # never called: no pass runs
        WorkerSettings(idle_sleep=2.0),
    )
    assert not worker.alive(100.0)  # no pass yet
    worker.heartbeat = 100.0
    assert worker.alive(104.0) and not worker.alive(104.1)
