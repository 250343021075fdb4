"""/unlink: a chat account's link to its platform user, undone only after a question.

A dialogue like the session ones: the question and its answers are Screens of the conversation,
so every front end asks it the same way. Its buttons carry fixed data ("L:y" / "L:n") and are
checked against who presses them: only the account that is linked can unlink itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.chat import messages as m
from engine.chat.screens import Button, Placement, Screen
from storage.repositories import Repo

UNLINK_YES = "L:y"
UNLINK_NO = "L:n"
ANSWERS = (UNLINK_YES, UNLINK_NO)


@dataclass(frozen=True)
class Account:
    """The chat account the event came from, inside the conversation's unit of work."""

    repo: Repo
    platform: str
    chat_id: str
    user_id: int


async def ask(account: Account) -> Screen:
    user = await account.repo.user(account.user_id)
    name = user.name if user else f"user {account.user_id}"
    answers = (Button(m.YES_UNLINK, payload=UNLINK_YES), Button(m.KEEP_LINKED, payload=UNLINK_NO))
    question = m.UNLINK_CONFIRM.format(name=name)
    return Screen("unlink_question", question, buttons=(answers,), placement=Placement.NEW)


async def answer(account: Account, data: str) -> Screen:
    user = await account.repo.user(account.user_id)
    name = user.name if user else f"user {account.user_id}"
    if data == UNLINK_YES:
        await account.repo.unlink_chat(account.platform, account.chat_id, account.user_id)
        return Screen("unlinked", m.UNLINKED.format(name=name), placement=Placement.PRESSED)
    return Screen("still_linked", m.STAYS_LINKED.format(name=name), placement=Placement.PRESSED)
