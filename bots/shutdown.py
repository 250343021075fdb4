"""Stopping `bookbot serve` and `bookbot worker` within a time limit (SERVE_SHUTDOWN_SECONDS).

A stop first finishes what was accepted: an update answered only after it was processed, the
outbox worker's current send. Whatever still runs at the limit is cancelled and named in one log
line, so that the process exits before Docker or systemd kill it. A request cancelled this way
gets no answer, so Telegram delivers it again, to another process, where `processed_updates`
makes the repeat a no-op if the first attempt got as far as its commit (Slack retries its
events likewise; a command or click cut off shows the person Slack's error, to try again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bots.platform import Platform

log = logging.getLogger(__name__)

WORKER_SEND = "the outbox worker's current send (the jobs it claimed wait out their lease)"
"""How a worker cut off at the limit is named: whatever it had claimed and not recorded is sent
by a worker (here or elsewhere) once the lease ends, as after a crash."""


class Deadline:
    """One stop's limit, shared by its steps: each waits for its work at most until the limit,
    then cancels it without waiting any longer (so a step that ignores cancellation cannot hold
    the exit) and remembers it as abandoned."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._at = self._loop.time() + seconds
        self.abandoned: list[str] = []

    def remaining(self) -> float:
        return max(0.0, self._at - self._loop.time())

    async def wait(self, work: Awaitable[Any]) -> bool:
        """Wait for `work` (its error is raised); False when the limit came first and it was
        cancelled."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=self.remaining())
        if not done:
            task.cancel()
            return False
        task.result()
        return True

    async def step(self, what: str, work: Awaitable[Any]) -> None:
        """`wait`, noting `what` as abandoned when the limit came first."""
        if not await self.wait(work):
            self.abandoned.append(what)

    def report(self) -> None:
        """One line, only when something was cut short."""
        if self.abandoned:
            log.warning(
                "shutdown limit of %g s reached (SERVE_SHUTDOWN_SECONDS); abandoned: %s",
                self.seconds,
                "; ".join(self.abandoned),
            )


async def stop_platforms(deadline: Deadline, started: Sequence[Platform]) -> None:
    """Last step of a stop, in reverse order of starting: nothing sends through them any more."""
    for platform in reversed(started):
        await deadline.step(f"stopping {platform.name}", platform.stop())


class InFlight:
    """The web requests being handled, so that a stop can wait for them and cancel what is left
    at the limit (its connection closes unanswered: the platform delivers it again)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def middleware(self) -> Middleware:
        tasks = self._tasks

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            task = asyncio.current_task()  # aiohttp runs each request in a task of its own
            assert task is not None
            tasks.add(task)
            try:
                return await handler(request)
            finally:
                tasks.discard(task)

        return track

    async def finished(self) -> None:
        """Until no request is in flight (a connection accepted just as listening stopped may
        still bring one)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel(self) -> int:
        """Cancel the requests still running; how many there were."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)


async def stop_serving(runner: web.AppRunner, requests: InFlight, deadline: Deadline) -> None:
    """Stop listening and close idle connections (aiohttp's cleanup), let the requests in flight
    finish until the limit, cancel the rest (their connections close unanswered), then close
    every connection left: one accepted just as listening stopped misses aiohttp's closing of
    idle ones and would hold the cleanup until its own `shutdown_timeout`, a mere backstop."""
    closing = asyncio.ensure_future(runner.cleanup())
    if not await deadline.wait(requests.finished()):
        deadline.abandoned.append(f"{requests.cancel()} request(s) in flight, closed unanswered")
    if runner.server is not None:
        for connection in runner.server.connections:
            connection.force_close()  # the answer written, if any, is still flushed
    await deadline.step("closing connections", closing)
