"""Prometheus metrics of one bookbot process, served at `GET /metrics`.

Each process counts what it handled itself (chat updates, bookings, outbox sends, failed platform
calls), fed by the engine's report hook (engine/observe.py), and serves only its own numbers:
Prometheus scrapes every process and sums them (README, "Metrics and logs"). The outbox's rows
by status are read from the database at scrape time, so every process reports the same table
(aggregate them with max, not sum); a database that does not answer leaves them out for that
scrape and sets `bookbot_outbox_query_up` to 0, and the scrape itself still succeeds.

The metrics live in a registry of their own, not prometheus_client's global one, so that tests
can build several side by side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import lru_cache

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine import observe
from storage.outbox import count_by_status

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
OUTBOX_QUERY_SECONDS = 2.0
"""A scrape waits this long for the outbox count; Prometheus's own default timeout is 10 s."""
UPDATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: the 100 ms target for a press sits in the middle."""
LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)
"""Seconds late: a worker polls every 2 s, so most sends land in the first buckets; a backlog or
a platform's long Retry-After shows in the last ones."""

Factory = async_sessionmaker[AsyncSession]


class Metrics:
    """The metric objects of one registry, and the observer that moves them."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.updates = Counter(
            "bookbot_updates",
            "Chat events handled, by platform, event kind and outcome.",
            ["platform", "kind", "outcome"],
            registry=registry,
        )
        self.update_seconds = Histogram(
            "bookbot_update_duration_seconds",
            "Time from a chat event's arrival in the engine to its screen, in seconds.",
            ["platform", "kind"],
            buckets=UPDATE_BUCKETS,
            registry=registry,
        )
        self.bookings = Counter(
            "bookbot_bookings",
            "Chat bookings by outcome (booked, taken, refused, error) and the engine's reason.",
            ["platform", "outcome", "reason"],
            registry=registry,
        )
        self.outbox_rows = Gauge(
            "bookbot_outbox_rows",
            "Outbox rows (reminder_jobs) by status, counted at scrape time; same in every process.",
            ["status"],
            registry=registry,
        )
        self.outbox_up = Gauge(
            "bookbot_outbox_query_up",
            "1 when this scrape's outbox count answered, 0 when the database did not.",
            registry=registry,
        )
        self.lag = Histogram(
            "bookbot_reminder_lag_seconds",
            "How late an outbox message went out: sent minus due, by job kind, in seconds.",
            ["kind"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.platform_errors = Counter(
            "bookbot_platform_errors",
            "Failed chat-platform API calls, by platform, kind (rate_limited: HTTP 429, "
            "timeout, error) and method.",
            ["platform", "kind", "method"],
            registry=registry,
        )
        if process:  # resident memory, CPU, open files of this process (Linux /proc)
            ProcessCollector(registry=registry)
        self._outbox_answered: bool | None = None

    def observe(self, observation: observe.Observation) -> None:
        """The engine's report hook: one observation moves its metric."""
        if isinstance(observation, observe.UpdateHandled):
            labels = (observation.platform, observation.kind)
            self.updates.labels(*labels, observation.outcome).inc()
            self.update_seconds.labels(*labels).observe(observation.milliseconds / 1000)
        elif isinstance(observation, observe.BookingDecided):
            self.bookings.labels(
                observation.platform, observation.outcome, observation.reason
            ).inc()
        elif isinstance(observation, observe.MessageSent):
            self.lag.labels(observation.kind).observe(observation.lag_seconds)
        else:
            self.platform_errors.labels(
                observation.platform, observation.kind, observation.method
            ).inc()

    def subscribe(self) -> Callable[[], None]:
        """From now on, every observation of this process moves these metrics."""
        return observe.subscribe(self.observe)

    async def count_outbox(self, factory: Factory, seconds: float = OUTBOX_QUERY_SECONDS) -> None:
        """Set the outbox gauges from one GROUP BY; when the database does not answer, drop
        them (a stale count would look current) and log once until it answers again."""
        try:
            async with asyncio.timeout(seconds), factory() as session:
                counts = await count_by_status(session)
        except Exception as error:  # unreachable, refused, timed out: the scrape goes on
            self.outbox_rows.clear()
            self.outbox_up.set(0)
            if self._outbox_answered is not False:
                log.warning("metrics: outbox rows not counted (%s)", type(error).__name__)
            self._outbox_answered = False
            return
        for status, count in counts.items():
            self.outbox_rows.labels(status).set(count)
        self.outbox_up.set(1)
        if self._outbox_answered is False:
            log.info("metrics: outbox rows counted again")
        self._outbox_answered = True


@lru_cache(maxsize=1)
def process_metrics() -> Metrics:
    """This process's metrics, subscribed to the engine's reports for the process's life."""
    metrics = Metrics()
    metrics.subscribe()
    return metrics


def metrics_routes(factory: Factory | None, metrics: Metrics | None = None) -> list[web.RouteDef]:
    """`GET /metrics` in the format the scraper asks for (Prometheus text or OpenMetrics).

    `factory`: the database whose outbox is counted at each scrape (None: no outbox gauges).
    `metrics`: default, this process's own (`process_metrics`).
    """
    chosen = metrics or process_metrics()

    async def scrape(request: web.Request) -> web.Response:
        if factory is not None:
            await chosen.count_outbox(factory)
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(chosen.registry), headers={"Content-Type": content_type})

    return [web.get(METRICS_PATH, scrape)]
