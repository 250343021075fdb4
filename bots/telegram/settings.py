"""Telegram's settings group: `TELEGRAM_*` variables, read once (pydantic-settings).

The variable names are the ones bookbot always used (TELEGRAM_TOKEN, TELEGRAM_WEBHOOK_SECRET,
...); they now live with the adapter, so the engine's Settings holds engine things only.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_WEBHOOK_SECRET = "change-me-webhook-secret"


class TelegramSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEGRAM_", env_file=".env", extra="ignore")

    token: str | None = Field(default=None, description="Bot token from @BotFather.")
    api_url: str = Field(
        default="https://api.telegram.org/bot", description="Bot API base URL (tests: a fake)."
    )
    file_url: str = Field(
        default="https://api.telegram.org/file/bot", description="Bot API file base URL."
    )
    bot_username: str = Field(
        default="tutoring_booking_bot", description="The bot's @username, for minted links."
    )
    webhook_url: str | None = Field(
        default=None, description="Public HTTPS URL of /telegram for `bookbot serve`."
    )
    send_rate: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Messages a second the bot sends at most, all outbox workers together in every "
            "process (shared through the database); Telegram allows about 30."
        ),
    )
    webhook_secret: str = Field(
        default=DEV_WEBHOOK_SECRET,  # `bookbot serve` refuses it
        pattern=r"^[A-Za-z0-9_-]{1,256}$",
        description="Checked against X-Telegram-Bot-Api-Secret-Token on every webhook call.",
    )

    def insecure_defaults(self, *, webhook: bool) -> list[str]:
        """The webhook secret still at its public default: anyone could post fake updates."""
        return (
            ["TELEGRAM_WEBHOOK_SECRET"]
            if webhook and self.webhook_secret == DEV_WEBHOOK_SECRET
            else []
        )

    def secrets(self) -> list[str]:
        """What logs must never show: the token, its secret half, and the webhook secret."""
        found = [self.webhook_secret]
        if self.token:
            found.append(self.token)
            if ":" in self.token:
                found.append(self.token.split(":", 1)[1])  # the part that is the secret
        return found


@lru_cache(maxsize=1)
def get_telegram_settings() -> TelegramSettings:
    return TelegramSettings()
