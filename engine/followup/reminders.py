"""The reminder worker: send each due outbox job once, however many workers run.

A pass claims a batch under a lease in one short transaction, sends outside any transaction (a
slow platform must not hold row locks), then records each outcome in its own transaction, fenced
by the claim's attempt number so that a worker whose lease ran out cannot overwrite the worker
that re-claimed the job. A worker killed mid-batch loses nothing: its unfinished jobs become
claimable again when the lease expires. The one unavoidable duplicate is a message that went out
just before its worker died, before the outcome was written; cancellation itself still writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from engine import observe
from engine.clock import utc_now
from engine.followup.housekeeping import Housekeeping
from engine.followup.pacing import ChatSpacing, SharedPacer, SharedRate
from engine.followup.senders import RateLimits
from storage.db import is_unavailable
from storage.outbox import ClaimedJob
from storage.uow import Units, UnitsLike

log = logging.getLogger(__name__)

__all__ = [
    "ClaimedJob",
    "JobHandler",
    "Outcome",
    "Pacer",
    "Pacers",
    "Retry",
    "Sent",
    "Skip",
    "Worker",
    "WorkerSettings",
    "backoff",
    "error_summary",
    "utc_now",
]


@dataclass(frozen=True)
class Sent:
    """The reminder reached the platform."""


@dataclass(frozen=True)
class Skip:
    """Nothing to send any more (session cancelled or moved, reminders off, no linked chat)."""

    reason: str


@dataclass(frozen=True)
class Retry:
    """Try again later: `after` is the platform's retry_after (HTTP 429); None means backoff."""

    after: timedelta | None
    error: str


Outcome = Sent | Skip | Retry


class JobHandler(Protocol):
    """Sends one reminder; checks the session's current state first, as it may have changed."""

    async def __call__(self, job: ClaimedJob, now: datetime) -> Outcome: ...


@dataclass(frozen=True)
class WorkerSettings:
    batch: int = 50
    lease: timedelta = timedelta(minutes=2)
    max_attempts: int = 8
    base_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)
    idle_sleep: float = 2.0
    jitter: float = 0.2  # a retry waits up to this fraction less than the plain backoff


def backoff(
    attempts: int, settings: WorkerSettings, rand: Callable[[], float] = random.random
) -> timedelta:
    """Doubling delays, capped, with jitter so that jobs failing together do not retry together."""
    exponent = min(max(attempts - 1, 0), 40)
    delay = min(settings.max_backoff, settings.base_backoff * (1 << exponent))
    return delay * (1 - settings.jitter * rand())


_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def error_summary(error: BaseException) -> str:
    """What logs and `last_error` may keep of an error: its class and codes, never its text.

    Error text quotes whatever failed: an e-mail address, a name, a note, a platform's reply.
    The class, an HTTP status, a provider's error code and retry_after say enough to diagnose.
    """
    parts = [type(error).__name__]
    for name in ("status", "error_type", "retry_after", "permanent"):
        value = getattr(error, name, None)
        if isinstance(value, bool):
            parts += [name] if value else []
        elif isinstance(value, int | float) or (isinstance(value, str) and _CODE.fullmatch(value)):
            parts.append(f"{name}={value}")
    return " ".join(parts)


def _frames(error: BaseException) -> str:
    """Where an error was raised, without its message (which may carry personal data)."""
    return "".join(traceback.format_tb(error.__traceback__)).rstrip()


def session_chat_key(job: ClaimedJob) -> str:
    """Pacing key when the recipient's chat is not known before sending: one per session."""
    return f"session:{job.session_id}"


class Pacer:
    """One platform's rate limits in process: `per_second` sends overall (None: no overall
    limit), one per chat per interval.

    Telegram allows about 30 messages a second per bot and one a second per chat; a 429 carries
    `retry_after`, which `pause` applies to every send of that platform, as Telegram expects.
    Alone it paces one process; `Pacers` with a shared rate paces every worker of the bot
    together (engine/followup/pacing.py).
    """

    def __init__(
        self,
        per_second: float | None = 30.0,
        per_chat_interval: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        limits = RateLimits(per_second, per_chat_interval)  # validates
        self._gap = 0.0 if limits.per_second is None else 1.0 / limits.per_second
        self._chats = ChatSpacing(per_chat_interval)
        self._clock = clock
        self._sleep = sleep
        self._next_any = float("-inf")
        self._paused_until = float("-inf")

    async def wait(self, chat_key: str) -> None:
        """Return when a send to `chat_key` is allowed, and count it as sent."""
        while True:
            now = self._clock()
            start = max(self._paused_until, self._next_any, self._chats.ready_at(chat_key))
            if start <= now:
                self._next_any = now + self._gap
                self._chats.sent(chat_key, now)
                return
            await self._sleep(start - now)  # then look again: a pause or another send may win

    def pause(self, seconds: float) -> None:
        """Hold every send for `seconds` (a 429's retry_after); never shortens a longer pause."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)


class Pacers:
    """A pacer per platform: each keeps its own rates, and a 429 from one platform pauses only
    that platform's sends (a Slack Retry-After must not hold Telegram reminders back).

    With `shared` (the database's buckets), a platform's overall rate is shared by every worker
    of the bot, in this process and others (a `SharedPacer`); without it, or for a platform with
    no overall rate, each process paces alone (a `Pacer`).
    """

    def __init__(
        self,
        limits: Mapping[str, RateLimits],
        *,
        default: RateLimits | None = None,
        shared: SharedRate | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limits = dict(limits)
        self._default = default or RateLimits()
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._pacers: dict[str, Pacer | SharedPacer] = {}

    def pacer(self, platform: str) -> Pacer | SharedPacer:
        """The platform's own pacer; one with the default limits for a platform never declared."""
        found = self._pacers.get(platform)
        if found is None:
            limits = self._limits.get(platform, self._default)
            if self._shared is not None and limits.per_second is not None:
                found = SharedPacer(
                    platform, limits, self._shared, clock=self._clock, sleep=self._sleep
                )
            else:
                found = Pacer(
                    limits.per_second,
                    limits.per_chat_interval,
                    clock=self._clock,
                    sleep=self._sleep,
                )
            self._pacers[platform] = found
        return found

    async def wait(self, platform: str, chat_id: str) -> None:
        await self.pacer(platform).wait(chat_id)

    async def pause(self, platform: str, seconds: float) -> None:
        """A 429 from `platform`: its sends wait `seconds`, in every worker when shared."""
        pacer = self.pacer(platform)
        if isinstance(pacer, SharedPacer):
            await pacer.pause(seconds)
        else:
            pacer.pause(seconds)


class Worker:
    """Claims due reminder jobs and hands each to `handler`; run several for throughput."""

    def __init__(
        self,
        units: UnitsLike,
        handler: JobHandler,
        settings: WorkerSettings,
        clock: Callable[[], datetime] = utc_now,
        pacer: Pacer | None = None,
        *,
        chat_key: Callable[[ClaimedJob], str] = session_chat_key,
        housekeeping: Housekeeping | None = None,
    ) -> None:
        self.units = Units.of(units)
        self.handler = handler
        self.settings = settings
        self.clock = clock
        self.pacer = pacer
        self.chat_key = chat_key
        self.housekeeping = housekeeping
        self._stop: asyncio.Event | None = None
        # When the loop last began a pass (time.monotonic); None before the first.
        self.heartbeat: float | None = None

    def alive(self, now: float) -> bool:
        """The loop began a pass within two polling periods (plus a pass's own lease slack)."""
        return self.heartbeat is not None and now - self.heartbeat <= 2 * max(
            self.settings.idle_sleep, 1.0
        )

    async def run_once(self) -> int:
        """One pass: claim a batch, handle it, record each outcome. Returns the jobs finished."""
        claimed_at = self.clock()
        async with self.units() as uow:
            jobs = await uow.outbox.claim_due(
                now=claimed_at, limit=self.settings.batch, lease=self.settings.lease
            )
        # Past half the lease, stop starting sends: another worker may soon take these jobs.
        deadline = claimed_at + self.settings.lease / 2
        for done, job in enumerate(jobs):
            if job.attempts > self.settings.max_attempts:  # its workers kept dying or stalling
                await self._record(job, Retry(None, "lease expired on every attempt"))
                continue
            if not self._may_start(deadline):
                await self._release(jobs[done:])
                return done
            if self.pacer is not None:
                await self.pacer.wait(self.chat_key(job))
                if not self._may_start(deadline):  # the pacer may have held us a long time
                    await self._release(jobs[done:])
                    return done
            outcome = await self._handle(job)
            await self._record_even_if_cancelled(job, outcome)
        return len(jobs)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop`; an idle or failed pass sleeps `idle_sleep` first.

        Housekeeping (pruning old de-duplication rows) runs between passes when it is due.
        """
        self._stop = stop
        try:
            while not stop.is_set():
                self.heartbeat = time.monotonic()  # readiness: the loop is turning
                try:
                    if self.housekeeping is not None:
                        await self.housekeeping.prune_if_due(self.clock())
                    finished = await self.run_once()
                except Exception as error:  # database away, say: keep the worker alive
                    if is_unavailable(error):  # one line per pass, not a page of traceback
                        log.warning(
                            "reminder pass failed: database unavailable (%s); next try in %.1f s",
                            error_summary(error),
                            self.settings.idle_sleep,
                        )
                    else:
                        log.exception(
                            "reminder pass failed; next try in %.1f s", self.settings.idle_sleep
                        )
                    finished = 0
                if finished == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.idle_sleep)
        finally:
            self._stop = None

    def _may_start(self, deadline: datetime) -> bool:
        return self.clock() < deadline and not (self._stop is not None and self._stop.is_set())

    async def _handle(self, job: ClaimedJob) -> Outcome:
        try:
            return await self.handler(job, self.clock())
        except Exception as error:  # a bug or an outage in one send must not stop the worker
            summary = error_summary(error)
            log.error(
                "reminder job %s (%s) raised %s; retrying with backoff\n%s",
                job.id,
                job.kind,
                summary,
                _frames(error),
            )
            return Retry(None, summary)

    async def _record_even_if_cancelled(self, job: ClaimedJob, outcome: Outcome) -> None:
        """The message is out: write that down before a cancellation stops the worker."""
        write = asyncio.ensure_future(self._record(job, outcome))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            try:
                await write
            except Exception:
                log.exception("could not record the outcome of reminder job %s", job.id)
            raise

    async def _record(self, job: ClaimedJob, outcome: Outcome) -> None:
        now = self.clock()
        fence = job.attempts
        if isinstance(outcome, Sent):  # it is out, whatever the write below meets
            lag = max((now - job.due_at).total_seconds(), 0.0)
            observe.report(observe.MessageSent(observe.job_family(job.kind), lag))
        async with self.units() as uow:
            if isinstance(outcome, Sent):
                applied = await uow.outbox.mark_sent(job.id, now=now, attempt=fence)
            elif isinstance(outcome, Skip):
                applied = await uow.outbox.mark_skipped(
                    job.id, reason=outcome.reason, attempt=fence
                )
            elif job.attempts >= self.settings.max_attempts:
                applied = await uow.outbox.mark_failed(job.id, error=outcome.error, attempt=fence)
                log.error(
                    "reminder job %s (%s, session %s) failed after %d attempts: %s",
                    job.id,
                    job.kind,
                    job.session_id,
                    job.attempts,
                    outcome.error,
                )
            else:
                if outcome.after is not None and self.pacer is not None:
                    self.pacer.pause(outcome.after.total_seconds())
                delay = (
                    max(outcome.after, timedelta(0))
                    if outcome.after is not None
                    else backoff(job.attempts, self.settings)
                )
                applied = await uow.outbox.retry_later(
                    job.id, at=now + delay, error=outcome.error, attempt=fence
                )
        if not applied:
            log.warning(
                "reminder job %s was cancelled or re-claimed meanwhile; %s not recorded",
                job.id,
                type(outcome).__name__,
            )

    async def _release(self, jobs: Sequence[ClaimedJob]) -> None:
        async with self.units() as uow:
            for job in jobs:
                await uow.outbox.release(job.id, attempt=job.attempts)
