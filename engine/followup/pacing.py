"""A bot's overall send rate, shared by every outbox worker of the bot in every process.

Each worker used to pace itself, so two workers sent a Telegram bot's reminders at 60 a second
against the 30 Telegram allows. A `SharedPacer` takes each send's turn from the bot's bucket in
the database (storage/send_rate.py): one short statement per message, answered "go now" or "go
in N seconds", and a 429's `retry_after` is written there too, so it holds every worker.

- **One round trip per message, no batches.** At 30 messages a second a short upsert per send
  costs well under a millisecond of database time each. Taking several turns at once would save
  round trips but promise turns to one worker that others could have used, and a worker that
  stops mid-batch would leave them unused; the turn is taken in its own transaction, never
  inside another one nor across the send, so workers wait on each other only for that statement.
- **Per-chat spacing stays in the process.** Two workers send to the same chat at once only when
  one person has two messages due together and different workers claimed them: rare, allowed
  by Telegram as a short burst, and answered with a 429 (honoured) at worst. A row per chat
  would be a write per message and a table that grows with every chat, for that rare case.
- **The database away never stops sending.** When a turn cannot be had (unreachable, slow past
  `timeout`, table missing), the pacer logs once and paces this process alone at the
  configured rate for `retry_shared_after` seconds, then asks the database again. Without the
  database a worker can claim and record nothing new anyway, so the excess is bounded by the
  batches already claimed, and a platform's 429 still pauses them. Waiting instead would hold
  back sends whose outcome could be recorded as soon as the database returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from engine.followup.senders import RateLimits
from storage.send_rate import Rate, Turn

log = logging.getLogger(__name__)


class SharedRate(Protocol):
    """Turns taken from one bucket per key by every worker (storage.send_rate.SendRates)."""

    async def take(self, key: str, rate: Rate) -> Turn: ...

    async def pause(self, key: str, rate: Rate, seconds: float) -> None: ...


class ChatSpacing:
    """When each chat may next get a message: one per `interval`, tracked in this process."""

    MAX_TRACKED_CHATS = 4096

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}

    def ready_at(self, chat_key: str) -> float:
        return self._next.get(chat_key, float("-inf"))

    def sent(self, chat_key: str, at: float) -> None:
        """A message to `chat_key` goes at `at`: the next waits `interval` after it."""
        self._next[chat_key] = at + self.interval
        if len(self._next) > self.MAX_TRACKED_CHATS:  # forget chats whose gap is over
            self._next = {key: ready for key, ready in self._next.items() if ready > at}


class SharedPacer:
    """One platform's pacing when its overall rate is shared: the turn from the database,
    per-chat spacing and the pause also here, in process (see the module docstring)."""

    def __init__(
        self,
        key: str,
        limits: RateLimits,
        shared: SharedRate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 2.0,
        retry_shared_after: float = 5.0,
    ) -> None:
        assert limits.per_second is not None, "a platform without an overall rate has no bucket"
        self.key = key
        self.rate = Rate(limits.per_second, limits.burst)
        self._shared = shared
        self._chats = ChatSpacing(limits.per_chat_interval)
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._retry_shared_after = retry_shared_after
        self._paused_until = float("-inf")
        self._alone_until = float("-inf")  # pacing without the database until then
        self._next_alone = float("-inf")  # this process's own next turn while alone

    async def wait(self, chat_key: str) -> None:
        """Return when a send to `chat_key` may go, and count it as sent."""
        while True:
            now = self._clock()
            ready = max(self._paused_until, self._chats.ready_at(chat_key))
            if ready > now:
                await self._sleep(ready - now)
                continue
            self._chats.sent(chat_key, now)  # hold the chat while its turn is being taken
            delay = await self._turn()
            start = self._clock() + delay
            self._chats.sent(chat_key, start)
            if delay > 0:
                await self._sleep(delay)
            if self._paused_until <= start:
                return
            # A 429 arrived while this send waited and pauses past its turn: the turn is given
            # up (sending later would crowd the turns after it) and a new one taken after it.

    async def pause(self, seconds: float) -> None:
        """Hold every send of this bot, in every worker, for `seconds` (a 429's retry_after)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        if self._alone():
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._shared.pause(self.key, self.rate, seconds)
        except Exception as error:
            self._go_alone(error)

    async def _turn(self) -> float:
        """Seconds until this send's turn: from the shared bucket, or this process's own."""
        if not self._alone():
            try:
                async with asyncio.timeout(self._timeout):
                    turn = await self._shared.take(self.key, self.rate)
            except Exception as error:  # unreachable, timed out, not migrated: pace alone
                self._go_alone(error)
            else:
                if self._alone_until > float("-inf"):
                    log.info("shared send rate of %s is back in use", self.key)
                    self._alone_until = float("-inf")
                return turn.delay
        now = self._clock()
        start = max(now, self._next_alone)
        self._next_alone = start + 1 / self.rate.per_second
        return start - now

    def _alone(self) -> bool:
        return self._clock() < self._alone_until

    def _go_alone(self, error: BaseException) -> None:
        if self._alone_until == float("-inf"):  # once per outage, not once per message
            log.warning(
                "shared send rate of %s unavailable (%s); pacing this process alone at %g/s, "
                "asking the database again every %g s",
                self.key,
                type(error).__name__,
                self.rate.per_second,
                self._retry_shared_after,
            )
        self._alone_until = self._clock() + self._retry_shared_after
