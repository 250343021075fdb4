"""Slack's settings group: `SLACK_*` variables, read once (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_", env_file=".env", extra="ignore")

    bot_token: str | None = Field(default=None, description="Bot token (xoxb-…) of the app.")
    signing_secret: str | None = Field(
        default=None, description="Checks every request Slack sends (HMAC-SHA256)."
    )
    app_token: str | None = Field(
        default=None, description="App-level token (xapp-…) for Socket Mode in development."
    )
    send_rate: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Messages a second the app sends at most, all outbox workers together in every "
            "process (shared through the database)."
        ),
    )
    api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack Web API base URL, ending in '/' (tests: a fake on 127.0.0.1).",
    )

    def secrets(self) -> list[str]:
        """What logs must never show."""
        return [s for s in (self.bot_token, self.signing_secret, self.app_token) if s]


@lru_cache(maxsize=1)
def get_slack_settings() -> SlackSettings:
    return SlackSettings()
