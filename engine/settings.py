"""The engine's settings, read once from the environment (pydantic-settings); every default runs
locally. Each platform and the e-mail channel keep their own group in `bots/` (same variable
names), so adding a platform changes nothing here."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///bookbot.db",
        description="SQLAlchemy URL: postgresql://... in production, else a local SQLite file.",
    )
    reminder_offsets_minutes: list[int] = Field(
        default=[24 * 60, 60], description="Reminders before a session, in minutes."
    )
    dashboard_url: str = Field(
        default="https://tutoring.example.edu/dashboard",
        description="The web dashboard (SDSH) that 'Back to Dashboard' opens.",
    )
    enroll_url: str = Field(
        default="https://tutoring.example.edu/courses/{slug}",
        description="Course page where a student enrolls; {slug} is the course slug.",
    )
    link_secret: str = Field(
        default="local-development-secret",  # `bookbot telegram`/`serve` refuse it
        description="HMAC secret shared with the web platform for signed deep links.",
    )
    link_ttl_hours: int = Field(default=72, description="How long a minted deep link is valid.")
    change_cutoff_minutes: int = Field(
        default=120, description="Cancelling/rescheduling closes this long before the start."
    )
    jitsi_base_url: str = Field(
        default="https://meet.jit.si", description="Jitsi Meet server for on-demand video rooms."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8080",  # `bookbot serve`'s default listen address
        description=(
            "The address people's browsers reach `bookbot serve` at (https://bot.example.edu): "
            "e-mails and invites carry <PUBLIC_BASE_URL>/join/<token> for the video room."
        ),
    )
    calendar_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long one process reuses the STs' calendars and a student's sessions between "
            "chat events (0: read them on every event). Bookings always read afresh."
        ),
    )
    schedule_later_nudge_hours: float = Field(
        default=24, description="After 'Schedule Later', nudge the student this much later."
    )
    email_from: str = Field(
        default="Tutoring <bookings@tutoring.example.edu>", description="Sender of e-mails."
    )
    log_level: str | None = Field(
        default=None,
        description="Root log level; unset: INFO for telegram/serve/worker, WARNING otherwise.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text (development) or one JSON object a line (production).",
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Connections each process keeps open to PostgreSQL."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, description="Extra connections a process may open in a burst."
    )
    processed_updates_keep_hours: float = Field(
        default=48,
        ge=24,  # Telegram redelivers an unacknowledged update for up to 24 hours
        description="The worker prunes de-duplication records of platform deliveries this old.",
    )
    link_uses_keep_hours: float = Field(
        default=24,
        ge=0,
        description="The worker prunes a deep link's first-use record this long after it expired.",
    )
    worker_lease_seconds: float = Field(
        default=120,
        gt=0,
        description=(
            "How long an outbox worker holds the rows it claimed: a worker that dies mid-batch "
            "has its unsent rows sent by another worker once this much time has passed."
        ),
    )


DEV_LINK_SECRET = "local-development-secret"
MIN_LINK_SECRET_BYTES = 32


def insecure_defaults(settings: Settings) -> list[str]:
    """Secrets still at their development defaults: with them anyone could act as any user.

    Each platform checks its own secrets at start-up (bots/<platform>/settings.py)."""
    weak = settings.link_secret == DEV_LINK_SECRET
    # HMAC-SHA256 keys shorter than the hash are guessable offline from one captured link.
    weak = weak or len(settings.link_secret.encode()) < MIN_LINK_SECRET_BYTES
    return ["LINK_SECRET"] if weak else []


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
