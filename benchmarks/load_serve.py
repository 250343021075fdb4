"""The processes `bookbot bench load` measures: `bookbot serve` and worker processes, started as a
campus would run them, against the run's own database and the fake platforms on loopback.

Each one is a real subprocess with its settings in the environment (never in argv, which `ps`
shows): strong random secrets, the fakes' URLs, `SERVE_MIGRATE=false` (the benchmark migrated
once, as the compose file's migration service does). Peak RSS is the kernel's high-water mark of
the process (`VmHWM` in /proc/<pid>/status), read just before it is stopped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Secrets:
    """What the processes and the load generator share: signing and webhook secrets."""

    link: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    webhook: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    slack_signing: str = field(default_factory=lambda: secrets.token_hex(32))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(
    database_url: str,
    keys: Secrets,
    *,
    telegram: tuple[str, str],
    slack: tuple[str, str, str] | None,
    outbox_dir: str,
    extra: Mapping[str, str] = {},
) -> dict[str, str]:
    """The environment of every process: `telegram` is (token, Bot API base URL), `slack`
    (bot token, Web API base URL ending in '/', signing secret) or None."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "SLACK_", "SERVE_", "RESEND_", "EMAIL_"))
    }
    token, api_url = telegram
    env.update(
        DATABASE_URL=database_url,
        LINK_SECRET=keys.link,
        LOG_LEVEL="WARNING",  # a log line per update would be the benchmark's own I/O
        TELEGRAM_TOKEN=token,
        TELEGRAM_API_URL=api_url,
        TELEGRAM_FILE_URL=api_url.replace("/bot", "/file/bot"),
        TELEGRAM_WEBHOOK_SECRET=keys.webhook,
        SERVE_HOST="127.0.0.1",
        SERVE_MIGRATE="false",
        EMAIL_OUTBOX_DIR=outbox_dir,
    )
    if slack is not None:
        bot_token, slack_url, signing = slack
        env.update(SLACK_BOT_TOKEN=bot_token, SLACK_API_URL=slack_url, SLACK_SIGNING_SECRET=signing)
    env.update(extra)
    return env


@dataclass
class Process:
    """One started process: its name in the report, its pid, and its port when it serves."""

    name: str
    child: asyncio.subprocess.Process
    port: int | None = None
    peak_rss_mb: float = 0.0
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sample_rss(self) -> float:
        """VmHWM: the most resident memory the process ever had, in MB."""
        try:
            status = Path(f"/proc/{self.child.pid}/status").read_text()
        except OSError:
            return self.peak_rss_mb
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
        return self.peak_rss_mb

    def cpu_seconds(self) -> float:
        """User + system CPU of the process so far (from /proc, while it runs)."""
        try:
            fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


async def _wait_ready(process: Process) -> None:
    """Until GET /healthz answers 200; a process that exits first fails the run with its log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if process.child.returncode is not None:
                break
            try:
                async with http.get(f"{process.url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    tail = process.log.read_text()[-3000:] if process.log else ""
    raise SystemExit(f"{process.name} did not become ready:\n{tail}")


async def _start(name: str, argv: Sequence[str], env: dict[str, str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        child = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=workdir, stdout=out, stderr=out
        )
    return Process(name, child, log=log)


async def _stop(process: Process) -> None:
    process.sample_rss()
    if process.child.returncode is None:
        process.child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.child.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.child.kill()
            await process.child.wait()


@asynccontextmanager
async def workdir() -> AsyncIterator[Path]:
    """A directory for the processes' logs and e-mail files (no `.env` is read from it)."""
    with tempfile.TemporaryDirectory(prefix="bookbot-load-") as path:
        yield Path(path)


@asynccontextmanager
async def serving(env: dict[str, str], count: int, where: Path) -> AsyncIterator[list[Process]]:
    """`count` `bookbot serve --no-worker` processes on their own ports, ready."""
    started: list[Process] = []
    try:
        for i in range(count):
            port = free_port()
            argv = [sys.executable, "-m", "bots.launcher", "serve", "--no-worker"]
            process = await _start(f"serve {i + 1}", argv, {**env, "SERVE_PORT": str(port)}, where)
            process.port = port
            started.append(process)
        await asyncio.gather(*(_wait_ready(p) for p in started))
        yield started
    finally:
        await asyncio.gather(*(_stop(p) for p in started))


@asynccontextmanager
async def working(
    env: dict[str, str], count: int, where: Path, rate: float
) -> AsyncIterator[list[Process]]:
    """`count` `bookbot worker` processes sending Telegram messages at `rate` a second, all
    together (TELEGRAM_SEND_RATE: the per-bot rate they share through the database)."""
    started: list[Process] = []
    try:
        for i in range(count):
            argv = [sys.executable, "-m", "bots.launcher", "worker"]
            rated = {**env, "TELEGRAM_SEND_RATE": str(rate)}
            started.append(await _start(f"worker {i + 1}", argv, rated, where))
        yield started
    finally:
        await asyncio.gather(*(_stop(p) for p in started))
