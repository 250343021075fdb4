"""Engine Screens as Slack Block Kit: messages, the wizard modal and the App Home (no I/O here).

Every pressable button carries the engine's opaque data (`Screen.data`) in `value`; its
`action_id` is only a per-view unique handle (`bk:<n>`), so the front end answers every action
whose id matches `PRESS_ACTION` by pressing `value`. Links get `bk:link:<n>` (Slack still sends an
action for them, which only needs an ack). Slack's month grid would be seven buttons a row with no
way to grey out a day, so the calendar becomes a datepicker whose block carries the screen's
nonce: `date_value` turns the picked day into the engine's own PICK_DATE press, and the engine
judges it (a day without free times gets the spec's message). The reminders toggle becomes a
checkbox whose option carries the toggle's data, so ticking and unticking are the same press.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.chat import messages as m
from engine.chat.screens import Action, Button, Card, Kind, Screen
from engine.chat.staff_booking import Option

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
DESK_TITLE = "Your sessions"
NOTICE_BLOCK = "notice"
CALLBACK_ID = "bookbot_wizard"
DATE_ACTION = "bk:date"
DATES = re.compile(r"bk:date(:\d+)?")
DATE_BLOCK = "date:{nonce}"
REMINDERS_ACTION = "bk:remind"
MAX_OPTION_TEXT = 75
MAX_OPTIONS = 100
FOR_CALLBACK = "bookbot_book_for"
AWAY_CALLBACK = "bookbot_away"
COURSE_BLOCK, COURSE_ACTION = "course", "bk:course"
STUDENT_BLOCK, STUDENT_ACTION = "student", "bk:student"
AWAY_FIRST, AWAY_LAST = "bk:away_first", "bk:away_last"
HOURS_DAY, HOURS_START, HOURS_END = "bk:hours_day", "bk:hours_start", "bk:hours_end"
AWAY_DAYS_ACTION, AWAY_HOURS_ACTION = "away:days", "away:hours"
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
    if button.action is not None and button.action.kind is Kind.TOGGLE_REMINDERS:
        return _checkbox(button, screen)
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


def _checkbox(button: Button, screen: Screen) -> Block:
    """The reminders toggle as a checkbox, ticked when they are on (the engine's label says)."""
    option = {"text": _plain(m.REMINDERS_CHECKBOX, MAX_OPTION_TEXT), "value": screen.data(button)}
    box: Block = {"type": "checkboxes", "action_id": REMINDERS_ACTION, "options": [option]}
    if button.label == m.REMINDERS_ON:
        box["initial_options"] = [option]
    return box


def checkbox_value(action: Block, shown: Sequence[Block]) -> str | None:
    """The toggle's data from a checkbox action: the ticked option's value, or (unticked) the
    value of the option the shown blocks offered."""
    ticked = action.get("selected_options") or []
    if ticked:
        return str(ticked[0].get("value", ""))
    for block in shown:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action.get("action_id") and element.get("options"):
                return str(element["options"][0].get("value", ""))
    return None


def date_value(block_id: str, picked: str | None) -> str | None:
    """The engine's PICK_DATE press for a day picked in a datepicker, or None for a block or a
    date we never drew; the engine then judges the day like any pressed day."""
    prefix = DATE_BLOCK.format(nonce="")
    nonce = block_id.removeprefix(prefix)
    if not block_id.startswith(prefix) or not (nonce.isascii() and nonce.isdigit()):
        return None
    try:
        day = date.fromisoformat(picked or "")
    except ValueError:
        return None
    return Action(Kind.PICK_DATE, day.isoformat()).encode(int(nonce[:12]))


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
        {
            "type": "actions",
            "block_id": DATE_BLOCK.format(nonce=screen.nonce),
            "elements": [picker],
        },
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


def modal_view(
    screen: Screen,
    private_metadata: str,
    callback_id: str = CALLBACK_ID,
    title: str = MODAL_TITLE,
) -> Block:
    """The wizard as a modal; a prompt becomes a note field, which needs a submit button."""
    if len(private_metadata) > MAX_METADATA:
        raise ValueError("private_metadata is longer than Slack keeps (3000 characters)")
    view: Block = {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, 24),
        "close": _plain(MODAL_CLOSE, 24),
        "private_metadata": private_metadata,
        "blocks": _fit(screen, _Ids(), MAX_VIEW_BLOCKS, note_input=True),
    }
    if screen.prompt:
        view["submit"] = _plain(MODAL_SUBMIT, 24)
    return view


def with_notice(view: Block, notice: str | None) -> Block:
    """A modal as it was, with a notice under its title: a press in it changed nothing."""
    keys: tuple[str, ...] = ("type", "callback_id", "title", "close", "submit")
    kept: Block = {k: view[k] for k in keys if k in view}
    shown = list(view.get("blocks", []))
    note = _context(_mrkdwn(f"⚠️ {notice or ''}", MAX_CONTEXT_TEXT))
    shown = [b for b in shown if b.get("block_id") != NOTICE_BLOCK]
    note["block_id"] = NOTICE_BLOCK
    return {
        **kept,
        "private_metadata": view.get("private_metadata", ""),
        "blocks": [*shown[:1], note, *shown[1:]][:MAX_VIEW_BLOCKS],
    }


def home_view(sections: Sequence[Screen], time_off: bool = False) -> Block:
    """The App Home: each screen (and its `more`) drawn like a message, dividers between; an
    ST's home starts with the ways into time off."""
    screens = [s for section in sections for s in (section, *section.more)]
    ids = _Ids()
    blocks: list[Block] = [away_buttons()] if time_off else []
    for index, screen in enumerate(screens):
        room = MAX_VIEW_BLOCKS - len(blocks) - (1 if index else 0) - 1  # 1: "not shown"
        if room < 2:
            blocks.append(_context(NOT_SHOWN))  # say so rather than cut silently
            break
        if index:
            blocks.append({"type": "divider"})
        blocks.extend(_fit(screen, ids, min(room, MAX_MESSAGE_BLOCKS)))
    return {"type": "home", "blocks": blocks}


def option(choice: Option) -> Block:
    return {"text": _plain(choice.label, MAX_OPTION_TEXT), "value": choice.value[:150]}


def options(choices: Sequence[Option]) -> list[Block]:
    return [option(c) for c in choices[:MAX_OPTIONS]]


def _modal(title: str, blocks: list[Block], callback_id: str, metadata: str = "") -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, 24),
        "close": _plain(MODAL_CLOSE, 24),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def text_modal(text: str, title: str = MODAL_TITLE) -> Block:
    """A modal that only says something: the loading view opened on the acknowledge path, or
    one sentence for someone the app cannot match."""
    return _modal(title, [_section(_mrkdwn(text, MAX_SECTION_TEXT))], CALLBACK_ID)


def _input(block_id: str, label: str, element: Block, optional: bool = False) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, 2000),
        "element": element,
        "optional": optional,
    }


def book_for_view(courses: Sequence[Option], metadata: str, chosen: Option | None = None) -> Block:
    """A coordinator's first step: the course (`chosen`: named after /book), and the student
    found as they type."""
    course: Block = {
        "type": "static_select",
        "action_id": COURSE_ACTION,
        "placeholder": _plain(m.BOOK_FOR_COURSE, 150),
        "options": options(courses),
    }
    if chosen is not None:
        course["initial_option"] = option(chosen)
    student = {
        "type": "external_select",
        "action_id": STUDENT_ACTION,
        "placeholder": _plain(m.BOOK_FOR_STUDENT_HINT, 150),
        "min_query_length": 1,
    }
    view = _modal(
        MODAL_TITLE,
        [
            _section(_mrkdwn(m.BOOK_FOR_INTRO, MAX_SECTION_TEXT)),
            _input(COURSE_BLOCK, m.BOOK_FOR_COURSE, course),
            _input(STUDENT_BLOCK, m.BOOK_FOR_STUDENT, student),
        ],
        FOR_CALLBACK,
        metadata,
    )
    view["submit"] = _plain(m.BOOK_FOR_NEXT, 24)
    return view


def away_view(hours: bool) -> Block:
    """Time off from App Home: days off (a first and an optional last day), or special hours
    on one day; the answer is the engine's /away, as if typed."""
    if hours:
        fields = [
            _input("hours_day", m.AWAY_FORM_DAY, {"type": "datepicker", "action_id": HOURS_DAY}),
            _input(
                "hours_start", m.AWAY_FORM_START, {"type": "timepicker", "action_id": HOURS_START}
            ),
            _input("hours_end", m.AWAY_FORM_END, {"type": "timepicker", "action_id": HOURS_END}),
        ]
    else:
        fields = [
            _input(
                "away_first", m.AWAY_FORM_FIRST, {"type": "datepicker", "action_id": AWAY_FIRST}
            ),
            _input(
                "away_last",
                m.AWAY_FORM_LAST,
                {"type": "datepicker", "action_id": AWAY_LAST},
                optional=True,
            ),
        ]
    title = m.AWAY_FORM_HOURS_TITLE if hours else m.AWAY_FORM_TITLE
    view = _modal(title, fields, AWAY_CALLBACK)
    view["submit"] = _plain(m.AWAY_FORM_SAVE, 24)
    return view


def away_text(values: dict[str, dict[str, Block]]) -> str:
    """A submitted time-off form as the /away text the engine reads ("2026-12-05 to
    2026-12-07", "2026-12-05 10:00-12:00")."""
    picked: dict[str, str] = {}
    for block in values.values():
        for action_id, entry in block.items():
            value = entry.get("selected_date") or entry.get("selected_time")
            if value:
                picked[action_id] = str(value)
    if HOURS_DAY in picked:
        start, end = picked.get(HOURS_START, ""), picked.get(HOURS_END, "")
        return f"{picked[HOURS_DAY]} {start}-{end}"
    first, last = picked.get(AWAY_FIRST, ""), picked.get(AWAY_LAST)
    return f"{first} to {last}" if last and last != first else first


def away_buttons() -> Block:
    """App Home's way into time off (Slack has no typed /away there)."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": _plain(m.AWAY_DAYS_BUTTON, 75),
                "action_id": AWAY_DAYS_ACTION,
            },
            {
                "type": "button",
                "text": _plain(m.AWAY_HOURS_BUTTON, 75),
                "action_id": AWAY_HOURS_ACTION,
            },
        ],
    }
