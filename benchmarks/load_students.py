"""Students of `bookbot bench load`: each opens their deep link in Telegram and books by
pressing the buttons the bot sent, through the webhook of the `serve` processes.

A student reads the buttons of the bot's newest screen in the fake Telegram's chat (those that
carry the newest screen nonce, on messages not deleted) and presses one. Choices are random
among the first few offered, so that students collide on popular times now and then, and "no
longer available" sends them to pick again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from benchmarks.load_fakes import TimedTelegram
from benchmarks.load_people import FIRST_FEW, MAX_PRESSES, STEP_NAMES, Front, People
from benchmarks.load_seed import Student
from bots.telegram.app import SECRET_HEADER, WEBHOOK_PATH
from engine.chat import messages as m
from engine.chat.screens import Kind, decode
from tests.fake_telegram import FakeUser, SentMessage

JSONDict = dict[str, Any]


def screen_buttons(user: FakeUser) -> dict[Kind, list[tuple[SentMessage, str]]]:
    """The pressable buttons of the newest screen: live messages, newest nonce, by kind."""
    found: list[tuple[int, Kind, SentMessage, str]] = []
    for message in user.messages():
        if message.deleted or "inline_keyboard" not in (message.reply_markup or {}):
            continue
        for row in message.button_rows:
            for button in row:
                data = button.get("callback_data")
                decoded = decode(data) if isinstance(data, str) else None
                if decoded is not None and decoded[1].kind is not Kind.NOOP:
                    found.append((decoded[0], decoded[1].kind, message, str(data)))
    newest = max((nonce for nonce, *_ in found), default=None)
    by_kind: dict[Kind, list[tuple[SentMessage, str]]] = defaultdict(list)
    for nonce, kind, message, data in found:
        if nonce == newest:
            by_kind[kind].append((message, data))
    return by_kind


# What a student presses, first choice first.
_PREFERENCE = (Kind.CONFIRM, Kind.PICK_SLOT, Kind.PICK_DATE, Kind.MONTH, Kind.PICK_ST, Kind.BACK)


def choose(
    buttons: dict[Kind, list[tuple[SentMessage, str]]], rng: random.Random
) -> tuple[Kind, SentMessage, str] | None:
    for kind in _PREFERENCE:
        offered = buttons.get(kind)
        if offered:
            if kind is Kind.MONTH:
                offered = offered[-1:]  # the next month: this one has nothing left
            message, data = rng.choice(offered[:FIRST_FEW] if kind is not Kind.PICK_ST else offered)
            return kind, message, data
    return None


class Students(People):
    """Students booking once each from their deep link, at most `concurrency` at a time."""

    def __init__(
        self, fake: TimedTelegram, front: Front, secret: str, think: float, seed: int = 1
    ) -> None:
        super().__init__(front, think, seed)
        self.fake, self.secret = fake, secret

    async def step(self, user: FakeUser, update: JSONDict, started: float, step: str) -> bool:
        """Post `update` to the webhook and wait for the screen; False when it never came."""
        await self.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: self.secret})
        return await self.screen(
            self.fake.replies, user.id, started, lambda: bool(screen_buttons(user)), step
        )

    async def book(self, index: int, student: Student) -> None:
        rng = random.Random(self.seed * 100_000 + index)
        user = self.fake.user(student.telegram_id, f"Student{index}")
        await self.pause(rng)
        started = time.perf_counter()
        if not await self.step(
            user, user.send_text(f"/start {student.payload}"), started, "/start"
        ):
            return
        for _ in range(MAX_PRESSES):
            choice = choose(screen_buttons(user), rng)
            if choice is None:
                self.tally.give_up("nothing to press: " + (user.last_message().text or "")[:80])
                return
            kind, message, data = choice
            await self.pause(rng)
            started = time.perf_counter()
            update = user.press_data(data, message.message_id)
            if not await self.step(user, update, started, STEP_NAMES[kind]):
                return
            query = self.fake._queries.get(update["callback_query"]["id"])
            answer = (query.answer or {}) if query is not None else {}
            if answer.get("text") == m.SLOT_TAKEN:
                self.tally.taken += 1
            if kind is Kind.CONFIRM and Kind.BOOK_ANOTHER in screen_buttons(user):
                self.tally.bookings += 1
                return
        self.tally.give_up("no booking after many presses")

    async def run(self, students: Sequence[Student], concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, student: Student) -> None:
            async with gate:
                await self.book(index, student)

        await asyncio.gather(*(one(i, s) for i, s in enumerate(students)))
