"""One bot's send rate, shared by every outbox worker on the database: a token bucket per key.

Telegram allows a bot about 30 messages a second, however many processes send them. Each
worker used to pace itself, so two workers could send 60. Here the bucket is one row
(`send_rates`), and taking a token is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`: the
row lock serialises takers for a fraction of a millisecond, never across a send.

The rule is stated once, in `take` and `pause` below, and evaluated twice: on floats (the pure
model the tests explore) and on SQL expressions (the statement that runs), so the two cannot
drift apart.

- **Reservations, not refusals.** A take always gets a turn: tokens may go below zero, and a
  negative balance is the queue of turns already given, so the answer is "go at `start`"
  (usually now). A worker asks once per message and sleeps until its turn; nobody polls, and
  turns are handed out in the order the takes reach the row. A turn a worker then does not use
  (it was stopped) is lost, which only slows the bot down.
- **The database's clock.** Refill is computed from the database server's own clock
  (`clock_timestamp()`; SQLite's `julianday('now')`), and a taker is told how long to wait,
  not until when: processes on different machines disagree about the time, but all of them
  agree with the one server. A clock that steps back never refills twice (`counted_at` only
  moves forward).
- **A 429 pauses every worker.** `pause` empties the bucket up to the pause's end and records
  `paused_until`: no turn starts before it, then one token at a time at the steady rate,
  since the platform has just said the burst was too much.
- **Any interval of `t` seconds holds at most `burst + per_second * t` turns**, for every
  interleaving of takes and pauses (tests/test_shared_pacing.py checks it with hypothesis).

Times are seconds since the epoch on the database's clock, in plain double columns: the same
arithmetic then runs on PostgreSQL and SQLite (which has no timestamp type), and the row is a
counter, not a record anyone reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from sqlalchemy import ColumnElement, Double, Table, extract, func, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import SendRate

RATES = cast(Table, SendRate.__table__)

Num = TypeVar("Num", float, ColumnElement[float])
Sql = ColumnElement[float]


@dataclass(frozen=True)
class Ops(Generic[Num]):
    """What the rule needs besides + - *, for floats or for one SQL dialect."""

    least: Callable[[Num, float], Num]
    greatest: Callable[[Num, Num | float], Num]
    value: Callable[[float], Num]


FLOATS: Ops[float] = Ops(min, max, float)


@dataclass(frozen=True)
class Bucket(Generic[Num]):
    """`tokens` as counted at `counted_at`; none is handed out before `paused_until`."""

    tokens: Num
    counted_at: Num
    paused_until: Num


@dataclass(frozen=True)
class Rate:
    """`per_second` turns a second on average, up to `burst` at once after a quiet spell."""

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("per_second must be positive and burst at least 1")

    def refilled(self, bucket: Bucket[Num], now: Num, ops: Ops[Num]) -> Num:
        """The tokens at `now`: what accrued since `counted_at`, never more than `burst`."""
        elapsed = ops.greatest(now - bucket.counted_at, 0.0)
        return ops.least(bucket.tokens + self.per_second * elapsed, float(self.burst))

    def take(self, bucket: Bucket[Num], now: Num, ops: Ops[Num]) -> Bucket[Num]:
        """One turn taken at `now` (see `start` for when it may go)."""
        return Bucket(
            self.refilled(bucket, now, ops) - 1,
            ops.greatest(bucket.counted_at, now),
            bucket.paused_until,
        )

    def pause(self, bucket: Bucket[Num], now: Num, seconds: float, ops: Ops[Num]) -> Bucket[Num]:
        """Nothing before `now + seconds`, then one token at a time; never shortens a pause."""
        return Bucket(
            ops.least(self.refilled(bucket, now, ops), 1 - self.per_second * seconds),
            ops.greatest(bucket.counted_at, now),
            ops.greatest(bucket.paused_until, now + seconds),
        )

    def start(self, taken: Bucket[float]) -> float:
        """When the turn just taken may go: once its token has accrued, and not in a pause."""
        owed = max(0.0, -taken.tokens) / self.per_second
        return max(taken.counted_at + owed, taken.paused_until)

    def full(self, now: Num, ops: Ops[Num]) -> Bucket[Num]:
        """The bucket of a key never used: full, never paused."""
        return Bucket(ops.value(float(self.burst)), now, ops.value(0.0))


@dataclass(frozen=True)
class Turn:
    """A reserved send: `start` and the moment it was given (`now`), on the database's clock."""

    start: float
    now: float

    @property
    def delay(self) -> float:
        """Seconds to sleep before sending; measured from the answer, so clocks may differ."""
        return max(0.0, self.start - self.now)


def _value(number: float) -> Sql:
    return literal(number, Double)


def _dialect_ops(name: str) -> Ops[Sql]:
    if name == "postgresql":
        return Ops(
            lambda a, b: func.least(a, b, type_=Double),
            lambda a, b: func.greatest(a, b, type_=Double),
            _value,
        )
    # SQLite's multi-argument min() and max() are its LEAST and GREATEST.
    return Ops(
        lambda a, b: func.min(a, b, type_=Double),
        lambda a, b: func.max(a, b, type_=Double),
        _value,
    )


def _clock(name: str) -> Sql:
    """The database server's time in epoch seconds: one clock for every process."""
    if name == "postgresql":
        return extract("epoch", func.clock_timestamp()).cast(Double)
    return (func.julianday("now", type_=Double) - 2440587.5) * 86400.0  # milliseconds


async def _upsert(
    session: AsyncSession,
    key: str,
    rate: Rate,
    change: Callable[[Bucket[Sql], Sql, Ops[Sql]], Bucket[Sql]],
    now: float | None,
) -> tuple[Bucket[float], float]:
    """Apply `change` to the key's row in one statement (creating the row full first); return
    the row and the clock after the change. `now` replaces the database's clock (tests only)."""
    name = session.get_bind().dialect.name
    ops = _dialect_ops(name)
    clock = _clock(name) if now is None else _value(now)
    insert = postgresql.insert(RATES) if name == "postgresql" else sqlite.insert(RATES)
    inserted = change(rate.full(clock, ops), clock, ops)
    old = Bucket(RATES.c.tokens, RATES.c.counted_at, RATES.c.paused_until)
    # An existing row is changed as of the clock reading VALUES stored (excluded.counted_at).
    changed = change(old, insert.excluded.counted_at, ops)
    statement = (
        insert.values(
            key=key,
            tokens=inserted.tokens,
            counted_at=inserted.counted_at,
            paused_until=inserted.paused_until,
        )
        .on_conflict_do_update(
            index_elements=[RATES.c.key],
            set_={
                "tokens": changed.tokens,
                "counted_at": changed.counted_at,
                "paused_until": changed.paused_until,
            },
        )
        .returning(RATES.c.tokens, RATES.c.counted_at, RATES.c.paused_until, clock)
    )
    tokens, counted_at, paused_until, after = (await session.execute(statement)).one()
    return Bucket(tokens, counted_at, paused_until), after


async def take(session: AsyncSession, key: str, rate: Rate, *, now: float | None = None) -> Turn:
    """Reserve the next turn of `key`."""
    taken, after = await _upsert(session, key, rate, rate.take, now)
    return Turn(rate.start(taken), after)


async def pause(
    session: AsyncSession, key: str, rate: Rate, seconds: float, *, now: float | None = None
) -> None:
    """Hold every turn of `key` for `seconds` (a platform's retry_after), for every worker."""

    def paused(bucket: Bucket[Sql], now: Sql, ops: Ops[Sql]) -> Bucket[Sql]:
        return rate.pause(bucket, now, seconds, ops)

    await _upsert(session, key, rate, paused, now)


class SendRates:
    """The shared buckets over a session factory: each call is one short transaction of its
    own, so a turn is never held inside another transaction (nor one across a send)."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def take(self, key: str, rate: Rate) -> Turn:
        async with self._factory() as session, session.begin():
            return await take(session, key, rate)

    async def pause(self, key: str, rate: Rate, seconds: float) -> None:
        async with self._factory() as session, session.begin():
            await pause(session, key, rate, seconds)
