"""What every chat event of one process reads and almost never changes, kept for a few seconds.

A wizard screen needs the course, its STs, their weekly hours, days off and booked sessions,
and the student's own sessions: read from the database on every press, that was most of an
event's cost. Here they live for `ttl` seconds (courses and ST cards for `directory_ttl`), so a
burst of presses reads them once. Staleness is safe by construction: the booking itself reads
everything afresh and checks again under the row locks, so a slot that was taken meanwhile
costs only "This time is no longer available" (the issue allows exactly this), and whatever
this process changes (a booking, a cancellation, time off) drops what it touched at once.
Another process's change shows here within `ttl`. No I/O: the catalog (engine/chat/catalog.py,
`CatalogCache`) fills the shelves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")

DEFAULT_TTL = 2.0  # booked sessions, days off: what another process may change any second
DIRECTORY_TTL = 30.0  # courses, ST cards and weekly hours: changed by staff, rarely


@dataclass
class _Entry(Generic[T]):
    value: T
    expires: float


class Shelf(Generic[K, T]):
    """One kind of value by key, each for `ttl` seconds (monotonic clock, injectable)."""

    def __init__(self, ttl: float, clock: Callable[[], float], limit: int = 10_000) -> None:
        self.ttl = ttl
        self.clock = clock
        self.limit = limit
        self._entries: dict[K, _Entry[T]] = {}

    def get(self, key: K) -> tuple[bool, T | None]:
        """(found, value): a value of None is a cached "there is none"."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry.expires <= self.clock():
            del self._entries[key]
            return False, None
        return True, entry.value

    def put(self, key: K, value: T) -> None:
        now = self.clock()
        if len(self._entries) >= self.limit:  # bounded memory: expired entries go first
            self._entries = {k: e for k, e in self._entries.items() if e.expires > now}
            if len(self._entries) >= self.limit:
                self._entries.clear()  # a full refill costs one read per key
        self._entries[key] = _Entry(value, now + self.ttl)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
