"""The one seam between a chat platform and the rest of bookbot.

A platform (`bots/<name>/platform.py`) hands the shared code a `Platform`: its web routes (mounted
by `bots/server.py` next to `/healthz`), its ChatSender and rate limits (used by the outbox
worker, one pacer per platform), its identity piece (how a signed payload becomes a link that
opens the chat signed in; None where people are matched otherwise, e.g. Slack by verified
e-mail), its start-up checks, and start/stop hooks. `bots/platforms.py` lists the providers,
one line each; nothing in `engine/` or `storage/` names a platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.followup.senders import ChatSender, RateLimits
from engine.settings import Settings

__all__ = ["Platform", "PlatformProvider", "RateLimits"]


async def _no_problems() -> list[str]:
    return []


async def _nothing(receive: bool = False) -> None:
    return None


async def _nothing_to_stop() -> None:
    return None


@dataclass(frozen=True)
class Platform:
    """One enabled chat platform, as the server and the worker see it."""

    name: str
    """Its key in `chat_identities.platform` and in outbox routing (`ChatSender.platform`)."""
    sender: ChatSender
    limits: RateLimits
    routes: Sequence[web.RouteDef] = ()
    """aiohttp routes for incoming traffic (webhooks, slash commands); paths must not clash."""
    sign_in_link: Callable[[str], str] | None = None
    """Identity: a signed payload (engine/links.py) -> the URL that opens this chat signed in."""
    check: Callable[[], Awaitable[list[str]]] = field(default=_no_problems)
    """Start-up checks: problems (e.g. a secret at its public default) that stop `serve`."""
    start: Callable[[bool], Awaitable[None]] = field(default=_nothing)
    """Connect; with `receive=True` also take incoming traffic (register the webhook...)."""
    stop: Callable[[], Awaitable[None]] = field(default=_nothing_to_stop)


@dataclass(frozen=True)
class PlatformProvider:
    """What `bots/platforms.py` registers per platform: a builder and the secrets to redact.

    `build` returns None when the platform is not configured (no token): it is then simply not
    enabled, and `bookbot serve` runs without it.
    """

    build: Callable[
        [Settings, async_sessionmaker[AsyncSession], Callable[[], datetime]], Platform | None
    ]
    secrets: Callable[[], list[str]]
