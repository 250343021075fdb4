"""The wizard (and any engine screen opened from App Home) in a Slack modal.

A trigger_id lives 3 seconds, so `/book` opens a small "one moment" modal first, before any
database work, and every later step is a `views.update` carrying the view's `hash`. A stale hash
means another click changed the modal first: the engine's current step is drawn instead (the
conversation in the database is the truth), so two clicks can never book twice. The modal's
`private_metadata` holds only the conversation key (the person's DM) and the screen's nonce;
every value that comes back is checked again by the engine, as Telegram's button data is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError

from bots.slack import blocks
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import database_unavailable
from engine.chat.screens import Placement, Screen
from engine.chat.staff_booking import start_for

if TYPE_CHECKING:
    from bots.slack.app import Person, SlackFrontEnd

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
DESK_CALLBACK = "bookbot_desk"  # a session dialogue opened from App Home, not the wizard


def metadata(person: Person, screen: Screen) -> str:
    return json.dumps({"chat": person.dm, "nonce": screen.nonce}, separators=(",", ":"))


def _metadata(view: JSONDict) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def chat_of(view: JSONDict) -> str | None:
    """The conversation key a modal was drawn for, or None when the metadata is not ours."""
    chat = _metadata(view).get("chat")
    return chat if isinstance(chat, str) else None


def nonce_of(view: JSONDict) -> int | None:
    """The nonce of the screen the modal shows (its typed text is meant for that screen)."""
    nonce = _metadata(view).get("nonce")
    return nonce if isinstance(nonce, int) and not isinstance(nonce, bool) else None


def _is_conflict(error: SlackApiError) -> bool:
    return bool(error.response.get("error") == "hash_conflict")


class Modals:
    def __init__(self, front: SlackFrontEnd) -> None:
        self.front = front
        self.client = front.client

    def view(self, person: Person, screen: Screen) -> JSONDict:
        """The wizard's modal for a wizard screen; a plain one for the session dialogues."""
        if screen.placement is Placement.WIZARD:
            return blocks.modal_view(screen, metadata(person, screen))
        return blocks.modal_view(
            screen, metadata(person, screen), callback_id=DESK_CALLBACK, title=blocks.DESK_TITLE
        )

    # --- /book ------------------------------------------------------------------------------
    async def book(self, ack: AsyncAck, body: JSONDict) -> None:
        """Open first (the trigger expires in 3 s), then match the person and ask the engine."""
        await ack()
        try:
            opened = await self.client.views_open(
                trigger_id=body["trigger_id"], view=blocks.text_modal(m.OPENING)
            )
        except SlackApiError as error:  # a redelivered command: its trigger was used already
            log.info("views.open refused: %s", error.response.get("error"))
            return
        await self._or_outage(opened["view"], self._book_in(opened["view"], body))

    async def _or_outage(self, view: JSONDict, work: Awaitable[None]) -> None:
        """`work` behind a modal opened first: a database outage says so in that modal."""
        try:
            await work
        except Exception as error:
            if not database_unavailable(error):
                raise
            await self._update(view, blocks.text_modal(m.BOOKING_FAILED), checked=False)

    async def _book_in(self, view: JSONDict, body: JSONDict) -> None:
        person = await self.front.person(body["user_id"])
        if person is None:
            await self._update(view, blocks.text_modal(m.NOT_MATCHED))
            return
        text = (body.get("text") or "").strip()
        staff = self.front.staff
        if await staff.is_coordinator(person.user_id):
            courses = await staff.courses(person.user_id)
            chosen = await staff.course_for(person.user_id, text) if text else None
            form = blocks.book_for_view(courses, json.dumps({"chat": person.dm}), chosen)
            await self._update(view, form)
            return
        start = flow.Start(course_slug=text or None, source="chat")
        screen = await self.front.handle(person, start, f"command:{body['trigger_id']}")
        if screen is not None:
            await self.show(view, person, screen)

    async def students(self, ack: AsyncAck, body: JSONDict) -> None:
        """The student search, as the coordinator types (block_suggestion)."""
        person = await self.front.person(body["user"]["id"])
        if person is None:
            await ack(options=[])
            return
        found = await self.front.staff.students(person.user_id, str(body.get("value", "")))
        await ack(options=blocks.options(found))

    async def chose_student(self, ack: AsyncAck, body: JSONDict) -> None:
        """The coordinator's form submitted: the wizard starts for that student."""
        view = body["view"]
        values = view.get("state", {}).get("values", {})

        def picked(block: str, action: str) -> str | None:
            chosen = values.get(block, {}).get(action, {}).get("selected_option") or {}
            value = chosen.get("value")
            return value if isinstance(value, str) else None

        start = start_for(
            picked(blocks.COURSE_BLOCK, blocks.COURSE_ACTION),
            picked(blocks.STUDENT_BLOCK, blocks.STUDENT_ACTION),
        )
        if start is None:
            await ack(response_action="errors", errors={blocks.STUDENT_BLOCK: m.BOOK_FOR_PICK_BOTH})
            return
        person = await self.front.person(body["user"]["id"])
        if person is None or chat_of(view) != person.dm:
            await ack(response_action="update", view=blocks.text_modal(m.NOT_MATCHED))
            return
        screen = await self._current(person, start, f"submit:{body['trigger_id']}")
        await ack(response_action="update", view=self.view(person, screen))

    # --- presses and the note ---------------------------------------------------------------
    async def pressed(self, body: JSONDict, person: Person, view: JSONDict, data: str) -> None:
        if chat_of(view) != person.dm:
            return  # another person's modal, or metadata we never wrote
        current = {"hash": view.get("hash")}

        async def on_loading(screen: Screen) -> None:
            try:
                shown = await self.client.views_update(
                    view_id=view["id"], hash=current["hash"], view=self.view(person, screen)
                )
                current["hash"] = shown["view"]["hash"]
            except SlackApiError:  # a stale hash, a closed modal: the final answer draws the truth
                current["hash"] = None

        screen = await self.front.handle(
            person, flow.Press(data), f"press:{body['trigger_id']}", on_loading
        )
        if screen is None:
            return  # Slack delivered this click before
        await self.show({**view, "hash": current["hash"]}, person, screen)
        if not screen.unchanged and (screen.final or view.get("callback_id") == DESK_CALLBACK):
            await self.front.refresh_home(person)

    async def submitted_note(self, ack: AsyncAck, body: JSONDict) -> None:
        """The note step's Submit: the note is typed text to the engine; an over-long one is
        refused in the field, the old note kept."""
        view = body["view"]
        person = await self.front.person(body["user"]["id"])
        if person is None or chat_of(view) != person.dm:
            await ack()
            return
        entry = view.get("state", {}).get("values", {}).get(blocks.NOTE_BLOCK, {})
        text = str(entry.get(blocks.NOTE_ACTION, {}).get("value") or "")
        typed = flow.Text(text, nonce=nonce_of(view))  # meant for the note step shown
        screen = await self._current(person, typed, f"submit:{body['trigger_id']}")
        if screen.prompt and screen.notice:
            await ack(response_action="errors", errors={blocks.NOTE_BLOCK: screen.notice})
            return
        await ack(response_action="update", view=self.view(person, screen))

    async def _current(self, person: Person, event: flow.ChatEvent, update_id: str) -> Screen:
        """The engine's answer; for a repeated delivery (already handled), the step as it is."""
        screen = await self.front.handle(person, event, update_id)
        if screen is None or screen.unchanged:
            notice = None if screen is None else screen.notice
            screen = await self.front.handle(person, flow.Show(notice=notice), None)
        assert screen is not None
        return screen

    async def show(self, view: JSONDict, person: Person, screen: Screen) -> None:
        """Draw the engine's answer in the modal, with the view's hash; on a stale hash, or for
        a press that changed nothing, the engine's current step instead."""
        if screen.unchanged:
            if view.get("callback_id") == DESK_CALLBACK:
                await self._update(view, blocks.with_notice(view, screen.notice), checked=False)
                return
            shown = await self.front.handle(person, flow.Show(notice=screen.notice), None)
            assert shown is not None
            screen, view = shown, {**view, "hash": None}
        try:
            await self._update(view, self.view(person, screen))
        except SlackApiError as error:
            if not _is_conflict(error):
                raise
            if screen.placement is not Placement.WIZARD:
                # A session dialogue's answer is the truth of that dialogue: draw it anyway.
                await self._update(view, self.view(person, screen), checked=False)
                return
            current = await self.front.handle(person, flow.Show(), None)
            assert current is not None
            await self._update(view, self.view(person, current), checked=False)
            return
        await self.front.attach(person.dm, screen)
        for more in screen.more:
            await self.front.draw(person.dm, more, slack_user=person.slack_user)

    async def _update(self, view: JSONDict, new: JSONDict, checked: bool = True) -> None:
        view_hash = view.get("hash") if checked else None
        if view_hash:
            await self.client.views_update(view_id=view["id"], hash=view_hash, view=new)
        else:
            await self.client.views_update(view_id=view["id"], view=new)

    # --- from App Home ----------------------------------------------------------------------
    async def from_home(self, body: JSONDict, data: str) -> None:
        """A button in App Home answers in a modal (a home tab cannot hold a question), opened
        before anything else (the trigger lives 3 s), and the home is published again when
        something changed."""
        trigger = body["trigger_id"]
        opened = await self.client.views_open(trigger_id=trigger, view=blocks.text_modal(m.OPENING))
        await self._or_outage(opened["view"], self._from_home_in(opened["view"], body, data))

    async def _from_home_in(self, view: JSONDict, body: JSONDict, data: str) -> None:
        person = await self.front.person(body["user"]["id"])
        if person is None:
            await self._update(view, blocks.text_modal(m.NOT_MATCHED))
            return
        screen = await self.front.handle(person, flow.Press(data), f"press:{body['trigger_id']}")
        if screen is None:
            return
        if screen.unchanged:
            await self._update(view, blocks.text_modal(screen.notice or m.EXPIRED))
            return
        await self.show(view, person, screen)
        await self.front.refresh_home(person)

    async def away_form(self, ack: AsyncAck, body: JSONDict, action: JSONDict) -> None:
        await ack()
        hours = action["action_id"] == blocks.AWAY_HOURS_ACTION
        await self.client.views_open(trigger_id=body["trigger_id"], view=blocks.away_view(hours))

    async def submitted_away(self, ack: AsyncAck, body: JSONDict) -> None:
        """The time-off form, as the /away text the engine reads; its answer (a question about
        sessions booked then, or what was marked) replaces the form."""
        person = await self.front.person(body["user"]["id"])
        if person is None:
            await ack(response_action="update", view=blocks.text_modal(m.NOT_MATCHED))
            return
        values = body["view"].get("state", {}).get("values", {})
        event = flow.Away(blocks.away_text(values))
        screen = await self.front.handle(person, event, f"submit:{body['trigger_id']}")
        if screen is None:
            await ack()
            return
        await ack(response_action="update", view=self.view(person, screen))
        await self.front.refresh_home(person)

    async def ack_only(self, ack: AsyncAck) -> None:
        """A link button (Google Calendar, the video room): Slack opens it; the app only acks."""
        await ack()
