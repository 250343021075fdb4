"""The bot's Bot API calls paced and retried: a chat reply that meets a 429, a 500 or a timeout
still arrives.

PTB's AIORateLimiter paces every call (about 30 a second, 20 a minute per group) but gives up at
the first 429, and nothing retries a 500 or a timeout: the screen a person waited for was lost,
and an error logged. Here a call is tried again, up to `RETRIES` times:
- after a 429's retry_after, during which every call of this bot waits (Telegram's flood control
  holds the bot back, not one request), when it is at most `LONGEST_WAIT`;
- after a short doubling backoff for a 5xx, a dropped connection or a timeout.

The outbox worker's sends opt out (`rate_limit_args=ONCE`): the worker reschedules a failed send
itself, with its lease in mind (engine/followup/reminders.py), rather than wait here; they still
wait out a 429 pause, and a 429 they meet pauses the chat replies too.

A timeout may come after Telegram accepted the call, its answer lost on the way back. A retried
message then arrives twice (the documented repeat, README "Faults the tests cover"); a retried
answerCallbackQuery is refused as too old, which says the first one went through.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import AIORateLimiter

from engine import observe

JSONDict = dict[str, Any]
Result = bool | JSONDict | list[JSONDict]

RETRIES = 3
LONGEST_WAIT = 20.0  # seconds; a longer retry_after is raised: a person will not wait that long
FIRST_BACKOFF = 0.25  # seconds, doubling: 0.25, 0.5, 1
ONCE = -1
"""`rate_limit_args` of a call that is not retried here (the outbox worker's sends)."""


class _Later(Exception):
    """A 429 carried past AIORateLimiter, which would log it as an error when not retrying it."""

    def __init__(self, error: RetryAfter) -> None:
        super().__init__("retry after")
        self.error = error


def report_failure(error: TelegramError, method: str) -> None:
    """Count a refused or failed attempt for /metrics (bots/metrics.py): a 429, a timeout, or
    another error. Every Bot API call, the worker's sends and the chat's replies, passes here."""
    kind = "error"
    if isinstance(error, RetryAfter):
        kind = "rate_limited"
    elif isinstance(error, TimedOut):
        kind = "timeout"
    observe.report(observe.PlatformCallFailed("telegram", kind, method))


def _seconds(error: RetryAfter) -> float:
    wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


class RetryingRateLimiter(AIORateLimiter):
    """AIORateLimiter's pacing, and the retries described in the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._held_until = 0.0  # loop time: no call leaves before it (a 429's retry_after)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        async def call(*call_args: Any, **call_kwargs: Any) -> Result:
            try:
                return await callback(*call_args, **call_kwargs)
            except RetryAfter as error:
                raise _Later(error) from error

        loop = asyncio.get_running_loop()
        retries = 0 if rate_limit_args == ONCE else RETRIES
        timed_out = False
        for attempt in range(retries + 1):
            # A loop, not an Event: another 429 may move the deadline while this call sleeps.
            while (wait := self._held_until - loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            try:
                return await super().process_request(call, args, kwargs, endpoint, data, None)
            except _Later as later:
                report_failure(later.error, endpoint)  # every refused attempt, for /metrics
                seconds = _seconds(later.error)
                self._held_until = max(self._held_until, loop.time() + seconds)
                if attempt == retries or seconds > LONGEST_WAIT:
                    raise later.error from None
            except BadRequest as error:
                if timed_out and endpoint == "answerCallbackQuery":
                    return True  # "query is too old": the timed-out answer had arrived
                report_failure(error, endpoint)
                raise
            except NetworkError as error:  # a 5xx, a dropped connection, a timeout
                report_failure(error, endpoint)
                if attempt == retries:
                    raise
                timed_out = timed_out or isinstance(error, TimedOut)
                await asyncio.sleep(FIRST_BACKOFF * 2**attempt * random.uniform(0.8, 1.0))
            except TelegramError as error:  # refused otherwise (the person blocked the bot, ...)
                report_failure(error, endpoint)
                raise
        raise AssertionError("unreachable")
