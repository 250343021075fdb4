"""The one way this app builds a Slack Web API client: paced per method tier, 429s honoured.

Every call waits its turn in its method's bucket (bots/slack/pacing.py) before it leaves. A 429
pauses that method (that channel, for chat.postMessage) for its Retry-After, so concurrent
callers wait too, and slack_sdk's rate-limit retry handler sends it again after the pause; a
Retry-After longer than `LONGEST_RETRY_WAIT` is not waited out here but raised, so the worker
reschedules the notice instead of holding its lease, and an interactive answer that late is
worth less than an error in the log.

All clients of one workspace (the app's and the worker's sender) share one `Pacer`, as Slack
counts their calls together.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bots.slack.pacing import Pacer
from bots.slack.settings import SlackSettings
from engine import observe

RETRIES_AFTER_429 = 2
LONGEST_RETRY_WAIT = 20.0  # seconds; the worker stops starting sends at half its 2-minute lease
DEFAULT_RETRY_AFTER = 1.0  # Slack always sends Retry-After with a 429; just in case it does not

# The call in flight in this task: slack_sdk's retry handlers see the URL and form fields only,
# not the JSON body where chat.postMessage carries its channel.
_IN_FLIGHT: ContextVar[tuple[str, str | None] | None] = ContextVar("slack_call", default=None)
_PACERS: dict[str, Pacer] = {}


def retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (a mapping of names to a value or a list of values)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            first = value[0] if isinstance(value, list) and value else value
            try:
                return max(float(first), 0.0)
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


def _count_failure(method: str, kind: str) -> None:
    """A failed or refused (429) Web API call, for the metrics (bots/metrics.py)."""
    observe.report(observe.PlatformCallFailed("slack", kind, method))


class PacedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler with the wait moved into the pacer: the method is paused for
    every caller, and this call queues again behind the pause (the SDK would sleep alone)."""

    def __init__(
        self,
        pacer: Pacer,
        max_retry_count: int = RETRIES_AFTER_429,
        longest_wait: float = LONGEST_RETRY_WAIT,
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pacer = pacer
        self.longest_wait = longest_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and retry_after(response.headers) <= self.longest_wait
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None  # _can_retry_async retries 429 answers only
        seconds = retry_after(response.headers)
        in_flight = _IN_FLIGHT.get()
        _count_failure("upload" if in_flight is None else in_flight[0], "rate_limited")
        if in_flight is None:  # a file's bytes posted to its upload_url: no method to pause
            await self.pacer.sleep(seconds)
        else:
            method, channel = in_flight
            self.pacer.pause(method, channel, seconds)
            await self.pacer.wait(method, channel)
        state.next_attempt_requested = True
        state.increment_current_attempt()


def _channel(*bodies: dict[Any, Any] | Any) -> str | None:
    for body in bodies:
        if isinstance(body, dict) and isinstance(body.get("channel"), str):
            return str(body["channel"])
    return None


class PacedWebClient(AsyncWebClient):
    """AsyncWebClient whose every call first waits for its turn in `pacer`."""

    def __init__(self, *, pacer: Pacer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[Any, Any] | None = None,
        data: Any = None,
        params: dict[Any, Any] | None = None,
        json: dict[Any, Any] | None = None,
        headers: dict[Any, Any] | None = None,
        auth: dict[Any, Any] | None = None,
    ) -> AsyncSlackResponse:
        channel = _channel(json, data, params)
        await self.pacer.wait(api_method, channel)
        in_flight = _IN_FLIGHT.set((api_method, channel))
        try:
            return await super().api_call(
                api_method,
                http_verb=http_verb,
                files=files,
                data=data,
                params=params,
                json=json,
                headers=headers,
                auth=auth,
            )
        except SlackApiError as error:
            limited = error.response.status_code == 429
            if limited:  # not retried here: still, everyone waits
                self.pacer.pause(api_method, channel, retry_after(error.response.headers))
            _count_failure(api_method, "rate_limited" if limited else "error")
            raise
        except Exception as error:  # no answer: the connection failed or timed out
            _count_failure(api_method, "timeout" if isinstance(error, TimeoutError) else "error")
            raise
        finally:
            _IN_FLIGHT.reset(in_flight)


def workspace_pacer(slack: SlackSettings) -> Pacer:
    """The process's one pacer for this bot token at this API URL (keyed by a digest, so the
    token itself is not kept as a key)."""
    key = hashlib.sha256(f"{slack.api_url}\0{slack.bot_token}".encode()).hexdigest()
    pacer = _PACERS.get(key)
    if pacer is None:
        pacer = _PACERS[key] = Pacer()
    return pacer


def make_client(slack: SlackSettings, pacer: Pacer | None = None) -> AsyncWebClient:
    """The bot's client at `slack.api_url`; `pacer` only for tests (a fake clock)."""
    pacer = pacer or workspace_pacer(slack)
    return PacedWebClient(
        pacer=pacer,
        token=slack.bot_token,
        base_url=slack.api_url,
        # A dropped connection and a 500 or 503 are tried once more after a short backoff, so
        # that the screen a person waits for still arrives (tests/test_faults_platforms.py).
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncServerErrorRetryHandler(),
            PacedRateLimitRetry(pacer),
        ],
    )
