"""PostgreSQL's own ceiling on this machine: pgbench's built-in tpcb-like transaction.

The booking transaction is judged against it at the same client count, measured in the same run
(`pgbench -i -s 32` into a database of its own, then `-M prepared -j 2 -T 10 -c N`), so the
ratio says how close the booking comes to what this server does per second, whatever machine
runs the benchmark. Without `pgbench` the caller falls back to a one-row insert transaction.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from benchmarks.common import scratch_database

SCALE = 32
SECONDS = 10
INSTALL = (
    "pgbench is not installed, so the booking is compared with a one-row insert instead; "
    "install it with `sudo apt-get install postgresql-client` (Debian, Ubuntu) or your "
    "distribution's PostgreSQL client package"
)
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def parse_tps(output: str) -> float:
    """pgbench's "tps = 1234.5 (without initial connection time)"."""
    found = _TPS.search(output)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps:\n{output}")
    return float(found.group(1))


async def _pgbench(binary: str, server: str, database: str, *args: str) -> str:
    url = make_url(server)
    connection = [
        *(["-h", url.host] if url.host else []),
        *(["-p", str(url.port)] if url.port else []),
        *(["-U", url.username] if url.username else []),
    ]
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    process = await asyncio.create_subprocess_exec(
        binary,
        *connection,
        *args,
        database,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{text}")
    return text


@asynccontextmanager
async def tpcb_like(server: str) -> AsyncIterator[Callable[[int], Awaitable[float]] | None]:
    """A function giving pgbench's tpcb-like TPS at N clients (its database initialised once,
    dropped at the end), or None, after printing how to install it, when pgbench is missing."""
    binary = shutil.which("pgbench")
    if binary is None:
        print(INSTALL)
        yield None
        return
    async with scratch_database(server, "bookbot_pgbench") as database:
        await _pgbench(binary, server, database, "-i", "-q", "-s", str(SCALE))

        async def tps(clients: int) -> float:
            run = ["-M", "prepared", "-j", "2", "-T", str(SECONDS), "-c", str(clients)]
            return parse_tps(await _pgbench(binary, server, database, *run))

        yield tps
