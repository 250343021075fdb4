"""The Slack front end (slack-bolt AsyncApp): Slack requests in, engine events out; engine
Screens back as Block Kit messages in the person's DM. No rule or dialogue lives here.

So far: `/mysessions`, `/notify`, `/unlink` and `/away`, every button the engine draws (its
data is the button's `value`) and App Home (the staff member's day, week, hours and days off),
for staff matched to the platform by their verified e-mail address. The coordinator's `/book`
in a modal is still to come (README, "Slack").
Requests are checked by bolt with the signing secret (401 otherwise); a delivery Slack repeats
carries the same trigger id, which the conversation records, so it changes nothing twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import blocks
from bots.slack.settings import SlackSettings
from engine.accounts import Accounts
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService, utc_now
from engine.chat.screens import Placement, Screen
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
JSONDict = dict[str, Any]


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
        self.client = client

    async def _person(self, slack_user: str) -> tuple[int, str] | None:
        """(platform user, DM channel), matching the Slack account by its verified e-mail the
        first time; None when the address is unknown or unverified."""
        dm = (await self.client.conversations_open(users=slack_user))["channel"]["id"]
        known = await self.accounts.user_for(PLATFORM, slack_user)
        if known is not None:
            return known, dm
        user = (await self.client.users_info(user=slack_user))["user"]
        email = user.get("profile", {}).get("email")
        if not email or not user.get("is_email_confirmed", False):
            return None
        matched = await self.accounts.link_by_email(PLATFORM, slack_user, dm, email)
        return (matched, dm) if matched is not None else None

    async def command(self, ack: AsyncAck, body: JSONDict, respond: AsyncRespond) -> None:
        await ack()
        person = await self._person(body["user_id"])
        if person is None:
            await respond(text=m.NOT_MATCHED, response_type="ephemeral")
            return
        user_id, dm = person
        screen = await self.service.handle(
            platform=PLATFORM,
            chat_id=dm,
            user_id=user_id,
            event=(
                flow.Away(body.get("text", ""))
                if body["command"] == "/away"
                else COMMANDS[body["command"]]()
            ),
            update_id=f"command:{body['trigger_id']}",
        )
        if screen is not None:
            await self.draw(dm, screen, slack_user=body["user_id"])

    async def pressed(self, ack: AsyncAck, body: JSONDict, action: JSONDict) -> None:
        await ack()
        slack_user = body["user"]["id"]
        person = await self._person(slack_user)
        channel = body.get("channel", {}).get("id")
        if person is None or channel is None or "value" not in action:
            return  # a link button (Slack reports those too), or someone we cannot match
        user_id, dm = person
        screen = await self.service.handle(
            platform=PLATFORM,
            chat_id=dm,
            user_id=user_id,
            event=flow.Press(action["value"]),
            update_id=f"press:{body['trigger_id']}",
        )
        if screen is not None:
            pressed = body.get("message", {}).get("ts")
            await self.draw(channel, screen, slack_user=slack_user, pressed=pressed)

    async def home(self, event: JSONDict, body: JSONDict) -> None:
        """App Home: the staff member's day and week, hours and days off (engine StaffHome)."""
        slack_user = event["user"]
        person = await self._person(slack_user)
        if person is None:
            unmatched = Screen("home", m.NOT_MATCHED)
            await self.client.views_publish(user_id=slack_user, view=blocks.home_view([unmatched]))
            return
        user_id, dm = person
        screen = await self.service.handle(
            platform=PLATFORM,
            chat_id=dm,
            user_id=user_id,
            event=flow.StaffHome(),
            update_id=f"event:{body['event_id']}",
        )
        if screen is not None:  # None: Slack delivered this event before
            await self.client.views_publish(user_id=slack_user, view=blocks.home_view([screen]))

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
            return
        for each in (screen, *screen.more):
            await self.client.chat_postMessage(
                channel=channel,
                text=blocks.message_text(each),
                blocks=blocks.message_blocks(each),
            )


def build_slack_app(
    settings: Settings,
    slack: SlackSettings,
    units: UnitsLike,
    clock: Callable[[], datetime] = utc_now,
) -> AsyncApp:
    assert slack.bot_token and slack.signing_secret
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    # Listeners finish before the HTTP answer (each is a few quick database events), so a test
    # or a restart never loses the work behind an acknowledged request.
    app = AsyncApp(client=client, signing_secret=slack.signing_secret, process_before_response=True)
    front = SlackFrontEnd(units, settings, client, clock)
    for name in (*COMMANDS, "/away"):
        app.command(name)(front.command)
    app.action(PRESSES)(front.pressed)
    app.event("app_home_opened")(front.home)
    return app


def slack_routes(app: AsyncApp) -> list[web.RouteDef]:
    async def events(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    return [web.post(EVENTS_PATH, events)]
