"""The one interface through which the engine sends chat messages outside a conversation.

Reminders, nudges and notices go through a ChatSender per platform; a Slack sender implements
the same two things without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutButton:
    label: str
    data: str | None = None  # pressed: comes back to the bot (engine.followup.manage button data)
    url: str | None = None


@dataclass(frozen=True)
class OutMessage:
    text: str
    buttons: tuple[tuple[OutButton, ...], ...] = ()


@dataclass(frozen=True)
class RateLimits:
    """How fast one platform accepts messages: the worker paces each platform by its own.

    `per_second`: all sends of the bot/app together, by every worker (None: the platform sets
    no overall limit); `burst`: how many of those may go at once after a quiet spell (with the
    shared rate, engine/followup/pacing.py; a process pacing alone spaces every send);
    `per_chat_interval`: seconds between two messages to the same chat or channel.
    """

    per_second: float | None = 30.0
    per_chat_interval: float = 1.0
    burst: int = 1

    def __post_init__(self) -> None:
        if (self.per_second is not None and self.per_second <= 0) or self.per_chat_interval < 0:
            raise ValueError("per_second must be positive and per_chat_interval not negative")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")


class SendError(Exception):
    """`retry_after`: the platform asked us to wait (HTTP 429); `permanent`: retrying cannot help
    (the person blocked the bot, the chat is gone)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class ChatSender(Protocol):
    platform: str

    async def send(self, chat_id: str, message: OutMessage) -> None: ...
