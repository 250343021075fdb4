"""`bookbot bench chat`: the chat targets of issue 10, measured through `ConversationService`.

* Latency at an offered load: the largest chat count (50) with `think` seconds (2 s) of mean
  pause, about 25 events/s, in one process: p50, p99, peak RSS.
* Throughput with no pause at each chat count (1, 10, 50), one process each: events/s and the
  process CPU per event.
* The first screen (ST cards) of a course with 50 STs against one with 5 (same students, same
  calendar per ST).
* 100 students at the confirm step of the same slot pressing "Book Session" at once.
* Scaling out: the no-pause driver in 1, 2 and 4 processes on one database, with
  pg_stat_activity and the machine's CPU sampled to say where it stops.
* Double bookings after every run, checked with SQL.

Each driven run gets a freshly seeded campus (the earlier runs' bookings would otherwise fill
the STs' calendars and change what later runs measure) and runs in worker processes
(`benchmarks.chat_worker`), so their RSS and CPU are those of a process serving chats.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.activity import Activity, sample
from benchmarks.chat import (
    Figures,
    Run,
    double_bookings,
    offered,
    report,
    send,
    statements_counted,
    summarize,
)
from benchmarks.chat_worker import URL_VARIABLE
from benchmarks.common import Target, analyze, bench_database, plain_dsn
from benchmarks.seeding import CAMPUS, NOW, Factory, seed_campus, seed_first_screen, seed_race
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.chat.screens import Kind, Screen
from engine.settings import Settings
from storage.db import make_sessionmaker

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
TARGET_EVENTS_PER_S = 500.0
TARGET_CPU_MS = 2.0
TARGET_FIRST_SCREEN_RATIO = 2.0
TARGET_RACE_S = 1.0
RACERS = 100
FIRST_SCREEN_STS = (5, 50)
FIRST_SCREEN_STUDENTS = 60
FIRST_SCREEN_WARM = 5  # students whose screens pay for cold caches, left out
SESSIONS_PER_ST = 10
STARTUP_SECONDS = 3.0  # a worker imports the engine and connects before the common start


@dataclass(frozen=True)
class ChatOptions:
    """The run's size. The defaults take about two minutes; `--seconds 2` a quick look."""

    seconds: float = 10.0  # each no-pause run, measured; the think-time run lasts 3x as long
    chats: tuple[int, ...] = (1, 10, 50)
    think: float = 2.0
    processes: tuple[int, ...] = (1, 2, 4)
    chats_per_process: int = 10
    warm_up: float = 2.0


# --- driven runs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    """One driven run: `processes` workers with `chats` chats each, measured for `seconds`
    after `warm_up`, pausing `think` seconds on average between events."""

    processes: int
    chats: int
    seconds: float
    think: float = 0.0
    warm_up: float = 2.0


async def run_workers(url: str, engine: AsyncEngine, load: Load) -> tuple[Figures, Activity]:
    """A fresh campus, `processes` workers with `chats` chats each, their merged figures."""
    tag = secrets.token_hex(3)
    await seed_campus(make_sessionmaker(engine), tag)
    await analyze(engine)
    start_at = time.time() + STARTUP_SECONDS
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.chat_worker",
            f"--tag={tag}",
            f"--chats={load.chats}",
            f"--seconds={load.seconds}",
            f"--think={load.think}",
            f"--warm-up={load.warm_up}",
            f"--index={i}",
            f"--of={load.processes}",
            f"--start-at={start_at}",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, URL_VARIABLE: url},  # not in argv: ps shows argv, passwords too
        )
        for i in range(load.processes)
    ]
    # Sampling ends half a second early: a worker that ends its run closes its connections,
    # and a backend gone before the last reading would take its CPU time with it.
    window = start_at + load.warm_up
    stop = window + max(load.seconds - 0.5, load.seconds / 2)
    sampling = asyncio.create_task(sample(plain_dsn(url), window, stop))
    outputs = await asyncio.gather(*(w.communicate() for w in workers))
    activity = await sampling
    runs = []
    for worker, (out, _) in zip(workers, outputs, strict=True):
        if worker.returncode != 0:
            raise SystemExit(f"a chat worker failed (exit {worker.returncode}); see above")
        runs.append(Run(**json.loads(out.decode().strip().splitlines()[-1])))
    return summarize(runs), activity


# --- the first screen -----------------------------------------------------------------------------
async def first_screen(engine: AsyncEngine) -> dict[int, tuple[float, float]]:
    """{ST count: (median ms, statements)} of the first wizard screen, the ST cards, opened by
    the same students on the courses of 5 and 50 STs alternately, each in a new chat."""
    factory = make_sessionmaker(engine)
    students, courses = await seed_first_screen(
        factory, FIRST_SCREEN_STS, students=FIRST_SCREEN_STUDENTS, sessions_per_st=SESSIONS_PER_ST
    )
    service = ConversationService(factory, Settings(), clock=lambda: NOW)
    times: dict[int, list[float]] = {count: [] for count in courses}
    statements: dict[int, list[int]] = {count: [] for count in courses}
    with statements_counted(engine):
        for i, student_id in enumerate(students):
            for count, course in courses.items():
                chat = f"first:{count}:{i}"
                screen, seconds, n = await send(
                    service, chat, student_id, flow.Start(course_id=course, source="chat"), chat
                )
                assert screen.step == "choose_st", f"the first screen is {screen.step}"
                if i >= FIRST_SCREEN_WARM:
                    times[count].append(seconds)
                    statements[count].append(n)
    return {
        count: (statistics.median(times[count]) * 1000, statistics.fmean(statements[count]))
        for count in courses
    }


# --- the race through the chat path ---------------------------------------------------------------
_STEP_KIND = {
    "choose_st": Kind.PICK_ST,
    "choose_date": Kind.PICK_DATE,
    "choose_time": Kind.PICK_SLOT,
}


async def to_confirm(
    service: ConversationService, chat: str, who: tuple[int, int], path: dict[Kind, str]
) -> Screen:
    """Walk a chat to the confirm step pressing offered buttons: those whose argument `path`
    gives (another racer's choices), else the first one, recorded into `path`."""
    student_id, course = who
    n = 0
    screen, _, _ = await send(
        service, chat, student_id, flow.Start(course_id=course, source="chat"), f"{chat}:{n}"
    )
    while screen.step != "confirm":
        kind = _STEP_KIND[screen.step]
        buttons = offered(screen, kind)
        wanted = [b for b in buttons if b.action is not None and b.action.arg == path.get(kind)]
        button = (wanted or buttons)[0]
        assert button.action is not None
        path.setdefault(kind, button.action.arg)
        n += 1
        screen, _, _ = await send(
            service, chat, student_id, flow.Press(screen.data(button)), f"{chat}:{n}"
        )
    return screen


async def chat_race(factory: Factory, racers: int = RACERS) -> tuple[float, Counter[str], int]:
    """`racers` students at the confirm step of the same ST and slot press "Book Session" at once:
    (wall seconds, their answers, scheduled sessions of that ST in SQL)."""
    tag = secrets.token_hex(3)
    course, teacher, students = await seed_race(factory, tag, racers)
    service = ConversationService(factory, Settings(), clock=lambda: NOW)
    path: dict[Kind, str] = {}
    chats = [f"race:{tag}:{i}" for i in range(racers)]
    first = await to_confirm(service, chats[0], (students[0], course), path)
    rest = await asyncio.gather(
        *(
            to_confirm(service, c, (s, course), path)
            for c, s in zip(chats[1:], students[1:], strict=True)
        )
    )
    screens = [first, *rest]

    async def book(chat: str, student_id: int, screen: Screen) -> str:
        (button,) = offered(screen, Kind.CONFIRM)
        answer, _, _ = await send(
            service, chat, student_id, flow.Press(screen.data(button)), f"{chat}:book"
        )
        if answer.step == "success":
            return "booked"
        return "no longer available" if answer.notice == m.SLOT_TAKEN else answer.step

    started = time.perf_counter()
    answers = await asyncio.gather(
        *(book(c, s, screen) for c, s, screen in zip(chats, students, screens, strict=True)),
        return_exceptions=True,
    )
    wall = time.perf_counter() - started
    outcomes = Counter(a if isinstance(a, str) else type(a).__name__ for a in answers)
    async with factory() as session:
        booked = await session.scalar(
            text("SELECT count(*) FROM sessions WHERE teacher_id = :t AND status = 'scheduled'"),
            {"t": teacher},
        )
    return wall, outcomes, int(booked or 0)


# --- the whole chat part --------------------------------------------------------------------------
async def driven(url: str, engine: AsyncEngine, load: Load, disturbed: list[str]) -> Figures:
    """One driven run, reported with its double-booking check, the machine's CPU split and,
    without think time, where it stops. A run that other processes disturbed is added to
    `disturbed`, for the warning at the end."""
    figures, activity = await run_workers(url, engine, load)
    report(figures, await double_bookings(make_sessionmaker(engine)))
    bench = sum(figures.cpu_utilisation)
    print(f"      backends: {activity.shares()}")
    if load.think:
        print(f"      CPU: {activity.cores(bench)}")
    else:
        verdict, reason = activity.bottleneck(figures.cpu_utilisation)
        print(f"      where it stops: {verdict}: {reason}")
        figures = replace(figures, bottleneck=verdict)
    if activity.disturbed(bench):
        disturbed.append(f"{load.chats} chats x {load.processes}, think {load.think:g} s")
    return figures


async def run_chat_benchmarks(server: str, options: ChatOptions) -> list[Target]:
    seconds, think, warm_up = options.seconds, options.think, options.warm_up
    most = max(options.chats)
    noisy: list[str] = []
    async with bench_database(server, "bookbot_bench_chat") as (url, engine):
        factory = make_sessionmaker(engine)
        print(
            f"\nChat events through ConversationService, each run on a fresh campus ({CAMPUS}); "
            f"the first {warm_up:g} s of each run left out"
        )
        print(f"Latency at an offered load: {most} chats, {options.think:g} s mean think time")
        latency = await driven(url, engine, Load(1, most, 3 * seconds, think, warm_up), noisy)
        print("Throughput with no pause, one process")
        runs = [
            await driven(url, engine, Load(1, chats, seconds, 0.0, warm_up), noisy)
            for chats in options.chats
        ]
        best = max(runs, key=lambda f: f.events_per_s)
        print("First screen (the ST cards), same students, same calendar per ST")
        first = await first_screen(engine)
        for count, (ms, statements) in first.items():
            print(f"  {count:>2} STs: {ms:.1f} ms median, {statements:.0f} statements")
        few, many = (first[c][0] for c in FIRST_SCREEN_STS)
        print(f"{RACERS} chats at the confirm step of one slot press 'Book Session' at once")
        wall, outcomes, booked = await chat_race(factory)
        print(f"  {wall * 1000:.0f} ms wall, answers {dict(outcomes)}, {booked} session in SQL")
        print(
            f"Scaling out: no pause, {options.chats_per_process} chats per process, "
            "all processes on one database"
        )
        scaled = []
        for processes in options.processes:
            load = Load(processes, options.chats_per_process, seconds, 0.0, warm_up)
            figures = await driven(url, engine, load, noisy)
            scaled.append(f"{processes} x {figures.events_per_s:.0f}/s ({figures.bottleneck})")
        print(f"  total events/s by processes: {', '.join(scaled)}")
        if noisy:
            print(
                f"  WARNING: other processes used CPU during {len(noisy)} runs "
                f"({'; '.join(noisy)}): their figures are doubtful; run again on a quiet machine"
            )
        double = await double_bookings(factory)
    at = f"{most} chats, {options.think:g} s think"
    ratio = many / few
    return [
        Target(
            f"Chat event p50, {at}",
            f"{latency.overall.p50_ms:.1f} ms",
            f"< {TARGET_P50_MS:g} ms",
            latency.overall.p50_ms < TARGET_P50_MS,
        ),
        Target(
            f"Chat event p99, {at}",
            f"{latency.overall.p99_ms:.1f} ms",
            f"< {TARGET_P99_MS:g} ms",
            latency.overall.p99_ms < TARGET_P99_MS,
        ),
        Target(
            f"Peak RSS, {at}",
            f"{latency.peak_rss_mb:.0f} MB",
            f"< {TARGET_RSS_MB:g} MB",
            latency.peak_rss_mb < TARGET_RSS_MB,
        ),
        Target("Double bookings, all chat runs (SQL)", str(double), "0", double == 0),
        Target(
            "Chat events/s, one process, no pause (best chat count)",
            f"{best.events_per_s:.0f}/s at {best.chats} chats",
            f">= {TARGET_EVENTS_PER_S:g}/s",
            best.events_per_s >= TARGET_EVENTS_PER_S,
        ),
        Target(
            "Process CPU per chat event, same run",
            f"{best.cpu_ms_per_event:.2f} ms",
            f"< {TARGET_CPU_MS:g} ms",
            best.cpu_ms_per_event < TARGET_CPU_MS,
        ),
        Target(
            "First screen (ST cards), 50 STs vs 5 STs",
            f"{many:.1f} ms vs {few:.1f} ms = {ratio:.2f}x",
            f"< {TARGET_FIRST_SCREEN_RATIO:g}x",
            ratio < TARGET_FIRST_SCREEN_RATIO,
        ),
        Target(
            f"{RACERS}-way race for one slot, chat path",
            f"{wall * 1000:.0f} ms, {booked} booked",
            f"< {TARGET_RACE_S:g} s, exactly one booking",
            wall < TARGET_RACE_S and booked == 1 and outcomes["booked"] == 1,
        ),
    ]
