"""Logs: no secret in any log line, and people only by id, never by name, note or address.

The real PTB client polls and the worker sends through the fake Bot API with a known token; every
record at DEBUG goes through `bots.logs.configure_logging`'s handler into a buffer we search.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.logs import QUIET, REDACTED, configure_logging
from bots.telegram.app import build_application
from bots.worker import build_worker
from engine import observe
from engine.booking import Booked, BookingFailed, BookingRequest, book_session
from storage.models import ReminderJob, User
from storage.uow import UnitOfWork
from tests.channels import eml
from tests.factories import NOW, make_world
from tests.fake_telegram import FakeTelegram
from tests.test_reminders import FRIDAY_10, Clock, linked_world
from tests.test_telegram import (
    SAM_TG,
    WEBHOOK_SECRET,
    Bot,
    book_to_confirm,
    payload,
    platforms_of,
    settings_for,
    telegram_settings_for,
    texts,
)

Factory = async_sessionmaker[AsyncSession]
TOKEN = "424242:Known-test-token_never-in-a-log"
NOTE = "Recognisable note: my dyslexia assessment QX7731"
ADDRESS = "quentin recognisable@example.edu"  # the space makes it an invalid address
NAME = "Quentin Recognisable"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {handler: list(handler.filters) for handler in handlers}
    names = [*QUIET, "telegram"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for handler, kept in filters.items():
        handler.filters[:] = kept
    for name, kept_level in levels.items():
        logging.getLogger(name).setLevel(kept_level)


@pytest.fixture
async def fake_with_known_token() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


def test_configure_logging_quiets_the_http_client_that_logs_request_urls(
    restore_logging: None,
) -> None:
    configure_logging(settings_for(FakeTelegram(token=TOKEN)), level=logging.INFO)
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("telegram.ext.ExtBot").getEffectiveLevel() >= logging.INFO


async def test_polling_the_webhook_call_and_the_worker_never_log_the_token_or_the_secret(
    fake_with_known_token: FakeTelegram, pg: Factory, tmp_path: Path, restore_logging: None
) -> None:
    fake = fake_with_known_token
    settings = settings_for(fake)
    telegram = telegram_settings_for(fake)
    logs = io.StringIO()
    configure_logging(settings, level=logging.DEBUG, stream=logs, secrets=telegram.secrets())
    for name in [*QUIET, "telegram"]:  # as if someone turned every logger up: redaction holds
        logging.getLogger(name).setLevel(logging.DEBUG)

    world, _ = await linked_world(pg)
    app = build_application(settings, telegram, pg, webhook=False, clock=lambda: NOW)
    fake.user(SAM_TG)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        fake.user(SAM_TG).send_text(f"/start {payload(world)}")
        await fake.wait_until(lambda: "Step 1 of 4" in texts(fake, SAM_TG))
        await app.updater.stop()
        await app.bot.set_webhook("https://bots.example.edu/telegram", secret_token=WEBHOOK_SECRET)
        worker = build_worker(
            settings, pg, platforms_of(app, fake), Clock(NOW), email=eml(tmp_path, settings)
        )
        assert await worker.run_once() >= 1
        try:
            raise RuntimeError(f"GET {telegram.api_url}{TOKEN}/getMe failed")
        except RuntimeError:
            logging.getLogger("some.child.logger").exception("request to %s", quote(TOKEN))
        await app.stop()

    written = logs.getvalue()
    assert "HTTP Request" in written and "setWebhook" in written  # the calls were logged...
    assert REDACTED in written  # ...with the secrets taken out
    secret_half = TOKEN.split(":", 1)[1]
    for secret in (TOKEN, quote(TOKEN, safe=""), secret_half, WEBHOOK_SECRET):
        assert secret not in written


async def test_a_failing_booking_and_a_failing_email_log_no_note_name_or_address(
    pg: Factory, tmp_path: Path, restore_logging: None
) -> None:
    settings = settings_for(FakeTelegram(token=TOKEN))
    logs = io.StringIO()
    configure_logging(settings, level=logging.DEBUG, stream=logs)
    world = await make_world(pg)
    async with pg() as session, session.begin():
        await session.execute(
            update(User).where(User.id == world.student.id).values(name=NAME, email=ADDRESS)
        )
    request = BookingRequest(
        world.course.id,
        world.student.id,
        world.teachers[0].id,
        FRIDAY_10,
        FRIDAY_10 + timedelta(hours=1),
        True,
        NOTE,
        "telegram",
    )
    offsets = [timedelta(hours=24)]

    async with pg() as session, session.begin():
        await session.execute(
            text(
                "CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'sessions are closed today'; END $$"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions "
                "FOR EACH ROW EXECUTE FUNCTION refuse_sessions()"
            )
        )
    try:
        async with pg() as session, session.begin():
            failed = await book_session(
                UnitOfWork.over(session), request, reminder_offsets=offsets, now=NOW
            )
        assert failed == BookingFailed()
    finally:
        async with pg() as session, session.begin():
            await session.execute(text("DROP TRIGGER refuse_sessions ON sessions"))
            await session.execute(text("DROP FUNCTION refuse_sessions()"))

    async with pg() as session, session.begin():
        booked = await book_session(
            UnitOfWork.over(session), request, reminder_offsets=offsets, now=NOW
        )
    assert isinstance(booked, Booked)
    worker = build_worker(settings, pg, [], Clock(NOW), email=eml(tmp_path, settings))
    await worker.run_once()
    async with pg() as session:
        errors = [e for e in await session.scalars(select(ReminderJob.last_error)) if e]

    written = logs.getvalue()
    assert "booking transaction failed" in written
    assert "reminder job" in written and errors  # the e-mail failed, and said so
    for personal in (NOTE, "QX7731", ADDRESS, NAME):
        assert personal not in written
        assert not [e for e in errors if personal in e]


async def test_the_slack_app_at_debug_logs_no_name_address_note_or_token(
    pg: Factory, restore_logging: None
) -> None:
    """A coordinator books for a student with a note through the real bolt app and slack_sdk
    client at DEBUG: their bodies (users.info, the modals) never reach the log."""
    from bots.slack import blocks as sb
    from engine.chat import messages as m
    from tests.test_slack_app import running_app
    from tests.test_slack_booking import CORA, Staff, _coordinator, _for_sam, _to_confirm

    logs = io.StringIO()
    async with running_app(pg) as slack:
        settings = settings_for(FakeTelegram(token=TOKEN))
        configure_logging(settings, level=logging.DEBUG, stream=logs, secrets=[slack.fake.token])
        world = await make_world(pg)
        await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
        staff = Staff(slack, CORA)
        await _for_sam(staff, world)
        await _to_confirm(staff)
        await staff.click(m.ADD_NOTE)
        await staff.submit({sb.NOTE_ACTION: NOTE})
        await staff.click(m.BOOK_SESSION)
        assert m.SUCCESS_TITLE in staff.text()
    written = logs.getvalue()

    for private in (
        NOTE,
        "Sam Student",
        "sam.student@example.edu",
        "Cora Coordinator",
        slack.fake.token,
    ):
        assert private not in written, private


# --- LOG_FORMAT=json: one JSON object a line ----------------------------------------------------
def json_lines(written: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in written.splitlines()]


async def test_json_logs_give_one_line_per_update_with_its_fields_and_no_personal_data(
    fake_with_known_token: FakeTelegram, pg: Factory, restore_logging: None
) -> None:
    fake = fake_with_known_token
    settings = settings_for(fake).model_copy(update={"log_format": "json"})
    telegram = telegram_settings_for(fake)
    logs = io.StringIO()
    configure_logging(settings, level=logging.INFO, stream=logs, secrets=telegram.secrets())
    world = await make_world(pg)
    address = "quentin.recognisable@example.edu"  # a valid one: the invite carries it
    async with pg() as session, session.begin():
        await session.execute(
            update(User).where(User.id == world.student.id).values(name=NAME, email=address)
        )
    app = build_application(settings, telegram, pg, webhook=True, clock=lambda: NOW)
    await app.initialize()
    try:
        bot = Bot(app, fake)
        sam = fake.user(SAM_TG, "Sam")
        await book_to_confirm(bot, sam, world)
        await bot.press(sam, "Add a note")
        await bot.say(sam, NOTE)
        await bot.press(sam, "Book Session")
    finally:
        await app.shutdown()

    written = logs.getvalue()
    lines = json_lines(written)  # every line is JSON, whoever logged it
    updates = [line for line in lines if line["logger"] == "bookbot.updates"]
    assert [(u["kind"], u["step_before"], u["step_after"]) for u in updates] == [
        ("start", "idle", "choose_st"),
        ("press", "choose_st", "choose_date"),
        ("press", "choose_date", "choose_time"),
        ("press", "choose_time", "confirm"),
        ("press", "confirm", "note"),
        ("text", "note", "confirm"),
        ("press", "confirm", "success"),  # one update: the loading step and the booking
    ]
    for line in updates:
        assert line["platform"] == "telegram" and line["outcome"] == "ok"
        assert line["user_id"] == world.student.id and line["level"] == "INFO"
        assert isinstance(line["milliseconds"], float) and line["milliseconds"] >= 0
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
        assert "telegram" in line["message"]
    assert "Session Booked!" in texts(fake, SAM_TG)
    for private in (NOTE, "QX7731", NAME, address, "Ada Lovelace", TOKEN, TOKEN.split(":")[1]):
        assert private not in written


def test_json_logs_are_redacted_in_the_message_the_fields_and_the_traceback(
    restore_logging: None,
) -> None:
    settings = settings_for(FakeTelegram(token=TOKEN)).model_copy(update={"log_format": "json"})
    logs = io.StringIO()
    configure_logging(settings, level=logging.INFO, stream=logs, secrets=[TOKEN])
    url = f"https://api.telegram.org/bot{TOKEN}/getMe"
    try:
        raise RuntimeError(f"GET {url} failed")
    except RuntimeError:
        logging.getLogger("some.child").exception("calling %s", url, extra={"url": url, "n": 3})

    (line,) = json_lines(logs.getvalue())
    assert TOKEN not in logs.getvalue()
    assert line["message"] == f"calling https://api.telegram.org/bot{REDACTED}/getMe"
    assert line["url"] == f"https://api.telegram.org/bot{REDACTED}/getMe" and line["n"] == 3
    assert REDACTED in line["exception"] and "RuntimeError" in line["exception"]
    assert (line["level"], line["logger"]) == ("ERROR", "some.child")


def test_text_is_the_default_format_and_says_the_same_in_words(restore_logging: None) -> None:
    logs = io.StringIO()
    configure_logging(settings_for(FakeTelegram(token=TOKEN)), level=logging.INFO, stream=logs)
    observe.update_handled(
        observe.UpdateHandled("slack", "press", "confirm", "success", "ok", 12.5, 42)
    )
    written = logs.getvalue()
    assert "INFO bookbot.updates: slack press by user 42: confirm -> success, ok in 12.5 ms" in (
        written
    )
    assert not written.startswith("{")


def test_a_bad_address_error_does_not_carry_the_address() -> None:
    """Its traceback is logged by the front ends' error handlers: no personal data in it."""
    from engine.addresses import check_address

    with pytest.raises(ValueError) as raised:
        check_address("Ada Lovelace <ada@example.edu>")
    assert "ada" not in str(raised.value).lower()
