"""`/metrics`: what one process handled, scraped as Prometheus text and read back with
prometheus_client's own parser. Bookings go through the real PTB Application against the fake
Bot API on real PostgreSQL; reminders through the real worker; 429s come from the fake server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.metrics import METRICS_PATH, Metrics, metrics_routes
from bots.server import ServerSettings, serve, web_app
from bots.slack.client import LONGEST_RETRY_WAIT, make_client
from bots.slack.pacing import Pacer
from bots.slack.settings import SlackSettings
from bots.worker import build_worker
from engine import observe
from engine.chat import flow
from engine.chat.conversation import ConversationService, DatabaseUnavailable
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.jobs import Job, JobKind
from storage.models import ReminderJob
from tests.channels import eml
from tests.factories import add_user, enroll, make_world
from tests.fake_slack import FakeSlack
from tests.fake_telegram import FakeTelegram
from tests.test_flow import book_elsewhere
from tests.test_outbox import FakeTime
from tests.test_reminders import FRIDAY_10, Clock, linked_world
from tests.test_server import healthy, until
from tests.test_telegram import (
    ADA_TG,
    SAM_TG,
    Bot,
    book_to_confirm,
    payload,
    platforms_of,
    settings_for,
    start_bot,
)

Factory = async_sessionmaker[AsyncSession]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
async def bot(pg: Factory) -> AsyncIterator[Bot]:
    """One bot process over PostgreSQL, its Bot API a fake (`bot.fake`)."""
    async with FakeTelegram() as fake:
        running = await start_bot(fake, pg)
        yield running
        await running.app.shutdown()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """A registry of the test's own, subscribed to the engine's reports while the test runs."""
    metrics = Metrics(process=False)
    unsubscribe = metrics.subscribe()
    yield metrics
    unsubscribe()


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(factory: Factory | None, metrics: Metrics) -> Samples:
    async with TestClient(TestServer(web_app(metrics_routes(factory, metrics)))) as client:
        response = await client.get(METRICS_PATH)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await response.text())


async def outbox_by_status(db: Factory) -> dict[str, int]:
    async with db() as session:
        rows = await session.execute(
            select(ReminderJob.status, func.count()).group_by(ReminderJob.status)
        )
        return {str(status): int(count) for status, count in rows.all()}


# --- the engine's report hook, pure -------------------------------------------------------------
def test_event_kinds_are_the_event_class_in_snake_case() -> None:
    assert observe.event_kind(flow.Press("1|s|2")) == "press"
    assert observe.event_kind(flow.MySessions()) == "my_sessions"
    assert observe.event_kind(flow.StaffHome()) == "staff_home"
    assert observe.event_kind(flow.Start(course_id=1)) == "start"


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        (None, ("booked", "none")),
        ("slot_taken", ("taken", "slot_taken")),
        ("student_conflict", ("refused", "student_conflict")),
        ("not_enrolled", ("refused", "not_enrolled")),
        ("no_sessions_left", ("refused", "no_sessions_left")),
        ("st_unavailable", ("refused", "st_unavailable")),
        ("not_reschedulable", ("refused", "not_reschedulable")),
        ("error", ("error", "error")),
    ],
)
def test_each_booking_outcome_has_its_metric_outcome(
    error_type: str | None, expected: tuple[str, str]
) -> None:
    assert observe.booking_outcome(error_type) == expected
    assert expected[0] in observe.BOOKING_OUTCOMES


def test_job_kinds_collapse_to_their_family_so_labels_stay_few() -> None:
    assert observe.job_family("student:before_24h") == "reminder"
    assert observe.job_family("email:before_1h") == "reminder_email"
    assert observe.job_family("cancelled:chat:12345") == "cancelled_chat"
    assert observe.job_family("teacher:booked") == "booked"
    assert observe.job_family("anything else") == "unknown"


def test_an_observer_that_raises_is_logged_and_the_others_still_count(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: observe.Observation) -> None:
        raise RuntimeError("observer bug")

    with observe.subscribed(broken), caplog.at_level(logging.ERROR, "engine.observe"):
        observe.report(observe.PlatformCallFailed("slack", "timeout", "chat.postMessage"))
    assert "observer" in caplog.text and "PlatformCallFailed" in caplog.text
    labels = {"platform": "slack", "kind": "timeout", "method": "chat.postMessage"}
    assert metrics.registry.get_sample_value("bookbot_platform_errors_total", labels) == 1


# --- through the real front end and worker ------------------------------------------------------
async def test_a_telegram_booking_moves_the_update_booking_and_outbox_metrics(
    bot: Bot, pg: Factory, metrics: Metrics
) -> None:
    fake = bot.fake
    world = await make_world(pg)
    sam = fake.user(SAM_TG, "Sam")
    await book_to_confirm(bot, sam, world)  # /start, then three presses
    book = sam.press("Book Session")
    await bot.deliver(book)
    await bot.deliver(book)  # Telegram redelivers it: a no-op, counted as such

    samples = await scrape(pg, metrics)
    press = {"platform": "telegram", "kind": "press"}
    assert value(samples, "bookbot_updates_total", **press, outcome="ok") == 4
    assert value(samples, "bookbot_updates_total", **press, outcome="duplicate") == 1
    assert value(samples, "bookbot_updates_total", platform="telegram", kind="start", outcome="ok")
    assert value(samples, "bookbot_update_duration_seconds_count", **press) == 5
    assert value(samples, "bookbot_update_duration_seconds_sum", **press) > 0
    assert value(samples, "bookbot_update_duration_seconds_bucket", **press, le="+Inf") == 5
    booked = {"platform": "telegram", "outcome": "booked", "reason": "none"}
    assert value(samples, "bookbot_bookings_total", **booked) == 1

    rows = await outbox_by_status(pg)
    assert rows.get("pending", 0) > 0  # the booking queued its reminders and notices
    for status in ("pending", "sent", "skipped", "failed", "cancelled"):
        assert value(samples, "bookbot_outbox_rows", status=status) == rows.get(status, 0)
    assert value(samples, "bookbot_outbox_query_up") == 1


async def test_a_slot_taken_meanwhile_is_counted_as_taken(
    bot: Bot, pg: Factory, metrics: Metrics
) -> None:
    fake = bot.fake
    world = await make_world(pg)
    async with pg() as session, session.begin():
        rita = await add_user(session, "Rita Rival")
        await enroll(session, rita, world.course)
    sam = fake.user(SAM_TG, "Sam")
    await book_to_confirm(bot, sam, world)
    await book_elsewhere(pg, world, rita.id, world.teachers[0].id, FRIDAY_10)
    await bot.press(sam, "Book Session")

    samples = await scrape(None, metrics)
    taken = {"platform": "telegram", "outcome": "taken", "reason": "slot_taken"}
    assert value(samples, "bookbot_bookings_total", **taken) == 1
    assert value(samples, "bookbot_bookings_total", platform="telegram", outcome="booked") == 0


async def test_a_worker_pass_observes_reminder_lag_and_counts_the_telegram_429(
    bot: Bot, pg: Factory, tmp_path: Path, metrics: Metrics
) -> None:
    fake = bot.fake
    await linked_world(pg)
    fake.user(SAM_TG, "Sam")
    fake.user(ADA_TG, "Ada")
    settings = settings_for(fake)
    now = FRIDAY_10 - timedelta(minutes=60) + timedelta(seconds=90)  # every job is due
    worker = build_worker(
        settings, pg, platforms_of(bot.app, fake), Clock(now), email=eml(tmp_path, settings)
    )
    fake.fail_next("sendMessage", status=429, retry_after=1)
    assert await worker.run_once() >= 1

    async with pg() as session:
        sent = (
            await session.execute(
                select(ReminderJob.kind, ReminderJob.due_at, ReminderJob.sent_at).where(
                    ReminderJob.status == "sent"
                )
            )
        ).all()
    lags = [
        (sent_at - due_at).total_seconds()
        for kind, due_at, sent_at in sent
        if Job.parse(kind).kind is JobKind.REMINDER
    ]
    assert lags and 90.0 in lags  # the 1-hour reminder went out 90 s late

    samples = await scrape(pg, metrics)
    count = value(samples, "bookbot_reminder_lag_seconds_count", kind="reminder")
    assert count == len(lags)
    total = value(samples, "bookbot_reminder_lag_seconds_sum", kind="reminder")
    assert total == pytest.approx(sum(lags))
    assert value(samples, "bookbot_reminder_lag_seconds_bucket", kind="reminder", le="120.0") >= 1
    limited = {"platform": "telegram", "kind": "rate_limited", "method": "sendMessage"}
    assert value(samples, "bookbot_platform_errors_total", **limited) == 1
    rows = await outbox_by_status(pg)
    assert value(samples, "bookbot_outbox_rows", status="sent") == rows["sent"] == len(sent)


async def test_a_429_on_a_reply_to_a_press_is_counted_and_the_reply_still_arrives(
    bot: Bot, pg: Factory, metrics: Metrics
) -> None:
    fake = bot.fake
    world = await make_world(pg)
    sam = fake.user(SAM_TG, "Sam")
    await bot.say(sam, f"/start {payload(world)}")
    fake.fail_next("answerCallbackQuery", status=429, retry_after=1)
    await bot.press(sam, "Book with Ada Lovelace")
    assert fake.unanswered_callback_queries() == []  # retried after the pause (retries.py)

    samples = await scrape(None, metrics)
    limited = {"platform": "telegram", "kind": "rate_limited", "method": "answerCallbackQuery"}
    assert value(samples, "bookbot_platform_errors_total", **limited) == 1
    press = {"platform": "telegram", "kind": "press", "outcome": "ok"}
    assert value(samples, "bookbot_updates_total", **press) == 1


async def test_slack_429s_retried_or_raised_and_api_errors_are_counted(metrics: Metrics) -> None:
    """Every Slack call goes through PacedWebClient: a 429 that is waited out and retried, a
    429 too long to wait (raised), and an API error each count once."""
    async with FakeSlack() as fake:
        fake.add_user("U1", "ada")
        time = FakeTime()
        slack = SlackSettings(bot_token=fake.token, api_url=fake.base_url)
        client = make_client(slack, pacer=Pacer(clock=time, sleep=time.sleep))
        dm = fake.dm("U1").id
        fake.fail_next("chat.postMessage", status=429, retry_after=1)
        await client.chat_postMessage(channel=dm, text="Reminder")  # retried, then sent
        fake.fail_next("users.info", status=429, retry_after=int(LONGEST_RETRY_WAIT) + 10)
        with pytest.raises(SlackApiError):
            await client.users_info(user="U1")
        fake.fail_next("chat.postMessage", status=200, error="channel_not_found")
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel=dm, text="Reminder")

    samples = await scrape(None, metrics)
    errors = "bookbot_platform_errors_total"
    slack_labels = {"platform": "slack"}
    limited = {**slack_labels, "kind": "rate_limited"}
    assert value(samples, errors, **limited, method="chat.postMessage") == 1
    assert value(samples, errors, **limited, method="users.info") == 1
    assert value(samples, errors, **slack_labels, kind="error", method="chat.postMessage") == 1


# --- a database that does not answer ------------------------------------------------------------
async def test_an_update_the_database_could_not_take_is_counted_with_its_outcome(
    metrics: Metrics,
) -> None:
    engine = make_engine(UNREACHABLE)
    try:
        service = ConversationService(make_sessionmaker(engine), Settings())
        with pytest.raises(DatabaseUnavailable):
            await service.handle(platform="slack", chat_id="D1", user_id=7, event=flow.Cancel())
    finally:
        await engine.dispose()
    samples = await scrape(None, metrics)
    failed = {"platform": "slack", "kind": "cancel", "outcome": "database_unavailable"}
    assert value(samples, "bookbot_updates_total", **failed) == 1


async def test_a_scrape_with_the_database_down_answers_and_logs_one_line(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(UNREACHABLE)
    observe.report(observe.PlatformCallFailed("telegram", "error", "sendMessage"))
    try:
        with caplog.at_level(logging.INFO, "bots.metrics"):
            first = await scrape(make_sessionmaker(engine), metrics)
            second = await scrape(make_sessionmaker(engine), metrics)
    finally:
        await engine.dispose()
    for samples in (first, second):
        assert value(samples, "bookbot_outbox_query_up") == 0
        assert not [key for key in samples if key[0] == "bookbot_outbox_rows"]
        errors = {"platform": "telegram", "kind": "error", "method": "sendMessage"}
        assert value(samples, "bookbot_platform_errors_total", **errors) == 1
    assert len([r for r in caplog.records if r.name == "bots.metrics"]) == 1


async def test_serve_mounts_metrics_with_the_process_registry(
    pg: Factory, tmp_path: Path, unused_tcp_port: int
) -> None:
    settings = Settings()
    stop = asyncio.Event()
    server = ServerSettings(host="127.0.0.1", port=unused_tcp_port, worker=False)
    running = asyncio.create_task(serve(settings, pg, [], eml(tmp_path, settings), server, stop))
    try:
        await until(lambda: healthy(unused_tcp_port))
        async with aiohttp.ClientSession() as client:
            url = f"http://127.0.0.1:{unused_tcp_port}{METRICS_PATH}"
            async with client.get(url) as response:
                assert response.status == 200
                samples = parse(await response.text())
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert value(samples, "bookbot_outbox_query_up") == 1
    assert value(samples, "bookbot_outbox_rows", status="pending") == 0
    assert [key for key in samples if key[0] == "process_resident_memory_bytes"]
