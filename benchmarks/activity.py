"""Where a chat run stops: locks, the database, or CPU.

During a measured window the parent samples pg_stat_activity (what every backend of the bench
database is doing: on CPU, waiting for a lock, for I/O, for the Python client inside a
transaction, or idle) and reads the CPU time of the whole machine and of the PostgreSQL server
processes from /proc (PostgreSQL runs on the same host here). With the worker processes' own CPU
time that splits the machine's cores into bench processes, PostgreSQL and anything else, which
also shows when something outside the benchmark disturbed it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

SAMPLE_EVERY = 0.1
LOCKS_SHARE = 0.2  # of the samples of backends in a transaction: above it, locks stop the run
BUSY_SHARE = 0.85  # of the machine's cores, or of one process's core: CPU is the limit
DISTURBED_CORES = 0.25  # other processes' CPU that makes the figures doubtful
CORES = os.cpu_count() or 1
WAITING_FOR_PYTHON = "in transaction, waiting for Python"

_BACKENDS = """
    SELECT state, wait_event_type FROM pg_stat_activity
     WHERE datname = current_database() AND backend_type = 'client backend'
       AND pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class CpuTicks:
    """Clock ticks since boot: the machine's busy and total (all cores), each postgres process's."""

    busy: int
    total: int
    postgres: dict[int, int]

    @classmethod
    def read(cls) -> CpuTicks | None:
        """None off Linux, where /proc is missing."""
        try:
            with open("/proc/stat") as stat:
                values = [int(v) for v in stat.readline().split()[1:]]
        except OSError:
            return None
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # user … steal; guest time is already inside user
        return cls(total - idle, total, _postgres_ticks())

    def cores_since(self, earlier: CpuTicks) -> tuple[float, float]:
        """(busy cores of the machine, cores used by PostgreSQL) between the two readings."""
        per_core = (self.total - earlier.total) / CORES or 1
        postgres = sum(t - earlier.postgres.get(pid, 0) for pid, t in self.postgres.items())
        return (self.busy - earlier.busy) / per_core, postgres / per_core


def _postgres_ticks() -> dict[int, int]:
    """utime + stime of every process named postgres (server, backends, background workers)."""
    ticks = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                line = stat.read()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        comm, rest = line[line.index("(") + 1 : line.rindex(")")], line[line.rindex(")") + 2 :]
        if comm == "postgres":
            fields = rest.split()
            ticks[int(name)] = int(fields[11]) + int(fields[12])
    return ticks


@dataclass
class Activity:
    """What the samples of one measured window saw."""

    backends: Counter[str] = field(default_factory=Counter)
    machine_cores: float | None = None  # busy cores of the whole machine
    postgres_cores: float | None = None

    def shares(self) -> str:
        total = sum(self.backends.values()) or 1
        return ", ".join(f"{name} {n / total:.0%}" for name, n in self.backends.most_common())

    def cores(self, bench: float) -> str:
        if self.machine_cores is None or self.postgres_cores is None:
            return f"bench processes {bench:.2f} core (no /proc: the rest unknown)"
        other = max(0.0, self.machine_cores - self.postgres_cores - bench)
        return (
            f"{self.machine_cores:.2f} of {CORES} cores busy: bench processes {bench:.2f}, "
            f"PostgreSQL {self.postgres_cores:.2f}, other processes {other:.2f}"
            + (" (disturbed)" if other >= DISTURBED_CORES else "")
        )

    def disturbed(self, bench: float) -> bool:
        if self.machine_cores is None or self.postgres_cores is None:
            return False
        return self.machine_cores - self.postgres_cores - bench >= DISTURBED_CORES

    def bottleneck(self, utilisation: list[float]) -> tuple[str, str]:
        """("locks" | "CPU" | "database", the measured reason), given each bench process's CPU
        utilisation (CPU seconds / wall seconds).

        Lock waits first; then a full machine, split between the bench processes and
        PostgreSQL; then a bench process using a whole core. With nothing saturated (a few chats
        that wait for their own round trips), the side the busy backends' samples mostly wait
        for: PostgreSQL working (on CPU, I/O, LWLock) or the Python client inside a transaction.
        """
        bench = sum(utilisation)
        in_transaction = sum(n for name, n in self.backends.items() if name != "idle") or 1
        locks = self.backends["Lock"] / in_transaction
        if locks >= LOCKS_SHARE:
            return "locks", f"{locks:.0%} of the busy backends' samples wait for a row lock"
        if self.machine_cores is not None and self.machine_cores >= BUSY_SHARE * CORES:
            postgres = self.postgres_cores or 0.0
            return ("CPU" if bench >= postgres else "database"), self.cores(bench)
        if max(utilisation) >= BUSY_SHARE:
            return "CPU", f"a bench process is {max(utilisation):.0%} busy; {self.cores(bench)}"
        python = self.backends[WAITING_FOR_PYTHON] + self.backends["Client"]
        working = in_transaction - python
        side = "database" if working > python else "CPU"
        return side, (
            f"nothing saturated; busy backends are {working / in_transaction:.0%} working in "
            f"PostgreSQL, {python / in_transaction:.0%} waiting for Python; {self.cores(bench)}"
        )


async def sample(dsn: str, start: float, end: float) -> Activity:
    """Backend states every SAMPLE_EVERY seconds, and the CPU split, between the wall-clock
    moments `start` and `end`."""
    activity = Activity()
    connection = await asyncpg.connect(dsn)
    try:
        await asyncio.sleep(max(0.0, start - time.time()))
        first = CpuTicks.read()
        while time.time() < end:
            for row in await connection.fetch(_BACKENDS):
                if row["state"] == "active":
                    activity.backends[row["wait_event_type"] or "on CPU"] += 1
                elif row["state"] == "idle in transaction":
                    activity.backends[WAITING_FOR_PYTHON] += 1
                else:
                    activity.backends["idle"] += 1
            await asyncio.sleep(SAMPLE_EVERY)
        last = CpuTicks.read()
        if first is not None and last is not None:
            activity.machine_cores, activity.postgres_cores = last.cores_since(first)
    finally:
        await connection.close()
    return activity
