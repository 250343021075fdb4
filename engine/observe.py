"""What the running bot reports about itself: an update handled, a booking decided, an outbox
message sent, a platform call that failed.

The engine and the front ends report here and know nothing of who listens: `bots/metrics.py`
subscribes a Prometheus callback, and each handled update is also one log record on
`bookbot.updates` whose fields travel as `extra=` (bots/logs.py writes them as one JSON line in
production). Observations carry ids, steps and outcome names only, never a name, note, address
or message text. Reporting does no I/O of its own, and an observer that raises is logged and
skipped: watching the bot must never break a chat or a send.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from storage.jobs import Job

log = logging.getLogger(__name__)
updates_log = logging.getLogger("bookbot.updates")


@dataclass(frozen=True)
class UpdateHandled:
    """One chat event through `ConversationService.handle`, from arrival to its screen."""

    platform: str
    kind: str  # the event: press, text, start, cancel, my_sessions, ... (`event_kind`)
    step_before: str | None  # the wizard's step when the event arrived; None: never loaded
    step_after: str | None
    outcome: str  # one of UPDATE_OUTCOMES
    milliseconds: float
    user_id: int  # the platform user's id in our users table: people by id only


UPDATE_OUTCOMES = ("ok", "duplicate", "database_unavailable", "database_busy", "error", "cancelled")
"""ok: applied (or refused with a notice); duplicate: a platform's redelivery, a no-op;
cancelled: the process stopped it (nothing of its unfinished step was saved)."""


@dataclass(frozen=True)
class BookingDecided:
    """A chat booking's outcome, counted once its transaction committed (or failed)."""

    platform: str
    outcome: str  # one of BOOKING_OUTCOMES
    reason: str  # the engine's error_type ("slot_taken", "not_enrolled", ...); "none" if booked


BOOKING_OUTCOMES = ("booked", "taken", "refused", "error")


@dataclass(frozen=True)
class MessageSent:
    """An outbox row reached its platform `lag_seconds` after it fell due."""

    kind: str  # the job's kind family (storage.jobs.JobKind value): reminder, room, ...
    lag_seconds: float


@dataclass(frozen=True)
class PlatformCallFailed:
    """A call to a chat platform's API failed or was refused (HTTP 429)."""

    platform: str
    kind: str  # one of CALL_FAILURES
    method: str  # the API method (sendMessage, chat.postMessage), "send" for the outbox


CALL_FAILURES = ("rate_limited", "timeout", "error")

Observation = UpdateHandled | BookingDecided | MessageSent | PlatformCallFailed
Observer = Callable[[Observation], None]

_observers: list[Observer] = []


def subscribe(observer: Observer) -> Callable[[], None]:
    """Every later observation goes to `observer` too; call the result to stop."""
    _observers.append(observer)

    def unsubscribe() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return unsubscribe


@contextmanager
def subscribed(observer: Observer) -> Iterator[None]:
    unsubscribe = subscribe(observer)
    try:
        yield
    finally:
        unsubscribe()


def report(observation: Observation) -> None:
    for observer in tuple(_observers):
        try:
            observer(observation)
        except Exception:
            log.exception("observer %r failed on %s", observer, type(observation).__name__)


def update_handled(record: UpdateHandled) -> None:
    """Log the update as one line (INFO; WARNING when it failed) and report it."""
    level = logging.INFO if record.outcome in ("ok", "duplicate") else logging.WARNING
    if updates_log.isEnabledFor(level):  # the terminal chat and benchmarks run at WARNING
        updates_log.log(
            level,
            "%s %s by user %s: %s -> %s, %s in %.1f ms",
            record.platform,
            record.kind,
            record.user_id,
            record.step_before,
            record.step_after,
            record.outcome,
            record.milliseconds,
            extra=asdict(record),
        )
    report(record)


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def event_kind(event: object) -> str:
    """The label of a chat event: its class name in snake case (Press -> press, MySessions ->
    my_sessions). A handful of values, so it can be a metric label; button data is not."""
    return _CAMEL.sub("_", type(event).__name__).lower()


def booking_outcome(error_type: str | None) -> tuple[str, str]:
    """(outcome, reason) of a booking: booked, taken (the slot went to someone else), refused
    (a booking rule said no: enrolment, sessions left, the ST, the student's own calendar), or
    error (the transaction failed; the student may retry)."""
    if error_type is None:
        return "booked", "none"
    if error_type == "slot_taken":
        return "taken", error_type
    if error_type == "error":
        return "error", error_type
    return "refused", error_type


def job_family(kind: str) -> str:
    """The family of a stored job kind ("student:before_24h" -> "reminder"); "unknown" for text
    no release writes. Per-user kinds (cancelled:chat:<user>) collapse to their family."""
    try:
        return Job.parse(kind).kind.value
    except ValueError:
        return "unknown"
