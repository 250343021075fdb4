"""The chat driver of `bookbot bench chat`: students booking through `ConversationService` as a
front end calls it.

Each chat is a student who books from the first screen to "Session Booked!" pressing only the
buttons the screen offers (another time when the one pressed was taken), then presses "Book
Another Session" and books again, until the run's deadline. Every event carries an `update_id`
and a loading callback, as the Telegram and Slack front ends pass them, so the service does the
work it does in production (the delivery check, the loading state). Between events a student
thinks for an exponentially distributed time (mean `think` seconds, 0 for no pause); the chats'
first events are staggered by one such delay, as people do not all press at the same instant.

Events of the first `warm_up` seconds are left out of the figures: they pay for connections,
prepared statements and caches that a running server has paid for long ago.

A `Run` holds raw measures (every latency, statements per event) so that the runs of several
worker processes can be merged before percentiles are taken; `summarize` makes the figures.
"""

from __future__ import annotations

import asyncio
import random
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.common import percentile
from benchmarks.seeding import NOW, Factory
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.chat.screens import Button, Kind, Screen
from engine.settings import Settings
from storage.db import make_sessionmaker

# The statements of the event being handled in this task: SQLAlchemy runs the driver calls in a
# greenlet that carries the task's context, so concurrent chats count their own statements.
_STATEMENTS: ContextVar[list[int] | None] = ContextVar("bench_statements", default=None)

# What a student presses on each wizard step, in order of preference.
_CHOICES: dict[str, tuple[tuple[Kind, str], ...]] = {
    "choose_st": ((Kind.PICK_ST, "pick_st"),),
    "choose_date": ((Kind.PICK_DATE, "pick_date"), (Kind.MONTH, "month")),
    "choose_time": ((Kind.PICK_SLOT, "pick_slot"), (Kind.BACK, "back")),
    "confirm": ((Kind.CONFIRM, "book"),),
    "success": ((Kind.BOOK_ANOTHER, "book_another"),),
}


@dataclass
class Run:
    """What one process measured after its warm-up (plain data: it crosses a pipe as JSON)."""

    chats: int
    think: float
    latencies: dict[str, list[float]] = field(default_factory=dict)  # per event kind
    statements: dict[str, list[int]] = field(default_factory=dict)
    bookings: int = 0
    taken: int = 0  # "This time is no longer available" answers
    window_start: float = 0.0  # wall clock (time.time()) when the measured window opened
    window_seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process, user + system, in the window
    peak_rss_mb: float = 0.0

    @property
    def events(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def record(self, kind: str, seconds: float, statements: int) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        self.statements.setdefault(kind, []).append(statements)


def offered(screen: Screen, kind: Kind) -> list[Button]:
    """The enabled buttons of `kind` on the screen: the only ones a person can press."""
    return [
        b
        for b in screen.all_buttons()
        if b.enabled and b.action is not None and b.action.kind is kind
    ]


def next_event(screen: Screen, course_id: int, rng: random.Random) -> tuple[flow.ChatEvent, str]:
    """The student's answer to `screen`: a random offered button of the step's first kind that
    has one, or the /book command again when the screen offers nothing to go on with."""
    for kind, name in _CHOICES.get(screen.step, ()):
        buttons = offered(screen, kind)
        if buttons:
            return flow.Press(screen.data(rng.choice(buttons))), name
    return flow.Start(course_id=course_id, source="chat"), "start"


async def _shown(_screen: Screen) -> None:
    """The loading screen "sent" (a front end edits the message here)."""


@contextmanager
def statements_counted(engine: AsyncEngine) -> Iterator[None]:
    """While inside, each statement on `engine` counts for the event whose task runs it."""

    def count(*_: Any) -> None:
        box = _STATEMENTS.get()
        if box is not None:
            box[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def send(
    service: ConversationService,
    chat_id: str,
    student_id: int,
    event_: flow.ChatEvent,
    update_id: str,
) -> tuple[Screen, float, int]:
    """One event as a front end delivers it: (screen, seconds, statements)."""
    box = [0]
    token = _STATEMENTS.set(box)
    started = time.perf_counter()
    try:
        screen = await service.handle(
            platform="bench",
            chat_id=chat_id,
            user_id=student_id,
            event=event_,
            update_id=update_id,
            on_loading=_shown,
        )
    finally:
        _STATEMENTS.reset(token)
    assert screen is not None, f"update {update_id} was taken for a redelivery"
    return screen, time.perf_counter() - started, box[0]


@dataclass
class Window:
    """The run's clock: events start until `deadline`; those started once `measuring` is set
    count, and `last` is when the last of them was answered (the measured window's end, so that
    a chat still thinking at the deadline does not stretch it)."""

    deadline: float
    think: float
    measuring: bool = False
    last: float = 0.0

    async def pause(self, rng: random.Random) -> None:
        """A person's think time (none at 0), cut at the deadline."""
        if self.think:
            left = max(0.0, self.deadline - time.perf_counter())
            await asyncio.sleep(min(rng.expovariate(1 / self.think), left))


async def student(
    service: ConversationService,
    chat_id: str,
    who: tuple[int, int],
    run: Run,
    window: Window,
    rng: random.Random,
) -> None:
    """One chat: book, then book again, until the deadline; only offered buttons are pressed.
    The first event waits for one think time too, so that chats do not all start at once."""
    student_id, course_id = who
    await window.pause(rng)
    event_: flow.ChatEvent = flow.Start(course_id=course_id, source="chat")
    kind = "start"
    n = 0
    while time.perf_counter() < window.deadline:
        measured = window.measuring
        screen, seconds, statements = await send(
            service, chat_id, student_id, event_, f"bench:{chat_id}:{n}"
        )
        n += 1
        if measured:
            window.last = time.perf_counter()
            run.record(kind, seconds, statements)
            run.taken += screen.notice == m.SLOT_TAKEN
            run.bookings += screen.step == "success" and kind == "book"
        event_, kind = next_event(screen, course_id, rng)
        await window.pause(rng)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(
    engine: AsyncEngine,
    who: Sequence[tuple[int, int]],
    *,
    seconds: float,
    think: float,
    warm_up: float,
    label: str = "bench",
    seed: int = 1,
) -> Run:
    """One chat per (student, course) of `who` for `warm_up` + `seconds`, measured after the
    warm-up. `label` keeps chat ids and update ids apart between runs and processes."""
    service = ConversationService(make_sessionmaker(engine), Settings(), clock=lambda: NOW)
    run = Run(chats=len(who), think=think)
    window = Window(time.perf_counter() + warm_up + seconds, think)
    opened: list[float] = []

    async def open_window() -> None:
        await asyncio.sleep(warm_up)
        window.measuring = True
        opened.extend((time.perf_counter(), time.time(), cpu_seconds()))

    with statements_counted(engine):
        timer = asyncio.create_task(open_window())
        await asyncio.gather(
            *(
                student(
                    service, f"{label}:{i}", person, run, window, random.Random(seed * 1000 + i)
                )
                for i, person in enumerate(who)
            )
        )
        await timer
    run.cpu_seconds = cpu_seconds() - opened[2]
    run.window_seconds = (window.last or time.perf_counter()) - opened[0]
    run.window_start = opened[1]
    run.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return run


async def double_bookings(factory: Factory) -> int:
    """Pairs of scheduled sessions that overlap for one ST or one student (in either role): the
    constraints should make any impossible. Equality joins, so it stays fast on thousands."""
    query = text(
        """
        WITH people AS (
            SELECT id, teacher_id AS person, scheduled_start, scheduled_end
              FROM sessions WHERE status = 'scheduled' AND teacher_id IS NOT NULL
            UNION ALL
            SELECT id, student_id, scheduled_start, scheduled_end
              FROM sessions WHERE status = 'scheduled'
        )
        SELECT count(DISTINCT (a.id, b.id)) FROM people a JOIN people b
          ON a.person = b.person AND a.id < b.id
         AND a.scheduled_start < b.scheduled_end AND b.scheduled_start < a.scheduled_end
        """
    )
    async with factory() as session:
        return int((await session.execute(query)).scalar_one())


# --- figures --------------------------------------------------------------------------------------
def merge(runs: Sequence[Run]) -> Run:
    """The runs of several processes as one: every latency, summed counts and CPU; the window
    spans them all (events/s of processes is the sum of their own rates, see `events_per_s`)."""
    merged = Run(chats=sum(r.chats for r in runs), think=runs[0].think)
    for run in runs:
        for kind, values in run.latencies.items():
            for seconds, statements in zip(values, run.statements[kind], strict=True):
                merged.record(kind, seconds, statements)
        merged.bookings += run.bookings
        merged.taken += run.taken
        merged.cpu_seconds += run.cpu_seconds
        merged.peak_rss_mb = max(merged.peak_rss_mb, run.peak_rss_mb)
    start = min(r.window_start for r in runs)
    merged.window_start = start
    merged.window_seconds = max(r.window_start + r.window_seconds for r in runs) - start
    return merged


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statements: float  # per event

    @classmethod
    def of(cls, values: list[float], statements: list[int]) -> Latency:
        return cls(
            len(values),
            percentile(values, 0.50) * 1000,
            percentile(values, 0.95) * 1000,
            percentile(values, 0.99) * 1000,
            max(values) * 1000,
            statistics.fmean(statements),
        )

    def line(self) -> str:
        return (
            f"p50 {self.p50_ms:6.1f} ms  p95 {self.p95_ms:6.1f}  p99 {self.p99_ms:6.1f}  "
            f"max {self.max_ms:6.0f}  {self.statements:4.1f} statements/event"
        )


@dataclass(frozen=True)
class Figures:
    chats: int
    think: float
    processes: int
    events: int
    overall: Latency
    by_kind: dict[str, Latency]
    events_per_s: float
    bookings_per_s: float
    cpu_ms_per_event: float
    cpu_utilisation: list[float]  # per process: CPU seconds / wall seconds of its window
    taken: int
    book_presses: int
    peak_rss_mb: float
    bottleneck: str = ""  # where a no-pause run stops: "locks", "CPU" or "database"


def summarize(runs: Sequence[Run]) -> Figures:
    merged = merge(runs)
    every = [x for values in merged.latencies.values() for x in values]
    statements = [x for values in merged.statements.values() for x in values]
    events = len(every)
    return Figures(
        chats=merged.chats,
        think=merged.think,
        processes=len(runs),
        events=events,
        overall=Latency.of(every, statements),
        by_kind={
            kind: Latency.of(values, merged.statements[kind])
            for kind, values in sorted(merged.latencies.items())
        },
        events_per_s=sum(r.events / r.window_seconds for r in runs),
        bookings_per_s=sum(r.bookings / r.window_seconds for r in runs),
        cpu_ms_per_event=merged.cpu_seconds * 1000 / max(events, 1),
        cpu_utilisation=[r.cpu_seconds / r.window_seconds for r in runs],
        taken=merged.taken,
        book_presses=len(merged.latencies.get("book", [])),
        peak_rss_mb=merged.peak_rss_mb,
    )


def report(f: Figures, double: int) -> None:
    cores = " + ".join(f"{u:.2f}" for u in f.cpu_utilisation)
    share = f.taken / f.book_presses if f.book_presses else 0.0
    print(
        f"  {f.chats:>3} chats in {f.processes} process{'es' if f.processes > 1 else ''}, "
        f"think {f.think:g} s: {f.events} events  {f.events_per_s:.0f} events/s  "
        f"{f.bookings_per_s:.1f} bookings/s  CPU {f.cpu_ms_per_event:.2f} ms/event "
        f"({cores} core)  peak RSS {f.peak_rss_mb:.0f} MB"
    )
    print(
        f"      all        {f.events:>6}  {f.overall.line()}\n"
        f"      'no longer available' {f.taken} of {f.book_presses} Book presses ({share:.1%})"
        f"  double bookings {double}"
    )
    for kind, latency in f.by_kind.items():
        print(f"      {kind:<12} {latency.count:>4}  {latency.line()}")


def chats_for(
    students: Sequence[tuple[int, int]], chats: int, *, index: int = 0, of: int = 1, seed: int = 1
) -> list[tuple[int, int]]:
    """`chats` different students of this process's share (every `of`-th, from `index`), each
    with one of their courses: processes never drive the same student."""
    rng = random.Random(seed)
    courses: dict[int, list[int]] = defaultdict(list)
    for person, course in students:
        courses[person].append(course)
    mine = sorted(courses)[index::of]
    if chats > len(mine):
        raise SystemExit(f"{chats} chats need {chats} students; this process has {len(mine)}")
    return [(person, rng.choice(courses[person])) for person in rng.sample(mine, chats)]
