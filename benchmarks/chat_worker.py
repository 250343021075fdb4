"""`python -m benchmarks.chat_worker`: one process of `bookbot bench chat`, driving its own chats
against a campus the parent seeded, printing its raw measures as one JSON line.

A process of its own for every measured run, even a single one: its peak RSS is then that of a
process serving the chats (not of the parent that seeded and ran the other parts), and N of them
show what several `bookbot serve` processes on one PostgreSQL reach. All of them wait for the
same `--start-at` moment, so their measured windows overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict

from benchmarks.chat import Run, chats_for, drive
from benchmarks.seeding import load_campus
from storage.db import make_engine, make_sessionmaker

URL_VARIABLE = "BOOKBOT_BENCH_DATABASE_URL"  # how the parent hands over the database


async def work(args: argparse.Namespace) -> Run:
    # The production pool (storage.db's defaults): what one bookbot process has.
    engine = make_engine(args.database_url)
    try:
        campus = await load_campus(make_sessionmaker(engine), args.tag)
        who = chats_for(campus.students, args.chats, index=args.index, of=args.of, seed=args.seed)
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        return await drive(
            engine,
            who,
            seconds=args.seconds,
            think=args.think,
            warm_up=args.warm_up,
            label=f"{args.tag}:{args.index}",
            seed=args.seed * 100 + args.index,
        )
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat_worker")
    parser.add_argument(
        "--database-url", default=os.environ.get(URL_VARIABLE), help=f"default: ${URL_VARIABLE}"
    )
    parser.add_argument("--tag", required=True, help="the campus seeded by the parent")
    parser.add_argument("--chats", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="measured, after warm-up")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between events")
    parser.add_argument("--warm-up", type=float, default=2.0)
    parser.add_argument("--index", type=int, default=0, help="this process among --of")
    parser.add_argument("--of", type=int, default=1)
    parser.add_argument("--start-at", type=float, default=0.0, help="wall clock (time.time())")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"--database-url or {URL_VARIABLE} is needed")
    run = asyncio.run(work(args))
    print(json.dumps(asdict(run)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
