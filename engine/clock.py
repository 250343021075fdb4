"""The one "now" of the engine: every default clock is this function, so tests replace one thing."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC (storage and every rule work in UTC)."""
    return datetime.now(UTC)
