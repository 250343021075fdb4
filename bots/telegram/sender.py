"""ChatSender for Telegram: the engine's outgoing messages through a PTB Bot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ExtBot

from bots.telegram.retries import ONCE
from engine.followup.senders import OutButton, OutMessage, SendError


def _button(button: OutButton) -> InlineKeyboardButton:
    if button.url:
        return InlineKeyboardButton(button.label, url=button.url)
    return InlineKeyboardButton(button.label, callback_data=button.data)


class TelegramSender:
    platform = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: str, message: OutMessage) -> None:
        markup = (
            InlineKeyboardMarkup([[_button(b) for b in row] for row in message.buttons])
            if message.buttons
            else None
        )
        try:
            # The outbox reschedules a failed send itself: no retries in the rate limiter.
            once: dict[str, Any] = {"rate_limit_args": ONCE} if isinstance(self.bot, ExtBot) else {}
            await self.bot.send_message(int(chat_id), message.text, reply_markup=markup, **once)
        except RetryAfter as error:
            wait = error.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            raise SendError(str(error), retry_after=seconds) from error
        except (Forbidden, BadRequest) as error:
            raise SendError(str(error), permanent=True) from error
        except (TimedOut, NetworkError) as error:
            raise SendError(str(error)) from error
