"""How fast this app may call each Slack Web API method, and the waiting that keeps it there.

Slack limits calls per method, per app, per workspace, by tier ("Tier 1: 1+ per minute", 2: 20+,
3: 50+, 4: 100+), and chat.postMessage to about one message a second per channel, short bursts
allowed. Each limit here is a token bucket in its virtual-time form (GCRA): `burst` calls may go
at once, then one every `60 / per_minute` seconds, so in any window of T seconds at most
`burst + T * per_minute / 60` calls leave. A person clicking never fills a bucket (a trigger_id
lives three seconds, so `views.open` must not wait); only sustained load is spread out.

A 429's Retry-After pauses its bucket: nothing goes before the pause ends, and then one call at
a time at the tier's rate, since Slack has just said the burst was too much.

`Bucket` is arithmetic on a clock value (no I/O, no asyncio); `Pacer` owns the buckets of one
workspace and does the waiting with an injected clock and sleep.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    name: str
    per_minute: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between calls at the steady rate."""
        return 60.0 / self.per_minute


TIER_1 = Tier("Tier 1", per_minute=1, burst=2)
TIER_2 = Tier("Tier 2", per_minute=20, burst=5)
TIER_3 = Tier("Tier 3", per_minute=50, burst=10)
TIER_4 = Tier("Tier 4", per_minute=100, burst=20)
POST_MESSAGE = Tier("chat.postMessage, per channel", per_minute=60, burst=4)
"""Four: one engine answer can be a few messages (a screen and its follow-ups) in one DM."""

METHOD_TIERS: Mapping[str, Tier] = {
    "auth.test": TIER_4,  # Slack: "special", hundreds a minute; Tier 4 stays under that
    "users.info": TIER_4,
    "users.lookupByEmail": TIER_3,
    "conversations.open": TIER_3,
    "chat.postMessage": POST_MESSAGE,
    "chat.postEphemeral": TIER_4,
    "chat.update": TIER_3,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.publish": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "apps.connections.open": TIER_1,  # once per Socket Mode (re)connection
}
DEFAULT_TIER = TIER_2
"""A method missing from the table: Slack's most common tier, not a generous guess."""
PER_CHANNEL = frozenset({"chat.postMessage"})
ROUNDING = 1e-9  # seconds: what float sums of intervals may be off by, never a reason to wait


class Bucket:
    """One method's (or one channel's) allowance as a GCRA: `_due` is when the next call would
    be due if every call so far had gone at the steady rate; a call may go up to
    `burst - 1` intervals before that."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self._due = -math.inf
        self.paused_until = -math.inf

    @property
    def _tolerance(self) -> float:
        return (self.tier.burst - 1) * self.tier.interval

    def reserve(self, now: float) -> float:
        """Book the next call: the time (not before `now`) at which it may go."""
        start = max(now, self.paused_until)
        earliest = self._due - self._tolerance
        if earliest - start > ROUNDING:
            start = earliest
        self._due = max(self._due, start) + self.tier.interval
        return start

    def pause(self, now: float, seconds: float) -> None:
        """Retry-After: nothing before `now + seconds`, then an empty bucket (one call at a
        time at the tier's rate); a shorter pause never cuts a longer one."""
        until = now + max(seconds, 0.0)
        if until > self.paused_until:
            self.paused_until = until
            self._due = max(self._due, until + self._tolerance)


class Pacer:
    """The buckets of one workspace (one bot): per method, and per channel for the methods in
    `PER_CHANNEL`."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tiers: Mapping[str, Tier] = METHOD_TIERS,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.tiers = tiers
        self._buckets: dict[tuple[str, str | None], Bucket] = {}

    def bucket(self, method: str, channel: str | None = None) -> Bucket:
        key = (method, channel if method in PER_CHANNEL else None)
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = Bucket(self.tiers.get(method, DEFAULT_TIER))
        return found

    async def wait(self, method: str, channel: str | None = None) -> None:
        """Until this call's turn. A 429 that arrives while it waits (another caller's) and
        pauses past its turn sends it to the back, behind the pause."""
        bucket = self.bucket(method, channel)
        while True:
            start = bucket.reserve(self.clock())
            delay = start - self.clock()
            if delay > 0:
                await self.sleep(delay)
            if bucket.paused_until <= start:
                return

    def pause(self, method: str, channel: str | None, seconds: float) -> None:
        self.bucket(method, channel).pause(self.clock(), seconds)
