"""Engine Screens as Slack Block Kit: messages, the wizard modal and the App Home (no I/O here).

Every pressable button carries the engine's opaque data (`Screen.data`) in `value`; its
`action_id` is only a per-view unique handle (`bk:<n>`), so the front end answers every action
whose id matches `PRESS_ACTION` by pressing `value`. Links get `bk:link:<n>` (Slack still sends an
action for them, which only needs an ack). Slack's month grid would be seven buttons a row with no
way to grey out a day, so the calendar becomes a datepicker and `date_press` maps the picked day
back to the screen's own PICK_DATE button.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.chat.screens import Button, Card, Kind, Screen

Block = dict[str, Any]  # a Block Kit JSON object

# Slack's published limits (Block Kit reference); going over any of them fails the whole call.
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_VALUE = 2000
MAX_URL = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_METADATA = 3000
MAX_FALLBACK_TEXT = 3000
ROW = 5  # Slack wraps long actions blocks; five buttons keep a row readable
NOTE_MAX_LENGTH = 500

MODAL_TITLE = "Book a Session"  # modal titles stop at 24 characters
MODAL_CLOSE = "Cancel"
MODAL_SUBMIT = "Save note"
CALLBACK_ID = "bookbot_wizard"
DATE_ACTION = "bk:date"
NOTE_ACTION = "bk:note"
NOTE_BLOCK = "note"
PRESS_ACTION = re.compile(r"bk:\d+")
LINK_PREFIX = "bk:link:"
DATE_PLACEHOLDER = "Pick a day"
FREE_DAYS = "{month}: free on {days}"
NO_FREE_DAYS = "{month}: no free days"
NOT_SHOWN = "Some options are not shown here."
ELLIPSIS = "…"
BLANK = "·"  # Slack refuses buttons with empty text


def escape(text: str) -> str:
    """Slack mrkdwn reads `<...>` as links and mentions; these three are its only escapes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _mrkdwn(text: str, limit: int, bold: bool = False) -> str:
    """Escaped and cut to `limit` without splitting an `&amp;` in half."""
    wrap = "*" if bold else ""
    escaped = escape(text)
    if len(escaped) + 2 * len(wrap) <= limit:
        return f"{wrap}{escaped}{wrap}"
    out: list[str] = []
    size = 2 * len(wrap) + len(ELLIPSIS)
    for char in text:
        piece = escape(char)
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    out.append(ELLIPSIS)
    return f"{wrap}{''.join(out)}{wrap}"


def _plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": _cut(text.strip() or BLANK, limit), "emoji": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _chunks(lines: Sequence[str], limit: int) -> Iterator[str]:
    """Escaped lines packed into texts of at most `limit` characters."""
    current = ""
    for line in lines:
        piece = _mrkdwn(line, limit)
        if current and len(current) + 1 + len(piece) > limit:
            yield current
            current = ""
        current = f"{current}\n{piece}" if current else piece
    if current:
        yield current


@dataclass
class _Ids:
    """Hands out action_ids unique within one message or view."""

    count: int = 0
    dates: int = 0

    def press(self) -> str:
        self.count += 1
        return f"bk:{self.count}"

    def link(self) -> str:
        self.count += 1
        return f"{LINK_PREFIX}{self.count}"

    def date(self) -> str:
        self.dates += 1
        return DATE_ACTION if self.dates == 1 else f"{DATE_ACTION}:{self.dates}"


@dataclass
class _Parts:
    """A screen in three parts, so that an over-long one can lose its middle, not its exits."""

    head: list[Block] = field(default_factory=list)
    body: list[Block] = field(default_factory=list)
    tail: list[Block] = field(default_factory=list)

    def all(self) -> list[Block]:
        return [*self.head, *self.body, *self.tail]


def _button(button: Button, screen: Screen, ids: _Ids) -> Block | None:
    """A Slack button, or None for what cannot be pressed (inert days, over-long data)."""
    text = _plain(button.label, MAX_BUTTON_TEXT)
    if button.url:
        if len(button.url) > MAX_URL:
            return None
        return {"type": "button", "text": text, "url": button.url, "action_id": ids.link()}
    if not button.enabled or (button.action is None and button.payload is None):
        return None
    value = screen.data(button)
    if len(value) > MAX_VALUE:
        return None
    return {"type": "button", "text": text, "value": value, "action_id": ids.press()}


def _actions(elements: list[Block], per_block: int) -> list[Block]:
    return [
        {"type": "actions", "elements": elements[i : i + per_block]}
        for i in range(0, len(elements), per_block)
    ]


def _rows(
    rows: Sequence[Sequence[Button]], screen: Screen, ids: _Ids, compact: bool
) -> list[Block]:
    """One actions block per engine row; compact packs the rows into as few blocks as fit."""
    if compact:
        flat = [b for row in rows for button in row if (b := _button(button, screen, ids))]
        return _actions(flat, MAX_ACTIONS_ELEMENTS)
    blocks: list[Block] = []
    for row in rows:
        elements = [b for button in row if (b := _button(button, screen, ids))]
        blocks.extend(_actions(elements, ROW))
    return blocks


def _card_text(card: Card) -> str:
    """Five pieces of at most 500 characters keep a card within one section's 3000."""
    lines = (_mrkdwn(line, 500) for line in card.lines[:4])
    return "\n".join((_mrkdwn(card.title, 500, bold=True), *lines))


def _cards(screen: Screen, ids: _Ids, compact: bool) -> list[Block]:
    if compact:
        texts = [_card_text(card) for card in screen.cards]
        blocks = [_section(text) for text in _chunks_raw(texts, MAX_SECTION_TEXT)]
        return blocks + _rows([(card.button,) for card in screen.cards], screen, ids, True)
    blocks = []
    for card in screen.cards:
        section = _section(_card_text(card))
        if card.image_url and len(card.image_url) <= MAX_URL:
            section["accessory"] = {
                "type": "image",
                "image_url": card.image_url,
                "alt_text": _cut(card.title.strip() or BLANK, 2000),
            }
        blocks.append(section)
        blocks.extend(_rows([(card.button,)], screen, ids, False))
    return blocks


def _chunks_raw(texts: Sequence[str], limit: int) -> Iterator[str]:
    """Already escaped card texts packed into sections, a blank line between cards."""
    current = ""
    for text in texts:
        if current and len(current) + 2 + len(text) > limit:
            yield current
            current = ""
        current = f"{current}\n\n{text}" if current else text
    if current:
        yield current


def day_buttons(screen: Screen) -> list[Button]:
    """The calendar's pressable days, in order."""
    return [
        button
        for week in screen.calendar
        for button in week
        if button.enabled and button.action is not None and button.action.kind is Kind.PICK_DATE
    ]


def date_press(screen: Screen, picked: date) -> str | None:
    """The engine data for a datepicker choice, when that day is pressable on this screen.

    None means the day has no free times (or lies outside the month shown): the front end says so
    instead of inventing a press the engine never offered.
    """
    for button in day_buttons(screen):
        assert button.action is not None
        if button.action.arg == picked.isoformat():
            return screen.data(button)
    return None


def _month_label(screen: Screen) -> str:
    """The navigation row's inert middle button names the month shown."""
    nav = screen.calendar[0] if screen.calendar else ()
    names = [b.label for b in nav if not b.enabled and b.label.strip()]
    return names[0] if names else ""


def _calendar(screen: Screen, ids: _Ids) -> list[Block]:
    if not screen.calendar:
        return []
    days = day_buttons(screen)
    picker: Block = {
        "type": "datepicker",
        "action_id": ids.date(),
        "placeholder": _plain(DATE_PLACEHOLDER, 150),
    }
    if days:
        assert days[0].action is not None
        picker["initial_date"] = days[0].action.arg
    month = _month_label(screen)
    summary = (
        FREE_DAYS.format(month=month, days=", ".join(b.label for b in days))
        if days
        else NO_FREE_DAYS.format(month=month)
    )
    return [
        {"type": "actions", "block_id": "date", "elements": [picker]},
        _context(_mrkdwn(summary, MAX_CONTEXT_TEXT)),
    ]


def _parts(screen: Screen, ids: _Ids, compact: bool, note_input: bool) -> _Parts:
    parts = _Parts()
    parts.head.append(_section(_mrkdwn(screen.title, MAX_SECTION_TEXT, bold=True)))
    if screen.notice:
        parts.head.append(_context(_mrkdwn(f"⚠️ {screen.notice}", MAX_CONTEXT_TEXT)))
    parts.head.extend(_section(text) for text in _chunks(screen.lines, MAX_SECTION_TEXT))
    parts.body.extend(_cards(screen, ids, compact))
    parts.body.extend(_calendar(screen, ids))
    parts.tail.extend(_rows(screen.buttons, screen, ids, compact))
    if screen.prompt and note_input:
        parts.tail.append(
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "label": _plain(screen.prompt, 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_ACTION,
                    "multiline": True,
                    "max_length": NOTE_MAX_LENGTH,
                },
            }
        )
    elif screen.prompt:
        parts.tail.append(_context(_mrkdwn(f"✎ {screen.prompt}", MAX_CONTEXT_TEXT)))
    return parts


def _fit(screen: Screen, ids: _Ids, limit: int, note_input: bool = False) -> list[Block]:
    """The screen in at most `limit` blocks: compact cards and rows first, then drop the middle."""
    start = (ids.count, ids.dates)
    full = _parts(screen, ids, compact=False, note_input=note_input)
    if len(full.all()) <= limit:
        return full.all()
    ids.count, ids.dates = start
    parts = _parts(screen, ids, compact=True, note_input=note_input)
    if len(parts.all()) <= limit:
        return parts.all()
    # Title, notice and the way out (back, cancel, the prompt) matter more than the list.
    notice = [_context(NOT_SHOWN)]
    room = limit - len(notice)
    tail = parts.tail[-max(room // 2, 1) :] if parts.tail else []
    head = parts.head[: max(room - len(tail), 1)]
    body = parts.body[: max(room - len(head) - len(tail), 0)]
    return [*head, *body, *notice, *tail][:limit]


def message_blocks(screen: Screen) -> list[Block]:
    """A chat message for one screen; its `more` screens are messages of their own."""
    return _fit(screen, _Ids(), MAX_MESSAGE_BLOCKS)


def message_text(screen: Screen) -> str:
    """The notification and accessibility fallback Slack shows where blocks are not drawn."""
    return _mrkdwn(screen.text, MAX_FALLBACK_TEXT)


def modal_view(screen: Screen, private_metadata: str) -> Block:
    """The wizard as a modal; a prompt becomes a note field, which needs a submit button."""
    if len(private_metadata) > MAX_METADATA:
        raise ValueError("private_metadata is longer than Slack keeps (3000 characters)")
    view: Block = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(MODAL_TITLE, 24),
        "close": _plain(MODAL_CLOSE, 24),
        "private_metadata": private_metadata,
        "blocks": _fit(screen, _Ids(), MAX_VIEW_BLOCKS, note_input=True),
    }
    if screen.prompt:
        view["submit"] = _plain(MODAL_SUBMIT, 24)
    return view


def home_view(sections: Sequence[Screen]) -> Block:
    """The App Home: each screen (and its `more`) drawn like a message, dividers between."""
    screens = [s for section in sections for s in (section, *section.more)]
    ids = _Ids()
    blocks: list[Block] = []
    for index, screen in enumerate(screens):
        room = MAX_VIEW_BLOCKS - len(blocks) - (1 if index else 0)
        if room < 2:
            break
        if index:
            blocks.append({"type": "divider"})
        blocks.extend(_fit(screen, ids, min(room, MAX_MESSAGE_BLOCKS)))
    return {"type": "home", "blocks": blocks}
