"""`bookbot bench chat` runs: its driver, its race and its worker process, at a tiny scale on the
test database. Only outcomes are checked (bookings made, none doubled, one winner of a race),
never timings: those belong to the benchmark, on a quiet machine, not to a test.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from benchmarks.chat import chats_for, double_bookings, drive, summarize
from benchmarks.chat_bench import Load, chat_race, run_workers
from benchmarks.pgbench import parse_tps
from benchmarks.seeding import seed_campus

Factory = async_sessionmaker[AsyncSession]


async def test_two_chats_book_for_a_second_without_double_bookings(
    pg: Factory, pg_engine: AsyncEngine
) -> None:
    campus = await seed_campus(pg, "t", sts=4, students=10, sessions=10)
    run = await drive(pg_engine, chats_for(campus.students, 2), seconds=1.0, think=0.0, warm_up=0.2)
    figures = summarize([run])
    assert run.bookings > 0
    assert await double_bookings(pg) == 0
    assert figures.events == run.events > 0
    assert {"pick_st", "pick_slot", "book"} <= figures.by_kind.keys()
    assert figures.overall.statements > 0  # counted per event through the task's context


async def test_the_chat_race_has_exactly_one_winner(pg: Factory) -> None:
    _wall, outcomes, booked = await chat_race(pg, racers=5)
    assert booked == 1
    assert outcomes == {"booked": 1, "no longer available": 4}


async def test_a_worker_process_reports_its_run(
    pg: Factory, pg_url: str, pg_engine: AsyncEngine
) -> None:
    figures, activity = await run_workers(pg_url, pg_engine, Load(1, 2, 1.0, warm_up=0.2))
    assert figures.processes == 1 and figures.chats == 2
    assert figures.events > 0 and figures.peak_rss_mb > 0
    assert activity.backends  # pg_stat_activity was sampled
    assert activity.bottleneck(figures.cpu_utilisation)[0] in {"locks", "CPU", "database"}
    assert await double_bookings(pg) == 0


def test_pgbench_tps_is_read_from_its_summary() -> None:
    output = "latency average = 0.636 ms\ntps = 1572.559060 (without initial connection time)\n"
    assert parse_tps(output) == 1572.559060
