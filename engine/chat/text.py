"""Text from people, made storable before any rule looks at it.

PostgreSQL refuses NUL in text, SQLite (through Python) cannot encode lone surrogates, and
control characters render as garbage in every chat and e-mail. Cleaning once at the edge of the
engine means a note that was accepted can always be booked, on either database.
"""

from __future__ import annotations

import unicodedata

_KEPT_CONTROLS = frozenset("\n\t")
_REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """Drop control characters other than newline and tab; replace unpaired surrogates.

    Windows line ends become newlines first, so "\\r\\n" is not left half-removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for char in text:
        if 0xD800 <= ord(char) <= 0xDFFF:
            out.append(_REPLACEMENT)  # undecodable bytes smuggled in as surrogates
        elif unicodedata.category(char) == "Cc" and char not in _KEPT_CONTROLS:
            continue
        else:
            out.append(char)
    return "".join(out)


CANCEL_REASON_MAX_CHARS = 500
"""Longest reason a person may give for cancelling; it is quoted in a chat notice and e-mails."""


def cancel_reason(text: str | None) -> str | None:
    """A cancellation's reason as stored: cleaned and trimmed, None when nothing is left.

    Raises ValueError past CANCEL_REASON_MAX_CHARS, so a front end asks for a shorter one
    instead of a notice being cut off.
    """
    cleaned = clean_text(text).strip() if text else ""
    if len(cleaned) > CANCEL_REASON_MAX_CHARS:
        raise ValueError(f"a cancellation reason has at most {CANCEL_REASON_MAX_CHARS} characters")
    return cleaned or None
