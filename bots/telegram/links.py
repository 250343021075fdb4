"""Telegram's sign-in links: a signed engine payload as `https://t.me/<bot>?start=<payload>`.

The engine signs payloads (`engine/links.py`) and knows nothing of t.me; this is the Telegram
half of the identity seam, used by e-mails' "Manage in Telegram" buttons and `bookbot link`.
"""

from __future__ import annotations

import re

from telegram.helpers import create_deep_linked_url

__all__ = ["deep_link"]

_PAYLOAD_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Telegram's start parameter
_BOT_USERNAME_RE = re.compile(r"[A-Za-z0-9_]{4,32}")


def deep_link(bot_username: str, payload: str) -> str:
    """`https://t.me/<bot>?start=<payload>`; raises ValueError for a name or payload Telegram
    would not accept (a leading `@` on the name is dropped). Checked here as well as by PTB, so
    the rule does not depend on what a PTB release happens to validate."""
    username = bot_username.removeprefix("@")
    if not _BOT_USERNAME_RE.fullmatch(username):
        raise ValueError(f"not a Telegram bot username: {bot_username!r}")
    if not _PAYLOAD_RE.fullmatch(payload):
        raise ValueError("a start payload is 1-64 characters of A-Z, a-z, 0-9, _ and -")
    return create_deep_linked_url(username, payload)
