"""Coordinators of `bookbot bench load`: each books for students in a Slack modal, through the
signed Slack endpoint of the `serve` processes, while the students book in Telegram.

`/book` opens the modal; the coordinator finds the student by e-mail (the external select's
search), submits the course and the student, then clicks through the modal as the fake Slack
holds it (ST, the datepicker's first free day, a time, Book Session), every click a signed
`block_actions` built from the view on screen. Requests Slack answers in the HTTP reply itself
(the search, the submission) are timed to that reply; clicks to the `views.update` that follows.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from benchmarks.load_fakes import TimedSlack
from benchmarks.load_people import FIRST_FEW, MAX_PRESSES, STEP_NAMES, Front, People
from benchmarks.load_seed import Coordinator
from bots.slack import blocks as sb
from bots.slack.app import EVENTS_PATH
from engine.chat import messages as m
from engine.chat.screens import Kind, decode
from tests.slack_requests import (
    SignedRequest,
    block_actions,
    block_suggestion,
    slash_command,
    view_submission,
)

JSONDict = dict[str, Any]


def _press_buttons(view: JSONDict) -> dict[Kind, list[tuple[str, str]]]:
    """(action_id, value) of the modal's press buttons, by kind of engine action."""
    found: dict[Kind, list[tuple[str, str]]] = defaultdict(list)
    for block in view.get("blocks", []):
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            value = element.get("value")
            if element.get("type") != "button" or not isinstance(value, str):
                continue
            decoded = decode(value)
            if decoded is not None and decoded[1].kind is not Kind.NOOP:
                found[decoded[1].kind].append((str(element["action_id"]), value))
    return found


def _datepicker(view: JSONDict) -> JSONDict | None:
    for block in view.get("blocks", []):
        for element in block.get("elements", []):
            if element.get("type") == "datepicker":
                return dict(element)
    return None


def _shown(view: JSONDict) -> str:
    """The modal's first text, to say why a coordinator stopped."""
    for block in view.get("blocks", []):
        shown = (block.get("text") or {}).get("text")
        if shown:
            return str(shown)[:80]
    return "(empty modal)"


def _ready(fake: TimedSlack, view_id: str) -> bool:
    """The modal offers something to do (not the opening or "Booking…" text)."""
    view = fake.views.get(view_id, {})
    return (
        view.get("callback_id") == sb.FOR_CALLBACK
        or bool(_press_buttons(view))
        or _datepicker(view) is not None
    )


class Coordinators(People):
    """Coordinators booking for students in Slack until `done` is set, each for its own
    students in turn."""

    def __init__(
        self, fake: TimedSlack, front: Front, secret: str, think: float, seed: int = 2
    ) -> None:
        super().__init__(front, think, seed)
        self.fake, self.secret = fake, secret

    async def send(self, request: SignedRequest) -> str:
        return await self.post(EVENTS_PATH, data=request.body, headers=request.headers)

    def trigger(self, person: Coordinator) -> str:
        trigger = self.fake.trigger_id()
        self.fake.owner[trigger] = person.slack_id
        return trigger

    async def act(
        self, person: Coordinator, view_id: str, request: SignedRequest, started: float, step: str
    ) -> bool:
        await self.send(request)
        return await self.screen(
            self.fake.replies, person.slack_id, started, lambda: _ready(self.fake, view_id), step
        )

    async def book_for(
        self, person: Coordinator, student: tuple[int, int, str], rng: random.Random
    ) -> None:
        """/book, the course and the student, then ST, date, time and Book Session."""
        _, course, email = student
        started = time.perf_counter()
        trigger = self.trigger(person)
        command = slash_command(
            self.secret,
            command="/book",
            user_id=person.slack_id,
            trigger_id=trigger,
            response_url=self.fake.response_url(),
        )
        before = set(self.fake.views)
        await self.send(command)
        view_id = await self._opened(person, before, started)
        if view_id is None:
            return
        await self.pause(rng)
        view = self.fake.views[view_id]
        search = block_suggestion(
            self.secret,
            user_id=person.slack_id,
            view=view,
            action_id=sb.STUDENT_ACTION,
            query=email,
        )
        started = time.perf_counter()
        options = json.loads(await self.send(search)).get("options", [])
        self._answered(started, "student search")
        if not options:
            self.tally.give_up("the student search found nobody")
            return
        await self.pause(rng)
        started = time.perf_counter()
        submit = view_submission(
            self.secret,
            user_id=person.slack_id,
            view=view,
            values={sb.COURSE_ACTION: str(course), sb.STUDENT_ACTION: options[0]},
            trigger_id=self.trigger(person),
        )
        answer = json.loads(await self.send(submit) or "{}")
        self._answered(started, "course and student")
        if answer.get("response_action") != "update":
            self.tally.give_up(f"the form was answered {answer.get('response_action')!r}")
            return
        self.fake.answer_with_view(view_id, answer["view"])
        await self.wizard(person, view_id, rng)

    def _answered(self, started: float, step: str) -> None:
        """A request Slack answers in the HTTP reply itself (options, a submission's view)."""
        took = time.perf_counter() - started
        self.tally.answered(step, took, took)

    async def _opened(self, person: Coordinator, before: set[str], started: float) -> str | None:
        """The modal /book opened (not one of the views `before`), once its form is drawn."""

        def opened() -> list[str]:
            return [
                v
                for v in self.fake.views
                if v not in before and self.fake.owner.get(v) == person.slack_id
            ]

        def drawn() -> bool:
            return any(_ready(self.fake, v) for v in opened())

        if not await self.screen(self.fake.replies, person.slack_id, started, drawn, "/book"):
            return None
        return opened()[-1]

    async def wizard(self, person: Coordinator, view_id: str, rng: random.Random) -> None:
        for _ in range(MAX_PRESSES):
            view = self.fake.views[view_id]
            buttons = _press_buttons(view)
            picker = _datepicker(view)
            value: str | None = None
            if Kind.CONFIRM in buttons:
                kind = Kind.CONFIRM
                action_id, value = buttons[kind][0]
            elif Kind.PICK_SLOT in buttons:
                kind = Kind.PICK_SLOT
                action_id, value = rng.choice(buttons[kind][:FIRST_FEW])
            elif picker is not None and picker.get("initial_date"):
                kind = Kind.PICK_DATE
                action_id, value = str(picker["action_id"]), str(picker["initial_date"])
            elif Kind.MONTH in buttons or Kind.PICK_ST in buttons or Kind.BACK in buttons:
                kind = next(k for k in (Kind.MONTH, Kind.PICK_ST, Kind.BACK) if k in buttons)
                action_id, value = rng.choice(
                    buttons[kind][-1:] if kind is Kind.MONTH else buttons[kind]
                )
            else:
                self.tally.give_up("nothing to press: " + _shown(view))
                return
            await self.pause(rng)
            started = time.perf_counter()
            request = block_actions(
                self.secret,
                user_id=person.slack_id,
                trigger_id=self.trigger(person),
                action_id=action_id,
                value=value,
                view=self.fake.views[view_id],
            )
            if not await self.act(person, view_id, request, started, STEP_NAMES[kind]):
                return
            booking = kind is Kind.CONFIRM
            if booking and Kind.BOOK_ANOTHER in _press_buttons(self.fake.views[view_id]):
                self.tally.bookings += 1
                return
            if booking and m.SLOT_TAKEN in json.dumps(self.fake.views[view_id]):
                self.tally.taken += 1
        self.tally.give_up("no booking after many presses")

    async def run(
        self,
        people: Sequence[Coordinator],
        students: Sequence[tuple[int, int, str]],
        done: asyncio.Event,
    ) -> None:
        """Each coordinator books for every len(people)-th student until `done`."""

        async def one(index: int, person: Coordinator) -> None:
            rng = random.Random(self.seed * 1000 + index)
            await self.pause(rng)
            for student in students[index :: len(people)]:
                if done.is_set():
                    return
                await self.book_for(person, student, rng)
                await self.pause(rng)

        await asyncio.gather(*(one(i, p) for i, p in enumerate(people)))
