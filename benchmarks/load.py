"""`bookbot bench load`: what a campus gets through the real front doors.

* Two `bookbot serve --no-worker` processes on one PostgreSQL database, the fake Telegram and
  Slack servers on loopback in this process (the load generator's own CPU is printed, so a
  saturated generator shows).
* N students (default 200, 50 at a time) open their deep link and book by pressing the buttons
  the bot sent, through the Telegram webhook; coordinators book for other students through the
  signed Slack endpoint at the same time. Everyone pauses `think` seconds on average between
  presses (exponentially distributed).
* Printed: updates/s, p50/p95/p99 from an update's POST to the bot's reply arriving at the fake
  server (and to the whole screen drawn), bookings/s, double bookings (SQL), peak RSS per process.
* Then reminders: N due at once in a database of their own, two worker processes at the
  configured rate; each must arrive exactly once, and the achieved rate is compared with the
  configured one.

Targets: p99 from press to reply under 100 ms at 50 concurrent chats, no double booking, every
person booked, each reminder sent exactly once at (not above) the configured rate. The exit
status is 1 while any is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import aiohttp
from sqlalchemy import text

from benchmarks.activity import CORES, DISTURBED_CORES, CpuTicks
from benchmarks.chat import double_bookings
from benchmarks.common import Target, analyze, bench_database, percentile, postgres, print_targets
from benchmarks.load_coordinators import Coordinators
from benchmarks.load_fakes import TimedSlack, TimedTelegram
from benchmarks.load_people import Front, Tally
from benchmarks.load_reminders import WORKERS, ReminderFigures, run_reminders
from benchmarks.load_seed import Coordinator, Student, seed_coordinators, seed_students
from benchmarks.load_serve import Process, Secrets, environment, serving, workdir
from benchmarks.load_students import Students
from benchmarks.seeding import Factory
from bots.telegram.platform import LIMITS
from engine.followup.reminders import utc_now
from storage.db import make_sessionmaker

TARGET_P99_MS = 100.0
RATE_BAND = (0.8, 1.05)  # achieved / configured: close to the limit, never above it
STUDENTS_PER_COORDINATOR = 40  # more than a coordinator books in a run: they never run out
WARM_UP_STUDENTS = 2  # per serve process, booking before the measured run


@dataclass(frozen=True)
class LoadOptions:
    students: int = 200
    concurrency: int = 50
    think: float = 2.0
    coordinators: int = 5
    reminders: int = 10_000
    rate: float = LIMITS.per_second or 30.0
    processes: int = 2


QUICK = LoadOptions(students=6, concurrency=3, think=0.3, coordinators=1, reminders=40, rate=40)


def options_from(args: argparse.Namespace) -> LoadOptions:
    """The run's size from `bookbot bench load`'s options (`--quick`: a tiny run)."""
    if args.quick:
        return QUICK
    return LoadOptions(
        args.students,
        args.concurrency,
        args.think,
        args.coordinators,
        args.reminders,
        args.rate or LoadOptions.rate,  # Telegram's own limit unless told otherwise
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class ChatFigures:
    students: Tally
    staff: Tally
    seconds: float
    double: int
    booked_in_sql: dict[str, int]  # sessions made in the run, by platform
    processes: list[Process]
    cpu: dict[str, float]  # share of a core during the run, by process
    api_calls: dict[str, float]  # platform API calls a second during the run, as the fakes saw
    machine: tuple[float, float] | None = None  # busy cores of the machine, of PostgreSQL

    @property
    def others(self) -> float:
        """Cores used by processes that are neither this run's nor PostgreSQL's."""
        if self.machine is None:
            return 0.0
        return max(0.0, self.machine[0] - self.machine[1] - sum(self.cpu.values()))

    @property
    def updates_per_s(self) -> float:
        return (self.students.updates + self.staff.updates) / self.seconds

    @property
    def bookings_per_s(self) -> float:
        return sum(self.booked_in_sql.values()) / self.seconds


def spread(values: Sequence[float]) -> str:
    if not values:
        return "no replies"
    p50, p95, p99 = (percentile(list(values), s) * 1000 for s in (0.50, 0.95, 0.99))
    return f"p50 {p50:.1f} ms  p95 {p95:.1f}  p99 {p99:.1f}  max {max(values) * 1000:.0f}"


def p99_ms(values: Sequence[float]) -> float:
    return percentile(list(values), 0.99) * 1000 if values else float("inf")


async def _booked(factory: Factory, since: datetime) -> dict[str, int]:
    """Sessions made since `since`, by platform (the seeded calendars were booked on the web)."""
    async with factory() as session:
        rows = await session.execute(
            text(
                "SELECT created_via, count(*) FROM sessions"
                " WHERE created_via <> 'web' AND created_at >= :since GROUP BY created_via"
            ),
            {"since": since},
        )
        return {str(via): int(n) for via, n in rows.tuples().all()}


@dataclass(frozen=True)
class Cast:
    """Who takes part: measured students, warm-up students, coordinators and whom they book for
    (user id, course id, e-mail address)."""

    students: list[Student]
    warmers: list[Student]
    coordinators: list[Coordinator]
    booked_for: list[tuple[int, int, str]]


async def cast(factory: Factory, options: LoadOptions, keys: Secrets, slack: TimedSlack) -> Cast:
    """A fresh campus with everyone the run needs; the coordinators are Slack members too."""
    tag = secrets.token_hex(3)
    warm = WARM_UP_STUDENTS * options.processes
    extra = options.coordinators * STUDENTS_PER_COORDINATOR
    people = await seed_students(
        factory, keys.link, tag, options.students + warm + extra, utc_now()
    )
    coordinators = await seed_coordinators(factory, tag, options.coordinators)
    for person in coordinators:
        slack.add_user(
            person.slack_id, person.slack_id.lower(), email=person.email, tz="UTC", tz_offset=0
        )
    emails, courses = await _emails_and_courses(factory)
    measured, warmers, rest = (
        people[: options.students],
        people[options.students : options.students + warm],
        people[options.students + warm :],
    )
    booked_for = [(p.user_id, courses[p.user_id], emails[p.user_id]) for p in rest]
    return Cast(measured, warmers, coordinators, booked_for)


async def run_chats(
    server: str,
    options: LoadOptions,
    keys: Secrets,
    telegram: TimedTelegram,
    slack: TimedSlack,
    where: Path,
) -> ChatFigures:
    async with bench_database(server, "bookbot_bench_load") as (url, engine):
        factory = make_sessionmaker(engine)
        people = await cast(factory, options, keys, slack)
        await analyze(engine)
        env = environment(
            url,
            keys,
            telegram=(telegram.token, telegram.base_url),
            slack=(slack.token, slack.base_url, keys.slack_signing),
            outbox_dir=str(where / "mail"),
        )
        async with (
            serving(env, options.processes, where) as processes,
            aiohttp.ClientSession() as http,
        ):
            front = Front(http, [p.url for p in processes])
            # Warm-up, not measured: each process pays for its connections, prepared
            # statements and caches, as a server that has been running has long ago.
            await Students(telegram, front, keys.webhook, 0.0, seed=9).run(
                people.warmers, len(people.warmers)
            )
            since = utc_now()
            figures = await measure(options, keys, telegram, slack, front, processes, people)
        return replace(
            figures,
            double=await double_bookings(factory),
            booked_in_sql=await _booked(factory, since),
        )


async def measure(
    options: LoadOptions,
    keys: Secrets,
    telegram: TimedTelegram,
    slack: TimedSlack,
    front: Front,
    processes: list[Process],
    people: Cast,
) -> ChatFigures:
    """Students and coordinators at once, until every student is done; the processes' CPU and
    peak RSS, and the platform calls, over the same time."""
    students = Students(telegram, front, keys.webhook, options.think)
    staff = Coordinators(slack, front, keys.slack_signing, options.think)
    done = asyncio.Event()
    cpu_before = {p.name: p.cpu_seconds() for p in processes}
    own_before, started = cpu_seconds(), time.perf_counter()
    calls_before = _api_calls(telegram, slack)
    ticks_before = CpuTicks.read()

    async def sample() -> None:
        while not done.is_set():
            for process in processes:
                process.sample_rss()
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    booking = asyncio.create_task(staff.run(people.coordinators, people.booked_for, done))
    await students.run(people.students, options.concurrency)
    done.set()
    await booking
    await sampler
    seconds = time.perf_counter() - started
    cpu = {p.name: (p.cpu_seconds() - cpu_before[p.name]) / seconds for p in processes}
    cpu["load generator and fakes"] = (cpu_seconds() - own_before) / seconds
    calls = _api_calls(telegram, slack)
    ticks = CpuTicks.read()
    machine = ticks.cores_since(ticks_before) if ticks and ticks_before else None
    return ChatFigures(
        students.tally,
        staff.tally,
        seconds,
        double=0,
        booked_in_sql={},
        processes=processes,
        cpu=cpu,
        api_calls={name: (n - calls_before[name]) / seconds for name, n in calls.items()},
        machine=machine,
    )


def _api_calls(telegram: TimedTelegram, slack: TimedSlack) -> dict[str, int]:
    """Calls so far: every Bot API call, and Slack's views.update (paced at Tier 4)."""
    return {
        "Telegram Bot API": len(telegram.calls),
        "Slack views.update": len(slack.calls_to("views.update")),
    }


async def _emails_and_courses(factory: Factory) -> tuple[dict[int, str], dict[int, int]]:
    """Each user's e-mail (what a coordinator types to find a student) and first course."""
    async with factory() as session:
        emails = (await session.execute(text("SELECT id, email FROM users"))).tuples().all()
        courses = (
            (
                await session.execute(
                    text(
                        "SELECT DISTINCT ON (student_id) student_id, course_id FROM enrollments"
                        " ORDER BY student_id, id"
                    )
                )
            )
            .tuples()
            .all()
        )
    return {int(i): str(e) for i, e in emails}, {int(s): int(c) for s, c in courses}


async def run_reminder_part(
    server: str, options: LoadOptions, keys: Secrets, telegram: TimedTelegram, where: Path
) -> ReminderFigures:
    async with bench_database(server, "bookbot_bench_reminders") as (url, engine):
        env = environment(
            url,
            keys,
            telegram=(telegram.token, telegram.base_url),
            slack=None,
            outbox_dir=str(where / "mail"),
        )
        return await run_reminders(
            make_sessionmaker(engine), telegram, env, where, options.reminders, options.rate
        )


def report_chats(options: LoadOptions, f: ChatFigures) -> None:
    print(
        f"\nEnd-to-end load: {options.students} students ({options.concurrency} at a time) in "
        f"Telegram and {options.coordinators} coordinators in Slack, {options.think:g} s mean "
        f"think time, {len(f.processes)} serve processes, {f.seconds:.1f} s"
    )
    for name, tally in (("Telegram students", f.students), ("Slack coordinators", f.staff)):
        print(
            f"  {name}: {tally.updates} updates, {tally.bookings} booked, "
            f"{tally.taken} 'no longer available', {tally.stuck} stuck, {tally.gave_up} gave up, "
            f"{tally.refused} refused"
        )
        if tally.why:
            print(f"      gave up: {dict(tally.why)}")
        print(f"      POST to first reply   {spread(tally.first)}")
        print(f"      POST to screen drawn  {spread(tally.screen)}")
        for step, values in tally.by_step.items():
            print(f"        {step:<20} {len(values):>5}  {spread(values)}")
    every = f.students.first + f.staff.first
    print(f"  all: {f.updates_per_s:.1f} updates/s, POST to first reply {spread(every)}")
    print(
        f"  bookings in SQL: {f.booked_in_sql} = {f.bookings_per_s:.2f} bookings/s; "
        f"double bookings {f.double}"
    )
    rss = ", ".join(f"{p.name} {p.peak_rss_mb:.0f} MB" for p in f.processes)
    print(f"  peak RSS: {rss}")
    cpu = ", ".join(f"{name} {share:.2f}" for name, share in f.cpu.items())
    print(f"  CPU (cores): {cpu}")
    if f.machine is not None:
        busy, postgres = f.machine
        print(
            f"  machine: {busy:.2f} of {CORES} cores busy: PostgreSQL {postgres:.2f} (every "
            f"database on the server), other processes {f.others:.2f}"
        )
        if f.others >= DISTURBED_CORES:
            print(
                "  WARNING: other processes used CPU during the run: latency figures are "
                "doubtful; run again on a quiet machine"
            )
    calls = ", ".join(f"{name} {rate:.1f}/s" for name, rate in f.api_calls.items())
    print(f"  platform calls: {calls}")


def report_reminders(r: ReminderFigures) -> None:
    print(
        f"\nReminders: {r.due} due at once, {WORKERS} worker processes at {r.configured:g}/s "
        f"configured"
    )
    print(
        f"  {r.delivered} chats reached, {r.repeated} more than once; rows {r.statuses}; "
        f"{r.seconds:.1f} s first to last"
    )
    print(
        f"  achieved {r.rate:.1f}/s = {r.ratio:.0%} of the configured rate; busiest second "
        f"{r.busiest_second} messages"
    )
    rss = ", ".join(f"{p.name} {p.peak_rss_mb:.0f} MB" for p in r.workers)
    print(f"  peak RSS: {rss}")


def targets(options: LoadOptions, f: ChatFigures, r: ReminderFigures) -> list[Target]:
    at = f"{options.concurrency} concurrent chats, {options.think:g} s think"
    found: list[Target] = []
    for name, tally in (("Telegram", f.students), ("Slack", f.staff)):
        if not tally.updates:
            continue
        p99 = p99_ms(tally.first)
        found.append(
            Target(
                f"{name}: POST to the bot's reply, p99, {at}",
                f"{p99:.1f} ms (screen drawn {p99_ms(tally.screen):.1f} ms)",
                f"< {TARGET_P99_MS:g} ms",
                p99 < TARGET_P99_MS,
            )
        )
    people = options.students
    booked = f.students.bookings
    troubles = f.students.stuck + f.staff.stuck + f.students.refused + f.staff.refused
    found += [
        Target("Double bookings after the run (SQL)", str(f.double), "0", f.double == 0),
        Target(
            "Students who booked; screens that never came",
            f"{booked} of {people}; {troubles} stuck or refused; "
            f"{f.staff.bookings} coordinator bookings",
            "all; 0",
            booked == people
            and troubles == 0
            and (f.staff.bookings > 0 or not options.coordinators),
        ),
        Target(
            f"Reminders, {r.due} due at once, {WORKERS} workers: each sent once",
            f"{r.delivered} chats, {r.repeated} twice, {r.statuses.get('sent', 0)} rows sent",
            "exactly once",
            r.exactly_once,
        ),
        Target(
            "Reminder rate vs the configured per-bot rate",
            f"{r.rate:.1f}/s vs {r.configured:g}/s = {r.ratio:.0%} (busiest second "
            f"{r.busiest_second})",
            f"{RATE_BAND[0]:.0%}-{RATE_BAND[1]:.0%}",
            RATE_BAND[0] <= r.ratio <= RATE_BAND[1],
        ),
    ]
    return found


async def run(url: str | None, options: LoadOptions) -> bool:
    keys = Secrets()
    with postgres(url) as server:
        telegram, slack = TimedTelegram(), TimedSlack()
        async with workdir() as where, telegram, slack:
            chats = await run_chats(server, options, keys, telegram, slack, where)
            report_chats(options, chats)
            reminders = await run_reminder_part(server, options, keys, telegram, where)
            report_reminders(reminders)
    found = targets(options, chats, reminders)
    print_targets(found)
    return all(t.met for t in found)


def main(url: str | None, options: LoadOptions) -> int:
    """`bookbot bench load`: exit 0 when every target is met, else 1."""
    return 0 if asyncio.run(run(url, options)) else 1
