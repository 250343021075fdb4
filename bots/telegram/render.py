"""Engine Screens as Telegram messages: HTML text and inline keyboards (no I/O here)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from engine.chat.screens import Action, Button, Card, Kind, Screen

STRIKE = "\u0336"  # combining long stroke: inert calendar days stay visible but look crossed out
BLANK = "·"  # Telegram refuses buttons with empty text
# Telegram tolerates a short burst of messages to one chat, then answers 429. Up to this many ST
# cards go out as their own messages (photos); with more, they are listed inside the wizard
# message itself, so step 1 is always one burst-safe group of messages.
MAX_CARD_MESSAGES = 4


@dataclass(frozen=True)
class CardMessage:
    caption: str
    photo_url: str | None
    markup: InlineKeyboardMarkup | None


def text_of(screen: Screen) -> str:
    parts = [f"⚠️ <i>{html.escape(screen.notice)}</i>"] if screen.notice else []
    parts.append(f"<b>{html.escape(screen.title)}</b>")
    parts.extend(html.escape(line) for line in screen.lines)
    if _inline_cards(screen):
        for card in screen.cards:
            parts.append("")
            parts.append(f"<b>{html.escape(card.title)}</b>")
            parts.extend(html.escape(line) for line in card.lines)
    if screen.prompt:
        parts.append(f"✎ <i>{html.escape(screen.prompt)}</i>")
    return "\n".join(parts)


def _inline(button: Button, screen: Screen) -> InlineKeyboardButton:
    if button.url:
        return InlineKeyboardButton(button.label, url=button.url)
    label = button.label.strip() or BLANK
    if not button.enabled:
        action = button.action or Action(Kind.NOOP)
        if label.isdigit():
            label = "".join(ch + STRIKE for ch in label)
        return InlineKeyboardButton(label, callback_data=action.encode(screen.nonce))
    return InlineKeyboardButton(label, callback_data=screen.data(button))


def keyboard(screen: Screen) -> InlineKeyboardMarkup | None:
    inline = _inline_cards(screen)
    card_rows = [(c.button,) for c in screen.cards if c.button.enabled] if inline else []
    rows = [
        [_inline(button, screen) for button in row]
        for row in (*card_rows, *screen.calendar, *screen.buttons)
        if row
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def _inline_cards(screen: Screen) -> bool:
    return len(screen.cards) > MAX_CARD_MESSAGES


def cards(screen: Screen) -> list[CardMessage]:
    """The ST cards that go out as messages of their own (none when they are listed inline)."""
    if _inline_cards(screen):
        return []
    return [_card(card, screen) for card in screen.cards]


def _card(card: Card, screen: Screen) -> CardMessage:
    caption = "\n".join((f"<b>{html.escape(card.title)}</b>", *map(html.escape, card.lines)))
    markup = InlineKeyboardMarkup([[_inline(card.button, screen)]]) if card.button.enabled else None
    return CardMessage(caption, card.image_url, markup)
