"""The one check that a string is a bare e-mail address, for e-mail headers and invites alike."""

from __future__ import annotations

_FORBIDDEN = frozenset(' \t\r\n<>",;')


def check_address(email: str) -> str:
    """`email` unchanged when it is one bare address, else ValueError.

    Whitespace, quotes and angle brackets would break a To: header or an iCalendar `mailto:`
    line (iTIP clients match people by that address); a comma or semicolon would add recipients.
    The error names no address: tracebacks reach the logs, and logs hold no personal data.
    """
    if not email or "@" not in email or any(c in _FORBIDDEN for c in email):
        raise ValueError("not a single bare e-mail address")
    return email
