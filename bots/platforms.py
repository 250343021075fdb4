"""The chat platforms bookbot knows, one line each; a platform is enabled when configured.

Adding one (`bots/<name>/`) means adding its line here: nothing in `engine/` or `storage/`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.platform import Platform, PlatformProvider
from bots.slack.platform import SLACK
from bots.telegram.platform import TELEGRAM
from engine.followup.reminders import utc_now
from engine.settings import Settings

PLATFORMS: dict[str, PlatformProvider] = {
    "telegram": TELEGRAM,
    "slack": SLACK,
}


def enabled_platforms(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime] = utc_now,
    providers: Mapping[str, PlatformProvider] = PLATFORMS,
) -> list[Platform]:
    """The platforms whose settings are configured, in registry order."""
    built = (provider.build(settings, factory, clock) for provider in providers.values())
    return [platform for platform in built if platform is not None]


def platform_secrets(providers: Mapping[str, PlatformProvider] = PLATFORMS) -> list[str]:
    """Every platform's secrets, for the log redaction."""
    return [secret for provider in providers.values() for secret in provider.secrets()]
