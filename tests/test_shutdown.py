"""Stopping `bookbot serve` and `bookbot worker` (bots/shutdown.py): the update in flight is
finished and only then answered, nothing new is taken, the worker hands back what it never
started, and a stop that hangs still ends at SERVE_SHUTDOWN_SECONDS.

The last two tests run two real `bookbot serve` processes on one database: the fault test
sends the first one SIGTERM in the middle of a burst, Telegram's redeliveries going to the
second; the other alternates each chat between them and races two students for one slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.server import ServerSettings, serve
from bots.slack.app import EVENTS_PATH
from bots.slack.platform import slack_platform
from bots.slack.settings import SlackSettings
from bots.telegram.app import SECRET_HEADER, WEBHOOK_PATH, build_application
from bots.telegram.frontend import TelegramApp
from bots.telegram.platform import telegram_platform
from bots.worker import run_worker
from engine.chat.screens import Kind, decode
from engine.followup.notify import EmailContent
from engine.links import LinkClaims, sign
from engine.settings import Settings
from storage.models import ProcessedUpdate, ReminderJob, Session
from tests.factories import NOW, add_user, enroll, make_world
from tests.fake_slack import FakeSlack
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.slack_requests import slash_command
from tests.test_flow import book_elsewhere
from tests.test_server import dummy, healthy, until
from tests.test_telegram import (
    SAM_TG,
    WEBHOOK_SECRET,
    payload,
    settings_for,
    telegram_settings_for,
    texts,
)

Factory = async_sessionmaker[AsyncSession]
JSONDict = dict[str, Any]
ROOT = Path(__file__).resolve().parent.parent


async def post(
    client: aiohttp.ClientSession, url: str, update: JSONDict, secret: str
) -> int | None:
    """Deliver one update like Telegram: its HTTP status, or None when the connection was
    refused or closed unanswered (Telegram then delivers it again)."""
    try:
        async with client.post(url, json=update, headers={SECRET_HEADER: secret}) as response:
            await response.read()
            return response.status
    except aiohttp.ClientError:
        return None


async def refused(port: int) -> bool:
    """Nothing listens on `port` any more."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


class Held:
    """A Bot API method held at the fake until released: the bot's reply is in flight."""

    def __init__(self, fake: FakeTelegram | FakeSlack, method: str) -> None:
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()
        fake.on_next(method, self._hold)

    async def _hold(self, _: object) -> None:
        self.arrived.set()
        await self.released.wait()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def serving(
    fake: FakeTelegram, pg: Factory, port: int, limit: float
) -> tuple[TelegramApp, asyncio.Event, asyncio.Task[None]]:
    """`serve` with Telegram against the fake, no worker; returns once it answers."""
    telegram, settings = telegram_settings_for(fake), settings_for(fake)
    app = build_application(settings, telegram, pg, webhook=True, clock=lambda: NOW)
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=port, worker=False, shutdown_seconds=limit)
    running = asyncio.create_task(
        serve(settings, pg, [telegram_platform(app, telegram)], None, server, stop)
    )
    await until(lambda: healthy(port))
    return app, stop, running


async def test_the_webhook_answers_only_once_the_reply_was_sent_and_a_stop_finishes_it_first(
    fake: FakeTelegram, pg: Factory, unused_tcp_port: int
) -> None:
    world = await make_world(pg)
    app, stop, running = await serving(fake, pg, unused_tcp_port, limit=30)
    held = Held(fake, "sendMessage")
    update = fake.user(SAM_TG, "Sam").send_text(f"/start {payload(world)}")
    url = f"http://127.0.0.1:{unused_tcp_port}{WEBHOOK_PATH}"
    async with aiohttp.ClientSession() as client:
        delivery = asyncio.create_task(post(client, url, update, WEBHOOK_SECRET))
        await asyncio.wait_for(held.arrived.wait(), 10)
        assert not delivery.done()  # no 200 while the reply is still on its way
        stop.set()
        await until(lambda: refused(unused_tcp_port))  # takes nothing new meanwhile
        assert not delivery.done() and not running.done()
        held.released.set()
        assert await delivery == 200
    await asyncio.wait_for(running, 10)
    assert "Step 1 of 4" in texts(fake, SAM_TG)
    assert not app.running  # the platform stopped after the request finished
    async with pg() as session:
        assert await session.scalar(select(ProcessedUpdate.update_id)) == str(update["update_id"])


async def test_a_stop_with_a_hanging_update_ends_at_the_limit_leaving_it_unanswered(
    fake: FakeTelegram, pg: Factory, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The reply never comes back: at the limit the request is cancelled and its connection
    closed without an answer, so Telegram would deliver the update again elsewhere."""
    world = await make_world(pg)
    app, stop, running = await serving(fake, pg, unused_tcp_port, limit=0.5)
    held = Held(fake, "sendMessage")
    update = fake.user(SAM_TG, "Sam").send_text(f"/start {payload(world)}")
    url = f"http://127.0.0.1:{unused_tcp_port}{WEBHOOK_PATH}"
    try:
        async with aiohttp.ClientSession() as client:
            delivery = asyncio.create_task(post(client, url, update, WEBHOOK_SECRET))
            await asyncio.wait_for(held.arrived.wait(), 10)
            with caplog.at_level(logging.WARNING, logger="bots.shutdown"):
                stop.set()
                await asyncio.wait_for(running, 10)  # the hold is endless; the limit is not
            assert await delivery is None
        assert "abandoned: 1 request(s) in flight, closed unanswered" in caplog.text
    finally:
        held.released.set()
        if app.running:
            await app.stop()
        await app.shutdown()


async def test_a_slack_command_acknowledged_but_still_in_its_listener_is_finished_at_a_stop(
    pg: Factory, unused_tcp_port: int
) -> None:
    """Bolt answers Slack only once the listener ran (process_before_response), so the stop
    waits for it like for a Telegram update: the reply is posted, then the 200 goes out."""
    world = await make_world(pg)
    async with FakeSlack() as fake:
        fake.add_user("U0ADA", "ada", email=world.teachers[0].email, tz="UTC")
        secret = "slack-signing-secret-for-shutdown"
        slack = SlackSettings(bot_token=fake.token, signing_secret=secret, api_url=fake.base_url)
        platform = slack_platform(slack, Settings(), pg, lambda: NOW)
        stop = asyncio.Event()
        server = ServerSettings(host="127.0.0.1", port=unused_tcp_port, worker=False)
        running = asyncio.create_task(serve(Settings(), pg, [platform], None, server, stop))
        await until(lambda: healthy(unused_tcp_port))
        held = Held(fake, "chat.postMessage")
        command = slash_command(
            secret,
            command="/mysessions",
            text="",
            user_id="U0ADA",
            trigger_id=fake.trigger_id(),
            response_url=fake.response_url(),
        )
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{unused_tcp_port}{EVENTS_PATH}"
            answer = asyncio.create_task(command.post(http, url))
            await asyncio.wait_for(held.arrived.wait(), 10)
            stop.set()
            await until(lambda: refused(unused_tcp_port))
            assert not answer.done() and not running.done()
            held.released.set()
            assert (await answer)[0] == 200
        await asyncio.wait_for(running, 10)
        assert [call.ok for call in fake.calls_to("chat.postMessage")] == [True]


class HeldEmail:
    """An e-mail provider whose sends wait until released."""

    def __init__(self) -> None:
        self.sending = asyncio.Event()
        self.released = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        self.sending.set()
        await self.released.wait()
        self.sent.append(idempotency_key)
        return f"message-{len(self.sent)}"


async def test_a_stop_lets_the_worker_finish_its_send_and_hands_back_the_rest_of_its_batch(
    pg: Factory, unused_tcp_port: int
) -> None:
    """The booking's confirmation e-mails are claimed in one batch; the stop comes while the
    first is being sent. That one is recorded as sent, the others are claimable again at once
    (no lease left), not after the lease runs out."""
    world = await make_world(pg)
    await book_elsewhere(pg, world, world.student.id, world.teachers[0].id)
    email = HeldEmail()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port, shutdown_seconds=30)
    running = asyncio.create_task(serve(Settings(), pg, [], email, server, stop))
    await asyncio.wait_for(email.sending.wait(), 10)
    stop.set()
    email.released.set()
    await asyncio.wait_for(running, 10)
    async with pg() as session:
        jobs = list(await session.scalars(select(ReminderJob)))
    assert len(email.sent) == 1
    assert [job.locked_until for job in jobs] == [None] * len(jobs)
    assert sum(job.status == "sent" for job in jobs) == 1
    assert any(job.status == "pending" for job in jobs)


async def test_bookbot_worker_stops_within_its_limit_when_a_platform_hangs(
    pg: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()

    platforms = [dummy("first", events), replace(dummy("stuck", events), stop=hangs)]
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(Settings(), pg, platforms, None, stop, 0.5))

    async def started() -> bool:
        return len(events) == 2

    await until(started)
    with caplog.at_level(logging.WARNING, logger="bots.shutdown"):
        stop.set()
        await asyncio.wait_for(running, 10)  # the hang is endless; the limit is not
    assert "abandoned: stopping stuck" in caplog.text


# --- the fault test: SIGTERM to one of two `serve` processes during a burst --------------------
LINK_SECRET = "shutdown-fault-test-link-secret-0123456789"  # serve wants 32 bytes or more
HOOK_SECRET = "shutdown-fault-test-webhook-secret"
LIMIT = 20.0
CHATS = 10


async def start_serve(
    fake: FakeTelegram, database_url: str, port: int, folder: Path
) -> asyncio.subprocess.Process:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "SLACK_", "SERVE_", "RESEND_"))
    }
    env.update(
        DATABASE_URL=database_url,
        LINK_SECRET=LINK_SECRET,
        TELEGRAM_TOKEN=fake.token,
        TELEGRAM_API_URL=fake.base_url,
        TELEGRAM_FILE_URL=fake.base_file_url,
        TELEGRAM_WEBHOOK_SECRET=HOOK_SECRET,
        SERVE_HOST="127.0.0.1",
        SERVE_PORT=str(port),
        SERVE_MIGRATE="false",  # the test database is migrated already
        SERVE_WORKER="false",  # only updates here: every bot call answers one
        SERVE_SHUTDOWN_SECONDS=str(LIMIT),
        EMAIL_OUTBOX_DIR=str(folder / "outbox"),
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bots.cli",
        "serve",
        env=env,
        cwd=folder,  # no .env of the checkout is read
        stdout=(folder / f"serve-{port}.out").open("wb"),
        stderr=(folder / f"serve-{port}.err").open("wb"),
    )


async def students(pg: Factory, count: int) -> list[str]:
    """`count` enrolled students, each with a deep link of their own (a link signs in one
    Telegram account only); the processes run on the real clock, so the links do too."""
    world = await make_world(pg)
    expires = datetime.now(UTC) + timedelta(hours=1)
    links = []
    async with pg() as session, session.begin():
        for n in range(count):
            student = await add_user(session, f"Student {n}")
            await enroll(session, student, world.course)
            claims = LinkClaims(student.id, world.course.id, None, "CDET", expires)
            links.append(sign(claims, LINK_SECRET))
    return links


def bot_calls_by_chat(fake: FakeTelegram, query_chats: dict[str, int]) -> dict[int, list[str]]:
    """Each chat's Bot API calls in order (a press's answer counted in its chat)."""
    calls: dict[int, list[str]] = {}
    for call in fake.calls:
        chat = call.params.get("chat_id") or query_chats.get(
            str(call.params.get("callback_query_id"))
        )
        if chat is not None:
            calls.setdefault(int(chat), []).append(call.method.lower())
    return calls


@dataclass
class Serve:
    """One `bookbot serve` subprocess on the test database, answering the fake Telegram."""

    process: asyncio.subprocess.Process
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def log(self) -> str:
        return (self.folder / f"serve-{self.port}.err").read_text()


@pytest.fixture
async def two_serves(
    fake: FakeTelegram, pg_url: str, tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> AsyncIterator[tuple[Serve, Serve]]:
    """Processes A and B, both answering; stopped at the end if a test left them running."""
    fake.flood = None  # the fake's flood control would only slow these tests down
    serves = []
    for _ in range(2):
        port = unused_tcp_port_factory()
        serves.append(Serve(await start_serve(fake, pg_url, port, tmp_path), port, tmp_path))
    a, b = serves
    try:
        await until(lambda: healthy(a.port), 120)
        await until(lambda: healthy(b.port), 120)
        yield a, b
    finally:
        for serve_ in serves:
            if serve_.process.returncode is None:
                serve_.process.terminate()
                await serve_.process.wait()


async def test_a_serve_process_stopped_by_sigterm_mid_burst_loses_and_repeats_nothing(
    fake: FakeTelegram, pg: Factory, two_serves: tuple[Serve, Serve]
) -> None:
    """Each chat links, presses "Schedule Later" and asks /mysessions, all chats at once, like
    Telegram through a load balancer: every update goes to A first and, when A refuses it or
    closes the connection unanswered, to B. A gets SIGTERM a third of the way in. Then: A
    exited by itself with 0; every update got exactly one 200; every update_id is in
    processed_updates; each student has one session; every chat saw the same calls."""
    a, b = two_serves
    links = await students(pg, CHATS)
    statuses: dict[int, list[tuple[str, int | None]]] = {}
    query_chats: dict[str, int] = {}
    answered = Counter[str]()
    async with aiohttp.ClientSession() as client:

        async def deliver(update: JSONDict) -> None:
            tried = statuses.setdefault(update["update_id"], [])
            for name, url in (("A", a.url), ("B", b.url)):
                status = await post(client, url, update, HOOK_SECRET)
                tried.append((name, status))
                if status == 200:
                    answered[name] += 1
                    if name == "A" and answered["A"] == CHATS:  # a third of the burst
                        a.process.send_signal(signal.SIGTERM)
                    return

        async def chat(n: int) -> None:
            person = fake.user(8000 + n, f"Student {n}")
            await deliver(person.send_text(f"/start {links[n]}"))
            press = person.press("Schedule Later")
            query_chats[press["callback_query"]["id"]] = person.id
            await deliver(press)
            await deliver(person.send_text("/mysessions"))

        await asyncio.wait_for(asyncio.gather(*(chat(n) for n in range(CHATS))), 60)
    exit_code = await asyncio.wait_for(a.process.wait(), LIMIT + 10)

    assert exit_code == 0, a.log()
    assert "abandoned" not in a.log()  # everything in flight at the SIGTERM was finished
    final = {update_id: [s for _, s in tried].count(200) for update_id, tried in statuses.items()}
    assert len(final) == 3 * CHATS and set(final.values()) == {1}, statuses
    assert answered["A"] >= CHATS and answered["B"] > 0, answered  # B served the rest
    async with pg() as session:
        processed = set(await session.scalars(select(ProcessedUpdate.update_id)))
        booked = list(await session.scalars(select(Session.student_id)))
    assert processed == {str(update_id) for update_id in statuses}
    assert len(booked) == len(set(booked)) == CHATS  # one session each, none twice
    per_chat = bot_calls_by_chat(fake, query_chats)
    assert len(per_chat) == CHATS
    assert len({tuple(calls) for calls in per_chat.values()}) == 1, per_chat
    assert fake.unanswered_callback_queries() == []


def first_button(fake: FakeTelegram, person: FakeUser, kind: Kind) -> JSONDict:
    """Press the first button of this kind on the newest message showing one (the calendar's
    first free day, the first free time: the processes run on the real clock)."""
    for message in reversed(fake.messages(person.id)):
        for row in [] if message.deleted else message.button_rows:
            for button in row:
                decoded = decode(button.get("callback_data", ""))
                if decoded is not None and decoded[1].kind is kind:
                    return person.press(button["text"], message.message_id)
    raise AssertionError(f"no {kind.name} button in chat {person.id}")


async def test_two_serve_processes_taking_turns_are_one_bot_and_book_a_contested_slot_once(
    fake: FakeTelegram, pg: Factory, two_serves: tuple[Serve, Serve]
) -> None:
    """Two students book the same ST, day and time, each chat's updates alternating between
    the processes (the wizard lives in the database, so either process continues it); their
    "Book Session" presses reach A and B at the same moment, and only one gets the slot."""
    processes = two_serves
    links = await students(pg, 2)
    people = [fake.user(8100 + n, f"Student {n}") for n in range(2)]

    async def deliver(n: int, turn: int, update: JSONDict) -> None:
        url = processes[(n + turn) % 2].url
        async with aiohttp.ClientSession() as client:
            assert await post(client, url, update, HOOK_SECRET) == 200

    for n, person in enumerate(people):
        await deliver(n, 0, person.send_text(f"/start {links[n]}"))
        await deliver(n, 1, person.press("Book with Ada Lovelace"))
        await deliver(n, 2, first_button(fake, person, Kind.PICK_DATE))
        await deliver(n, 3, first_button(fake, person, Kind.PICK_SLOT))
    confirms = [first_button(fake, person, Kind.CONFIRM) for person in people]
    await asyncio.gather(*(deliver(n, 4, update) for n, update in enumerate(confirms)))

    outcomes = sorted(
        "booked" if "Session Booked!" in texts(fake, person.id) else "taken" for person in people
    )
    assert outcomes == ["booked", "taken"]
    loser = next(p for p in people if "Session Booked!" not in texts(fake, p.id))
    assert "This time is no longer available. Select another." in texts(fake, loser.id)
    async with pg() as session:
        assert len(list(await session.scalars(select(Session.id)))) == 1
        processed = set(await session.scalars(select(ProcessedUpdate.update_id)))
    assert len(processed) == 2 * 5
