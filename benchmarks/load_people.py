"""What the simulated people of `bookbot bench load` share: the tally, the way to the `serve`
processes, and waiting for a screen.

A person only presses what the bot showed them (`load_students.py`, `load_coordinators.py`).
After each press they wait for the screen to settle: a reply arrived, the screen again offers
something to press (not the "Booking…" state), and nothing more came for a moment. The latency
recorded is from just before the POST to the first reply the fake received for that chat (what
the person waits for), and to the last one of that screen (the whole screen drawn). Updates are
spread over the `serve` processes in turn, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.load_fakes import Replies
from engine.chat.screens import Kind

QUIET = 0.15  # seconds without a further reply: the screen is drawn
SETTLE_TIMEOUT = 15.0  # a screen that never settles counts as stuck
MAX_PRESSES = 40  # a person who has not booked after this many gives up
FIRST_FEW = 3  # people pick among the first few dates and times: popular ones collide
STEP_NAMES = {
    Kind.CONFIRM: "Book Session",
    Kind.PICK_SLOT: "time",
    Kind.PICK_DATE: "date",
    Kind.MONTH: "month",
    Kind.PICK_ST: "ST",
    Kind.BACK: "back",
}


@dataclass
class Tally:
    """What the run measured, per platform."""

    first: list[float] = field(default_factory=list)  # POST -> first reply, seconds
    by_step: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    screen: list[float] = field(default_factory=list)  # POST -> screen drawn
    updates: int = 0
    bookings: int = 0
    taken: int = 0  # "no longer available"
    stuck: int = 0  # screens that never settled
    gave_up: int = 0
    refused: int = 0  # non-2xx answers to a POST
    why: Counter[str] = field(default_factory=Counter)  # why people gave up, for the report

    def give_up(self, why: str) -> None:
        self.gave_up += 1
        self.why[why] += 1

    def answered(self, step: str, first: float, last: float) -> None:
        self.first.append(first)
        self.screen.append(last)
        self.by_step[step].append(first)


@dataclass
class Front:
    """Where the people send their updates: the processes, in turn, and the shared client."""

    http: aiohttp.ClientSession
    urls: Sequence[str]
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_url(self) -> str:
        return self.urls[next(self._turn) % len(self.urls)]


async def settle(
    replies: Replies, chat: Any, started: float, ready: Callable[[], bool]
) -> tuple[float, float]:
    """(first reply, last reply) seconds after `started`, once `ready()` holds and the chat has
    been quiet for QUIET; raises TimeoutError when it never does."""
    deadline = started + SETTLE_TIMEOUT
    while True:
        now = time.perf_counter()
        times = replies.since(chat, started)
        if times and now - times[-1] >= QUIET and ready():
            return times[0] - started, times[-1] - started
        if now >= deadline:
            raise TimeoutError
        wait = QUIET - (now - times[-1]) if times else deadline - now
        await replies.changed(chat, max(0.01, min(wait, deadline - now)))


class People:
    """A platform's simulated people: their tally, their think time, their way in."""

    def __init__(self, front: Front, think: float, seed: int) -> None:
        self.front, self.think, self.seed = front, think, seed
        self.tally = Tally()

    async def pause(self, rng: random.Random) -> None:
        """A person's think time: exponentially distributed, `think` seconds on average."""
        if self.think:
            await asyncio.sleep(rng.expovariate(1 / self.think))

    async def post(self, path: str, **request: Any) -> str:
        """One update to the next process; its answer's body."""
        async with self.front.http.post(self.front.next_url() + path, **request) as response:
            body = await response.text()
            if response.status >= 300:
                self.tally.refused += 1
        self.tally.updates += 1
        return body

    async def screen(
        self, replies: Replies, chat: Any, started: float, ready: Callable[[], bool], step: str
    ) -> bool:
        """Wait for the screen an update drew, and count it; False when it never came."""
        try:
            first, last = await settle(replies, chat, started, ready)
        except TimeoutError:
            self.tally.stuck += 1
            return False
        self.tally.answered(step, first, last)
        return True
