"""The reminder part of `bookbot bench load`: N reminders due at once, two worker processes, the
fake Telegram counting what arrives.

Each reminder goes to a chat of its own, so "sent exactly once" is one message per chat at the
fake (and every outbox row `sent`), and the rate is what the fake saw: messages over the time
from the first to the last, and the busiest second. Both are compared with the rate the workers
were configured for; two workers that each pace on their own reach twice that.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load_fakes import TimedTelegram
from benchmarks.load_seed import reminder_statuses, seed_reminders
from benchmarks.load_serve import Process, working
from benchmarks.seeding import Factory
from engine.followup.reminders import utc_now

WORKERS = 2
PATIENCE = 30.0  # seconds without progress before the part gives up waiting


@dataclass(frozen=True)
class ReminderFigures:
    due: int
    delivered: int  # chats that got at least one message
    repeated: int  # chats that got more than one
    statuses: dict[str, int]
    seconds: float  # first to last message at the fake
    rate: float  # messages a second over that time
    busiest_second: int
    configured: float
    workers: list[Process]

    @property
    def exactly_once(self) -> bool:
        return (
            self.delivered == self.due
            and self.repeated == 0
            and self.statuses.get("sent", 0) == self.due
        )

    @property
    def ratio(self) -> float:
        return self.rate / self.configured


def busiest_second(times: list[float]) -> int:
    """The most messages in any one-second window."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_reminders(
    factory: Factory,
    fake: TimedTelegram,
    env: dict[str, str],
    where: Path,
    count: int,
    rate: float,
) -> ReminderFigures:
    """Seed `count` due reminders, run two workers at `rate` until all are sent (or nothing
    moves for PATIENCE seconds), and count."""
    chats = await seed_reminders(factory, count, utc_now())
    for chat in chats:
        fake.user(chat, "Reminded")
    wanted = set(chats)

    def delivered() -> int:
        return sum(1 for chat in wanted if fake.replies.times.get(chat))

    async with working(env, WORKERS, where, rate) as workers:
        last, progress_at = -1, time.monotonic()
        while True:
            done = delivered()
            if done != last:
                last, progress_at = done, time.monotonic()
            statuses = await reminder_statuses(factory)
            if statuses.get("pending", 0) == 0 and done >= count:
                break
            if time.monotonic() - progress_at > PATIENCE:
                break
            for worker in workers:
                worker.sample_rss()
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # anything sent twice arrives now, not after the count
    statuses = await reminder_statuses(factory)
    per_chat = Counter({chat: len(fake.replies.times.get(chat, [])) for chat in wanted})
    times = sorted(t for chat in wanted for t in fake.replies.times.get(chat, []))
    seconds = times[-1] - times[0] if len(times) > 1 else 0.0
    return ReminderFigures(
        due=count,
        delivered=sum(1 for n in per_chat.values() if n > 0),
        repeated=sum(1 for n in per_chat.values() if n > 1),
        statuses=statuses,
        seconds=seconds,
        rate=(len(times) - 1) / seconds if seconds else 0.0,
        busiest_second=busiest_second(times),
        configured=rate,
        workers=workers,
    )
