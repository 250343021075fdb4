"""Which one chat a person's notice goes to, when they are linked on several platforms.

The rule, stated once: the platform the person chose with /notify, when they have a chat there;
else the chat they used most recently; else (none used yet) the one they linked first. Each
notice is sent once, to the first chat of this order whose platform the bot can send on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage.records import IdentityRecord


def notice_order(
    identities: Sequence[IdentityRecord], preferred: str | None
) -> list[IdentityRecord]:
    """The person's chats (given earliest linked first) in the order a notice tries them:
    the preferred platform's, then the used ones most recent first, then the never-used ones
    in the order they were linked. Accounts without a chat to write to are left out."""
    chats = [(i, identity) for i, identity in enumerate(identities) if identity.chat_id]

    def key(item: tuple[int, IdentityRecord]) -> tuple[bool, bool, float, int]:
        linked, identity = item
        used: datetime | None = identity.last_used_at
        return (
            identity.platform != preferred,
            used is None,
            -used.timestamp() if used is not None else 0.0,
            linked,
        )

    return [identity for _, identity in sorted(chats, key=key)]
