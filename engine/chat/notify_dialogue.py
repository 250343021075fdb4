"""/notify: which of the person's linked chat platforms gets their notices.

Until a platform is chosen, notices go to the one used last (engine/followup/recipient.py). The
buttons carry fixed data ("N:<platform>") and are checked again on arrival against the presser's
own linked platforms, so a stale or forged press changes nothing. A platform is shown by its key
capitalised ("telegram" -> "Telegram"): the engine keeps no list of platforms.
"""

from __future__ import annotations

import re

from engine.chat import messages as m
from engine.chat.account_dialogue import Account
from engine.chat.screens import Button, Placement, Screen

PREFIX = "N:"
_PLATFORM = re.compile(r"[a-z][a-z0-9_-]{0,15}")  # chat_identities.platform is 16 characters


def is_answer(data: str) -> bool:
    return data.startswith(PREFIX)


def label(platform: str) -> str:
    return platform[:1].upper() + platform[1:]


async def _linked(account: Account) -> list[str]:
    """The person's platforms with a chat to write to, earliest linked first, each once."""
    identities = await account.repo.identities_of(account.user_id)
    return list(dict.fromkeys(i.platform for i in identities if i.chat_id))


async def show(account: Account) -> Screen:
    user = await account.repo.user(account.user_id)
    linked = await _linked(account)
    if not linked:
        return Screen("notify_none", m.NOTIFY_NOTHING_LINKED, placement=Placement.NEW)
    chosen = user.notify_platform if user is not None else None
    text = (
        m.NOTICES_GO_TO.format(platform=label(chosen))
        if chosen in linked and chosen is not None
        else m.NOTICES_GO_LAST_USED
    )
    buttons = tuple(
        (
            Button(
                m.SEND_NOTICES_HERE
                if platform == account.platform
                else m.SEND_NOTICES_TO.format(platform=label(platform)),
                payload=PREFIX + platform,
            ),
        )
        for platform in linked
    )
    return Screen("notify_choice", text, buttons=buttons, placement=Placement.NEW)


async def choose(account: Account, data: str) -> Screen:
    platform = data.removeprefix(PREFIX)
    if not _PLATFORM.fullmatch(platform) or platform not in await _linked(account):
        return Screen("notify_stale", m.NOTIFY_NOT_LINKED, placement=Placement.PRESSED)
    await account.repo.set_notify_platform(account.user_id, platform)
    text = m.NOTICES_NOW_GO_TO.format(platform=label(platform))
    return Screen("notify_set", text, placement=Placement.PRESSED)
