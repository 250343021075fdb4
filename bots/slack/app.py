"""The Slack front end (slack-bolt AsyncApp): Slack requests in, engine events out; engine
Screens back as Block Kit messages in the person's DM, modals and App Home. No rule or dialogue
lives here.

Commands: `/book` (the wizard in a modal; a coordinator first picks the course and the student),
`/mysessions`, `/notify`, `/unlink`, `/away`. Every button the engine draws carries its data in
`value`, wherever it is shown (DM, modal, App Home). Staff are matched to the platform by their
verified e-mail address. Requests are checked by bolt with the signing secret (401 otherwise); a
delivery Slack repeats carries the same trigger id, which the conversation records, so it
changes nothing twice. The modal's own steps are in bots/slack/modals.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import blocks
from bots.slack.client import make_client
from bots.slack.modals import Modals
from bots.slack.settings import SlackSettings
from engine.accounts import Accounts
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService, database_unavailable, utc_now
from engine.chat.screens import Placement, Screen
from engine.chat.staff_booking import StaffBooking
from engine.settings import Settings
from storage.uow import UnitsLike

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
PRESSES = re.compile(r"(bk|notice):\d+")  # buttons of screens (blocks.py) and of notices (sender)
COMMANDS: dict[str, Callable[[], flow.ChatEvent]] = {
    "/mysessions": flow.MySessions,
    "/notify": flow.Notify,
    "/unlink": flow.Unlink,
}
ZONE_TTL = 600.0  # seconds a Slack profile's time zone is trusted before users.info again
DM_CACHE_SIZE = 10_000  # staff and students with a Slack DM; a DM id never changes
JSONDict = dict[str, Any]
OnLoading = Callable[[Screen], Any]


@dataclass(frozen=True)
class Person:
    """A matched staff member: the platform user, their DM with the app, their Slack id."""

    user_id: int
    dm: str
    slack_user: str


class SlackFrontEnd:
    def __init__(
        self,
        units: UnitsLike,
        settings: Settings,
        client: AsyncWebClient,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.service = ConversationService(units, settings, clock)
        self.accounts = Accounts(units, settings)
        self.staff = StaffBooking(units)
        self.client = client
        self._zones: dict[str, tuple[float, str | None]] = {}
        self._dms: dict[str, str] = {}
        self.modals = Modals(self)

    # --- who, and in which zone -------------------------------------------------------------
    async def person(self, slack_user: str) -> Person | None:
        """The platform user behind a Slack account, matching it by its verified e-mail the
        first time; None when the address is unknown or unverified."""
        dm = await self.dm(slack_user)
        known = await self.accounts.user_for(PLATFORM, slack_user)
        if known is not None:
            return Person(known, dm, slack_user)
        user = await self._profile(slack_user)
        email = user.get("profile", {}).get("email")
        if not email or not user.get("is_email_confirmed", False):
            return None
        matched = await self.accounts.link_by_email(PLATFORM, slack_user, dm, email)
        return Person(matched, dm, slack_user) if matched is not None else None

    async def dm(self, slack_user: str) -> str:
        """The bot's DM channel with a person. A DM's id never changes, so it is opened once
        per process: `conversations.open` is a Tier 3 method (50 a minute), and opening it on
        every request queued a coordinator's presses for seconds under load (bench load)."""
        known = self._dms.get(slack_user)
        if known is None:
            if len(self._dms) >= DM_CACHE_SIZE:  # bounded: forget the oldest half
                for stale in list(self._dms)[: DM_CACHE_SIZE // 2]:
                    del self._dms[stale]
            opened = await self.client.conversations_open(users=slack_user)
            known = self._dms[slack_user] = opened["channel"]["id"]
        return known

    async def _profile(self, slack_user: str) -> JSONDict:
        user: JSONDict = (await self.client.users_info(user=slack_user))["user"]
        self._zones[slack_user] = (time.monotonic() + ZONE_TTL, user.get("tz"))
        return user

    async def zone(self, slack_user: str) -> str | None:
        """The zone Slack shows this person (users.info `tz`), cached for a few minutes."""
        cached = self._zones.get(slack_user)
        if cached is None or cached[0] < time.monotonic():
            await self._profile(slack_user)
        return self._zones[slack_user][1]

    async def handle(
        self,
        person: Person,
        event: flow.ChatEvent,
        update_id: str | None,
        on_loading: OnLoading | None = None,
    ) -> Screen | None:
        return await self.service.handle(
            platform=PLATFORM,
            chat_id=person.dm,
            user_id=person.user_id,
            event=event,
            update_id=update_id,
            on_loading=on_loading,
            profile_timezone=await self.zone(person.slack_user),
        )

    # --- commands and presses in the DM -----------------------------------------------------
    async def command(self, ack: AsyncAck, body: JSONDict, respond: AsyncRespond) -> None:
        await ack()
        person = await self.person(body["user_id"])
        if person is None:
            await respond(text=m.NOT_MATCHED, response_type="ephemeral")
            return
        away = body["command"] == "/away"
        event = flow.Away(body.get("text", "")) if away else COMMANDS[body["command"]]()
        screen = await self.handle(person, event, f"command:{body['trigger_id']}")
        if screen is not None:
            await self.draw(person.dm, screen, slack_user=person.slack_user)
            if away and not screen.unchanged:
                await self.refresh_home(person)

    async def pressed(self, ack: AsyncAck, body: JSONDict, action: JSONDict) -> None:
        """Every engine button, wherever Slack shows it: a link button has no value (Slack
        reports those too) and only needs the ack."""
        await ack()
        if "value" in action:
            await self.press(body, str(action["value"]))

    async def press(self, body: JSONDict, data: str) -> None:
        view = body.get("view") or {}
        if view.get("type") == "home":
            await self.modals.from_home(body, data)  # opens its modal before anything else
            return
        person = await self.person(body["user"]["id"])
        if person is None:
            return
        if view.get("type") == "modal":
            await self.modals.pressed(body, person, view, data)
            return
        channel = body.get("channel", {}).get("id")
        if channel is None:
            return
        screen = await self.handle(person, flow.Press(data), f"press:{body['trigger_id']}")
        if screen is None:
            return
        pressed = body.get("message", {}).get("ts")
        await self.draw(channel, screen, slack_user=person.slack_user, pressed=pressed)
        if not screen.unchanged and (screen.placement is not Placement.WIZARD or screen.final):
            await self.refresh_home(person)  # a session cancelled or booked, time off set

    async def picked_date(self, ack: AsyncAck, body: JSONDict, action: JSONDict) -> None:
        await ack()
        data = blocks.date_value(str(action.get("block_id", "")), action.get("selected_date"))
        if data is not None:
            await self.press(body, data)

    async def ticked(self, ack: AsyncAck, body: JSONDict, action: JSONDict) -> None:
        await ack()
        shown = (body.get("view") or body.get("message") or {}).get("blocks", [])
        data = blocks.checkbox_value(action, shown)
        if data is not None:
            await self.press(body, data)

    async def draw(
        self, channel: str, screen: Screen, *, slack_user: str, pressed: str | None = None
    ) -> None:
        """Slack has no toast: a press that changes nothing is answered with an ephemeral
        line; an answer to a pressed message replaces it; everything else is a new message."""
        if screen.unchanged:
            text = screen.toast or screen.notice or m.USE_BUTTONS_ONLY
            await self.client.chat_postEphemeral(channel=channel, user=slack_user, text=text)
            return
        if screen.placement is Placement.PRESSED and pressed is not None:
            await self.client.chat_update(
                channel=channel,
                ts=pressed,
                text=blocks.message_text(screen),
                blocks=blocks.message_blocks(screen),
            )
        else:
            for each in (screen, *screen.more):
                await self.client.chat_postMessage(
                    channel=channel,
                    text=blocks.message_text(each),
                    blocks=blocks.message_blocks(each),
                )
        await self.attach(channel, screen)

    async def attach(self, channel: str, screen: Screen) -> None:
        """The screen's files (the booking's .ics invite) into the DM, three calls each
        (files_upload_v2); request_file_info off, as the app never reads them back."""
        for attachment in screen.files:
            await self.client.files_upload_v2(
                channel=channel,
                file=attachment.content,
                filename=attachment.filename,
                title=attachment.filename,
                initial_comment=m.INVITE_ATTACHED,
                request_file_info=False,
            )

    # --- App Home ---------------------------------------------------------------------------
    async def home(self, event: JSONDict, body: JSONDict) -> None:
        """App Home: the staff member's day and week, hours and days off (engine StaffHome)."""
        slack_user = event["user"]
        person = await self.person(slack_user)
        if person is None:
            unmatched = Screen("home", m.NOT_MATCHED)
            await self.client.views_publish(user_id=slack_user, view=blocks.home_view([unmatched]))
            return
        await self.refresh_home(person)

    async def refresh_home(self, person: Person) -> None:
        """Publish the home again: each time App Home opens (a redelivered event publishes the
        same view again, which is harmless and repairs a publish that failed), and after
        anything the person changes. A failure here is logged, never the request's: what the
        person did is saved already."""
        try:
            screen = await self.handle(person, flow.StaffHome(), None)
            assert screen is not None
            teaches = any(s.step == "home_hours" for s in screen.more)
            view = blocks.home_view([screen], time_off=teaches)
            await self.client.views_publish(user_id=person.slack_user, view=view)
        except SlackApiError as error:
            log.warning(
                "App Home for user %s not published: %s",
                person.user_id,
                error.response.get("error"),
            )

    # --- errors -----------------------------------------------------------------------------
    async def failed(self, error: Exception, body: JSONDict, response: BoltResponse) -> None:
        """A database outage gets the spec's sentence, privately, and the request counts as
        answered (200: Slack would otherwise flag the click as failed); anything else is logged
        (the redacting log filter keeps secrets out) and Slack shows its own error."""
        if not database_unavailable(error):
            log.error("Slack request failed: %s", type(error).__name__, exc_info=error)
            return
        view = body.get("view") or {}
        response.status = 200
        if body.get("type") == "view_submission":  # not acknowledged yet: answer in the modal
            response.body = json.dumps(
                {"response_action": "update", "view": blocks.with_notice(view, m.BOOKING_FAILED)}
            )
            response.headers["content-type"] = ["application/json;charset=utf-8"]
            return
        if view.get("type") == "modal" and body.get("type") == "block_actions":
            # Nothing was saved: the step on screen, and its buttons, are still good.
            await self.client.views_update(
                view_id=view["id"], view=blocks.with_notice(view, m.BOOKING_FAILED)
            )
            return
        slack_user = (body.get("user") or {}).get("id") or body.get("user_id")
        if not slack_user:
            return
        dm = await self.dm(slack_user)
        await self.client.chat_postEphemeral(channel=dm, user=slack_user, text=m.BOOKING_FAILED)


def build_slack_app(
    settings: Settings,
    slack: SlackSettings,
    units: UnitsLike,
    clock: Callable[[], datetime] = utc_now,
    *,
    socket_mode: bool = False,
) -> AsyncApp:
    assert slack.bot_token and (socket_mode or slack.signing_secret)
    client = make_client(slack)
    # Listeners finish before the HTTP answer (each is a few quick database events), so a test
    # or a restart never loses the work behind an acknowledged request; a trigger_id is used
    # (views.open) before any database work, well inside its 3 seconds.
    app = AsyncApp(client=client, signing_secret=slack.signing_secret, process_before_response=True)
    front = SlackFrontEnd(units, settings, client, clock)
    modals = front.modals
    for name in (*COMMANDS, "/away"):
        app.command(name)(front.command)
    app.command("/book")(modals.book)
    app.action(PRESSES)(front.pressed)
    app.action(blocks.DATES)(front.picked_date)
    app.action(blocks.REMINDERS_ACTION)(front.ticked)
    app.action(re.compile(rf"{re.escape(blocks.LINK_PREFIX)}\d+"))(modals.ack_only)
    app.action(re.compile("away:(days|hours)"))(modals.away_form)
    app.options(blocks.STUDENT_ACTION)(modals.students)
    app.view(blocks.FOR_CALLBACK)(modals.chose_student)
    app.view(blocks.CALLBACK_ID)(modals.submitted_note)
    app.view(blocks.AWAY_CALLBACK)(modals.submitted_away)
    app.event("app_home_opened")(front.home)
    app.error(front.failed)
    return app


def slack_routes(app: AsyncApp) -> list[web.RouteDef]:
    async def events(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    return [web.post(EVENTS_PATH, events)]
