"""Telegram and Slack answering 429 with a retry_after, 500, or not at all (a timeout).

The fake servers inject each fault into one call (`fail_next`, `delay_next`); the real
python-telegram-bot and slack_sdk clients meet it. For the outbox worker's sends on both
platforms: a 429 holds every later send of that method (per channel for Slack's
chat.postMessage, as Slack counts it) until its retry_after has passed, a 500 or a timeout is
retried with backoff, and every reminder arrives once. For chat replies: the reply a person waits
for is retried too, after the 429's retry_after or a short backoff, and arrives.

The one repeat: a timeout after the platform accepted the message (its answer was lost on the
way back). Nobody can tell that from a message that never arrived, so the message is sent again:
the person sees it twice. The tests count it (exactly one per such timeout).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform
from bots.slack.platform import slack_platform
from bots.slack.sender import SlackSender
from bots.slack.settings import SlackSettings
from bots.worker import build_worker
from engine.followup.reminders import WorkerSettings
from engine.settings import Settings
from storage.models import ReminderJob
from tests import test_slack_app
from tests.factories import NOW, make_world
from tests.fake_slack import FakeSlack
from tests.fake_telegram import FakeTelegram
from tests.test_faults_worker import STRONG_SECRET, due_reminders
from tests.test_slack_app import Slack
from tests.test_slack_booking import CORA, Staff, _coordinator, _for_sam
from tests.test_telegram import SAM_TG, payload, platforms_of, start_bot, wizard

Factory = async_sessionmaker[AsyncSession]
Fault = Literal["429", "500", "timeout", "timeout_accepted"]
FAULTS: list[Fault] = ["429", "500", "timeout", "timeout_accepted"]
RETRY_AFTER = 1  # seconds, the 429's
PTB_READ_TIMEOUT = 5.0  # python-telegram-bot's default: the fake holds an answer longer
SLACK_FIRST_BACKOFF = 0.5  # slack_sdk's first wait before a retry, before its jitter
SLACK_TIMEOUT = 1  # seconds; the test's, on the product's client (slack_sdk's default is 30)
CHATS = 3
slack = test_slack_app.slack  # the fixture: the bolt app behind aiohttp, and the fake Slack


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sent:
    """One message as the platform's server got it: where to, when, whether it took effect."""

    chat: str
    at: float
    ok: bool
    status: int


def inject(fake: FakeTelegram | FakeSlack, method: str, fault: Fault, timeout: float) -> None:
    """The next call of `method` meets `fault`; a client that gives up after `timeout` s."""
    if fault == "429":
        fake.fail_next(method, retry_after=RETRY_AFTER)
    elif fault == "500":
        fake.fail_next(method, status=500)
    else:
        fake.delay_next(method, timeout + 2, accepted=fault == "timeout_accepted")


@dataclass
class Side:
    """One platform's fake and what the worker sends on: `method` sends to the chat in `to`."""

    name: str
    fake: FakeTelegram | FakeSlack
    method: str
    to: str
    timeout: float
    platforms: list[Platform]
    chats: list[str]
    accounts: list[str]

    def inject(self, fault: Fault) -> None:
        inject(self.fake, self.method, fault, self.timeout)

    def sends(self) -> list[Sent]:
        return [
            Sent(str(c.params[self.to]), c.at, c.ok, c.status)
            for c in self.fake.calls_to(self.method)
        ]


@asynccontextmanager
async def telegram_side(pg: Factory) -> AsyncIterator[Side]:
    async with FakeTelegram() as fake:
        chats = [str(8200 + n) for n in range(CHATS)]
        for chat in chats:
            fake.user(int(chat))
        bot = await start_bot(fake, pg)
        platforms = platforms_of(bot.app, fake)
        try:
            yield Side(
                "telegram",
                fake,
                "sendMessage",
                "chat_id",
                PTB_READ_TIMEOUT,
                platforms,
                chats,
                chats,
            )
        finally:
            await bot.app.shutdown()


@asynccontextmanager
async def slack_side(pg: Factory) -> AsyncIterator[Side]:
    async with FakeSlack() as fake:
        accounts = [f"U0S{n}" for n in range(CHATS)]
        for account in accounts:
            fake.add_user(account, account.lower())
        chats = [fake.dm(account).id for account in accounts]
        slack = SlackSettings(bot_token=fake.token, api_url=fake.base_url)
        platform = slack_platform(slack, Settings(), pg, lambda: NOW)
        await platform.start(False)
        cast(SlackSender, platform.sender).client.timeout = SLACK_TIMEOUT
        yield Side(
            "slack", fake, "chat.postMessage", "channel", SLACK_TIMEOUT, [platform], chats, accounts
        )


SIDES = {"telegram": telegram_side, "slack": slack_side}


async def jobs(db: Factory) -> dict[int, ReminderJob]:
    async with db() as session:
        return {job.id: job for job in (await session.scalars(select(ReminderJob))).all()}


# A Telegram timeout that never took effect fails the send like a 500 does (both a NetworkError
# for PTB, a plain retry for the worker), and costs PTB's 5 s read timeout: left out.
WORKER_FAULTS = [
    (platform, fault)
    for platform in ("telegram", "slack")
    for fault in FAULTS
    if (platform, fault) != ("telegram", "timeout")
]


@pytest.mark.parametrize(("platform", "fault"), WORKER_FAULTS)
async def test_the_worker_retries_a_fault_paced_and_every_reminder_arrives_once(
    pg: Factory, platform: str, fault: Fault
) -> None:
    async with SIDES[platform](pg) as side:
        due = await due_reminders(pg, side.chats, NOW, side.name, side.accounts)
        clock = Clock(NOW)
        settings = Settings(link_secret=STRONG_SECRET)
        worker = build_worker(settings, pg, side.platforms, clock, email=None)
        side.inject(fault)
        first = side.chats[0]  # its reminder is due first: the first send meets the fault

        await worker.run_once()
        after_first_pass = await jobs(pg)
        faulted = next(job for job in after_first_pass.values() if due[job.id] == first)
        # slack_sdk's retry handlers (bots/slack/client.py) try a 429 and a 500 again at once.
        retried_in_client = side.name == "slack" and fault in ("429", "500")
        if retried_in_client:
            assert faulted.status == "sent"
        else:
            assert faulted.status == "pending" and faulted.last_error
            waited = faulted.due_at - NOW
            if fault == "429":  # rescheduled for when the platform said
                assert waited == timedelta(seconds=RETRY_AFTER)
            else:  # backoff, jitter included
                backoff = WorkerSettings().base_backoff
                assert backoff * (1 - WorkerSettings().jitter) <= waited <= backoff

        clock.now = max(job.due_at for job in after_first_pass.values())
        while await worker.run_once():
            pass

        assert {job.status for job in (await jobs(pg)).values()} == {"sent"}
        sends = side.sends()
        got = Counter(s.chat for s in sends if s.ok)
        assert set(got) == set(side.chats)  # nothing lost
        repeats = sum(count - 1 for count in got.values())
        # The documented repeat: accepted by the platform, answer lost, sent again.
        assert repeats == (1 if fault == "timeout_accepted" else 0), got
        if retried_in_client and fault == "500":
            (failed,) = [s for s in sends if s.status == 500]
            retry = next(s for s in sends if s.chat == failed.chat and s.at > failed.at)
            assert retry.at - failed.at >= SLACK_FIRST_BACKOFF
        if fault == "429":
            (limited,) = [s for s in sends if s.status == 429]
            held = [s for s in sends if s.at > limited.at]
            if side.name == "slack":  # chat.postMessage is limited per channel
                held = [s for s in held if s.chat == limited.chat]
            assert held and all(s.at >= limited.at + RETRY_AFTER for s in held)


# --- chat replies ------------------------------------------------------------------------------


# Each Telegram timeout costs PTB's read timeout (5 s), so only the accepted ones are here: the
# sent message's (the repeat) and the press answer's (retried, refused as too old, taken as
# done). One that never took effect is a NetworkError like a 500, retried the same way.
CHAT_FAULTS: list[tuple[str, Fault]] = [
    *(("sendMessage", fault) for fault in FAULTS if fault != "timeout"),
    ("editMessageText", "429"),
    ("editMessageText", "500"),
    ("answerCallbackQuery", "timeout_accepted"),
]


@pytest.mark.parametrize(("method", "fault"), CHAT_FAULTS)
async def test_a_telegram_chat_reply_is_retried_paced_and_arrives(
    pg: Factory, method: str, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    """A student starts from a link (the bot sends the wizard) or presses a day (the bot edits
    it); that one call meets the fault, and the screen still arrives."""
    world = await make_world(pg)
    async with FakeTelegram() as fake:
        bot = await start_bot(fake, pg)
        try:
            sam = fake.user(SAM_TG)
            link = payload(world, teacher_id=world.teachers[0].id)
            pressing = method != "sendMessage"
            if pressing:
                await bot.say(sam, f"/start {link}")
            inject(fake, method, fault, PTB_READ_TIMEOUT)
            caplog.set_level(logging.INFO)
            if pressing:
                await bot.press(sam, "27")
                shows = "Step 3 of 4"
            else:
                await bot.say(sam, f"/start {link}")
                shows = "Step 2 of 4"
        finally:
            await bot.app.shutdown()
        assert shows in wizard(fake, SAM_TG), fake.transcript()
        calls = fake.calls_to(method)
        faulted = calls[-2] if method == "editMessageText" else calls[0]
        assert not faulted.ok or fault == "timeout_accepted"
        later = [c for c in fake.calls if c.at > faulted.at]
        if fault == "429":
            assert later and all(c.at >= faulted.at + RETRY_AFTER for c in later)
        texts = Counter(m.text for m in fake.messages(SAM_TG))
        repeats = sum(n - 1 for n in texts.values())
        assert repeats == (1 if fault == "timeout_accepted" and method == "sendMessage" else 0)
        assert fake.unanswered_callback_queries() == []
    _no_trace(caplog)


def _no_trace(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of ours logged at ERROR: a fault that was retried away is not an error."""
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("bots", "engine", "storage")
    ]
    assert errors == []


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_a_slack_chat_reply_is_retried_paced_and_arrives(
    slack: Slack, pg: Factory, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    """A coordinator's click redraws the booking modal (views.update); that call meets the
    fault, is tried again (after the Retry-After, or slack_sdk's short backoff), and the next
    step shows. A timeout here is the worker's test: the same client, the same handlers."""
    world = await make_world(pg)
    await _coordinator(pg, slack.fake, CORA, "Cora Coordinator")
    staff = Staff(slack, CORA)
    await _for_sam(staff, world)
    inject(slack.fake, "views.update", fault, SLACK_TIMEOUT)
    caplog.set_level(logging.INFO)
    assert await staff.click("Book with Ada Lovelace") == 200
    *_, failed, retried = slack.fake.calls_to("views.update")
    assert (failed.ok, retried.ok) == (False, True), slack.fake.method_log()
    waited = RETRY_AFTER if fault == "429" else SLACK_FIRST_BACKOFF
    assert retried.at - failed.at >= waited
    assert any(
        e.get("type") == "datepicker" for b in staff.view["blocks"] for e in b.get("elements", [])
    )
    _no_trace(caplog)
