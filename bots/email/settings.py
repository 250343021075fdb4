"""The e-mail channel's settings group: which provider sends, or where .eml files go.

`EMAIL_FROM` stays with the engine: it is also the ORGANIZER of every calendar invite.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    resend_api_key: str | None = Field(
        default=None, description="Resend API key; without it e-mails go to EMAIL_OUTBOX_DIR."
    )
    resend_api_url: str | None = Field(default=None, description="Resend API base URL (tests).")
    email_outbox_dir: str = Field(
        default="outbox", description="Where e-mails are written as .eml files without an API key."
    )

    def secrets(self) -> list[str]:
        """What logs must never show (bots/logs.py redacts it)."""
        return [self.resend_api_key] if self.resend_api_key else []


@lru_cache(maxsize=1)
def get_email_settings() -> EmailSettings:
    return EmailSettings()
