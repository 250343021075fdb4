"""Platform-neutral screens and the typed actions their buttons carry.

An action serialises to at most 64 bytes (Telegram's callback_data limit) and carries the
screen's nonce, so a button pressed on an old message is recognised as stale on arrival.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_ACTION_BYTES = 64


class Kind(enum.StrEnum):
    PICK_COURSE = "c"
    PICK_ST = "t"
    MONTH = "m"
    PICK_DATE = "d"
    QUICK = "q"
    PICK_SLOT = "s"
    TOGGLE_REMINDERS = "r"
    ADD_NOTE = "n"
    REMOVE_NOTE = "u"
    CONFIRM = "k"
    SCHEDULE_LATER = "l"
    BACK = "b"
    CANCEL = "x"
    BOOK_ANOTHER = "a"
    NOOP = "z"


QUICK_OPTIONS = ("today", "tomorrow", "week", "next")

# The argument each kind accepts; anything else is forged or corrupted.
_ARG_PATTERNS: dict[Kind, str] = {
    Kind.PICK_COURSE: r"\d{1,9}",  # ids fit PostgreSQL's int4 (forged data must not overflow)
    Kind.PICK_ST: r"\d{1,9}",
    Kind.MONTH: r"\d{4}-(0[1-9]|1[0-2])",
    Kind.PICK_DATE: r"\d{4}-\d{2}-\d{2}",
    Kind.QUICK: "|".join(QUICK_OPTIONS),
    Kind.PICK_SLOT: r"\d{1,12}",  # minutes since the Unix epoch, UTC
}
_ENCODED = re.compile(
    r"(?P<nonce>0|[1-9a-z][0-9a-z]{0,7})\|(?P<kind>[a-z])(?:\|(?P<arg>[0-9a-z-]{1,24}))?"
)


@dataclass(frozen=True)
class Action:
    kind: Kind
    arg: str = ""

    def encode(self, nonce: int) -> str:
        data = f"{_base36(nonce)}|{self.kind.value}" + (f"|{self.arg}" if self.arg else "")
        assert len(data.encode()) <= MAX_ACTION_BYTES, data
        return data


def decode(data: str) -> tuple[int, Action] | None:
    """Parse button data from the outside world; None when it is not something we ever sent."""
    if len(data.encode("utf-8", "replace")) > MAX_ACTION_BYTES:
        return None
    match = _ENCODED.fullmatch(data)
    if match is None:
        return None
    try:
        kind = Kind(match["kind"])
    except ValueError:
        return None
    arg = match["arg"] or ""
    pattern = _ARG_PATTERNS.get(kind)
    if (pattern is None) != (arg == "") or (pattern and not re.fullmatch(pattern, arg)):
        return None
    return int(match["nonce"], 36), Action(kind, arg)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


@dataclass(frozen=True)
class Button:
    label: str
    action: Action | None = None
    url: str | None = None
    enabled: bool = True  # shown but inert (past days, days without slots, headers)
    payload: str | None = None  # raw button data outside the wizard (session management)


@dataclass(frozen=True)
class Card:
    """One ST card of step 1: photo (avatar) with a caption and its own button."""

    title: str
    lines: tuple[str, ...]
    image_url: str | None
    button: Button


@dataclass(frozen=True)
class Attachment:
    """A file sent with a screen (the .ics invite); Apple Calendar and others open it."""

    filename: str
    content: bytes
    mime_type: str


def nothing_changed(
    notice: str | None, *, toast: bool = True, alert: bool = False, nonce: int = 0
) -> Screen:
    """An answer that draws nothing: the press gets `notice` as its toast (or alert), and every
    message on screen stays as it is, buttons included (their nonce is still the current one)."""
    return Screen(
        "unchanged",
        "",
        notice=notice,
        unchanged=True,
        toast=notice if toast else None,
        alert=alert,
        nonce=nonce,
    )


class Placement(enum.StrEnum):
    """Where a screen goes in a chat. The wizard is one live message; the dialogues about booked
    sessions answer on the message whose button was pressed, or as messages of their own."""

    WIZARD = "wizard"  # the live wizard message (edited in place, or moved below)
    PRESSED = "pressed"  # replaces the message whose button was pressed
    NEW = "new"  # a message of its own, outside the wizard (/mysessions entries, room links)


@dataclass(frozen=True)
class Screen:
    step: str
    title: str
    lines: tuple[str, ...] = ()
    notice: str | None = None  # an error or confirmation shown above the screen
    cards: tuple[Card, ...] = ()
    buttons: tuple[tuple[Button, ...], ...] = ()
    calendar: tuple[tuple[Button, ...], ...] = ()  # weeks of day buttons, shown as a grid
    prompt: str | None = None  # what typed text does here
    loading: bool = False
    # The wizard ended here: the message stays as drawn (text and buttons); what follows is
    # drawn as a new message.
    final: bool = False
    # Nothing changed (stale press, text after a final screen): only `notice` is news, every
    # message on screen stays as it is.
    unchanged: bool = False
    placement: Placement = Placement.WIZARD
    # How a button press is answered (a toast, or an alert the person must dismiss); decided
    # here so that front ends only show it.
    toast: str | None = None
    alert: bool = False
    more: tuple[Screen, ...] = ()  # further messages of their own, drawn after this one
    files: tuple[Attachment, ...] = ()
    nonce: int = 0  # the conversation version these buttons belong to

    def data(self, button: Button) -> str:
        """The opaque string a platform sends back when the button is pressed."""
        if button.payload is not None:
            return button.payload
        assert button.action is not None
        return button.action.encode(self.nonce)

    def all_buttons(self) -> list[Button]:
        flat = [card.button for card in self.cards]
        for row in (*self.calendar, *self.buttons):
            flat.extend(row)
        return flat

    @property
    def text(self) -> str:
        parts = [f"⚠️ {self.notice}"] if self.notice else []
        parts.append(self.title)
        parts.extend(self.lines)
        for card in self.cards:
            parts.append("\n".join((f"• {card.title}", *(f"  {line}" for line in card.lines))))
        if self.prompt:
            parts.append(self.prompt)
        return "\n".join(parts)
