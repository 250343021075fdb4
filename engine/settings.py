"""Settings read once from the environment (pydantic-settings); every default runs locally."""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
