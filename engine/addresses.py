"""The one check that a string is a bare e-mail address, for e-mail headers and invites alike."""

from __future__ import annotations

_FORBIDDEN = frozenset(' \t\r\n<>",;')


def check_address(email: str) -> str:
    """`email` unchanged when it is one bare address, else ValueError.

    Whitespace, quotes and angle brackets would break a To: header or an iCalendar `mailto:`
    line (iTIP clients match people by that address); a comma or semicolon would add recipients.
    """
    if not email or "@" not in email or any(c in _FORBIDDEN for c in email):
        raise ValueError(f"not an e-mail address: {email!r}")
    return email
