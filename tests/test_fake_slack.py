"""The fake Slack Web API, proved with the real slack_sdk client and a real slack_bolt AsyncApp.

If the fake accepted what Slack refuses (or answered in shapes slack_sdk does not read), every
Slack test built on it would pass for the wrong reason; so each method is called here through
`AsyncWebClient`, and the signed-request helpers are checked against bolt's own verification.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fake_slack import BOT_USER_ID, TEAM_ID, UPLOAD, FakeSlack
from tests.slack_requests import (
    SignOptions,
    app_home_opened,
    block_actions,
    block_suggestion,
    slash_command,
    view_submission,
)

SECRET = "test-signing-secret"
STUDENT = "U0STUDENT"

JSONDict = dict[str, Any]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_user(
            STUDENT,
            "mira",
            tz="America/New_York",
            tz_offset=-18000,
            email="mira@campus.example",
        )
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.base_url)


def _modal(title: str = "Book a session", blocks: list[JSONDict] | None = None) -> JSONDict:
    return {
        "type": "modal",
        "callback_id": "book",
        "title": {"type": "plain_text", "text": title},
        "blocks": blocks if blocks is not None else [_section("Loading…")],
    }


def _section(text: str) -> JSONDict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# -- the Web API through AsyncWebClient ---------------------------------------------------------


async def test_auth_test_names_the_bot_and_reports_its_scopes(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    reply = await client.auth_test()
    assert (reply["user_id"], reply["team_id"]) == (BOT_USER_ID, TEAM_ID)
    assert "users:read.email" in reply.headers["X-OAuth-Scopes"]


async def test_a_call_without_a_token_is_not_authed_and_a_wrong_one_is_invalid_auth(
    fake: FakeSlack,
) -> None:
    anonymous = AsyncWebClient(base_url=fake.base_url)
    with pytest.raises(SlackApiError) as no_token:
        await anonymous.chat_postMessage(channel=STUDENT, text="hi")
    forged = AsyncWebClient(token="xoxb-forged", base_url=fake.base_url)
    with pytest.raises(SlackApiError) as wrong_token:
        await forged.users_info(user=STUDENT)
    assert no_token.value.response["error"] == "not_authed"
    assert wrong_token.value.response["error"] == "invalid_auth"
    assert fake.messages(fake.dm(STUDENT).id) == []


async def test_users_info_gives_the_timezone_and_the_email_only_with_the_email_scope(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    user = (await client.users_info(user=STUDENT))["user"]
    assert (user["tz"], user["tz_offset"]) == ("America/New_York", -18000)
    assert user["profile"]["email"] == "mira@campus.example"
    assert user["is_email_confirmed"] is True

    fake.scopes.discard("users:read.email")
    assert "email" not in (await client.users_info(user=STUDENT))["user"]["profile"]
    with pytest.raises(SlackApiError) as missing:
        await client.users_lookupByEmail(email="mira@campus.example")
    assert missing.value.response["error"] == "missing_scope"
    with pytest.raises(SlackApiError) as unknown:
        await client.users_info(user="U0NOBODY")
    assert unknown.value.response["error"] == "user_not_found"


async def test_lookup_by_email_finds_the_member_and_an_unknown_email_is_users_not_found(
    client: AsyncWebClient,
) -> None:
    found = await client.users_lookupByEmail(email="Mira@Campus.example")
    assert found["user"]["id"] == STUDENT
    with pytest.raises(SlackApiError) as missing:
        await client.users_lookupByEmail(email="nobody@campus.example")
    assert missing.value.response["error"] == "users_not_found"


async def test_conversations_open_gives_the_same_dm_channel_each_time(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    first = await client.conversations_open(users=STUDENT)
    second = await client.conversations_open(users=[STUDENT])
    assert first["channel"]["id"] == second["channel"]["id"] == fake.dm(STUDENT).id
    assert first["channel"]["id"].startswith("D")
    assert second["already_open"] is True


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_messages_are_posted_updated_and_refused_like_slack_refuses_them(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel = (await client.conversations_open(users=STUDENT))["channel"]["id"]
    posted = await client.chat_postMessage(channel=channel, text="Pick a slot", blocks=[])
    again = await client.chat_postMessage(channel=STUDENT, text="Second")  # a user id → the DM
    updated = await client.chat_update(channel=channel, ts=posted["ts"], text="Booked")

    assert posted["ts"] < again["ts"]
    assert updated["message"]["text"] == "Booked"
    assert [m.text for m in fake.messages(channel)] == ["Booked", "Second"]
    assert fake.messages(channel)[0].history[0]["text"] == "Pick a slot"

    errors = {}
    for name, call in {
        "missing channel": client.chat_postMessage(channel="C0MISSING", text="x"),
        "nothing to say": client.chat_postMessage(channel=channel, text=""),
        "unknown ts": client.chat_update(channel=channel, ts="1.000001", text="x"),
    }.items():
        with pytest.raises(SlackApiError) as error:
            await call
        errors[name] = error.value.response["error"]
    assert errors == {
        "missing channel": "channel_not_found",
        "nothing to say": "no_text",
        "unknown ts": "message_not_found",
    }


async def test_an_ephemeral_message_needs_the_user_in_the_channel(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    staff = fake.add_channel("tutoring-staff", members=[STUDENT])
    outsiders = fake.add_channel("random")
    reply = await client.chat_postEphemeral(channel=staff.id, user=STUDENT, text="Only you")
    with pytest.raises(SlackApiError) as error:
        await client.chat_postEphemeral(channel=outsiders.id, user=STUDENT, text="x")
    assert staff.ephemerals[0].message_ts == reply["message_ts"]
    assert staff.messages == []
    assert error.value.response["error"] == "user_not_in_channel"


async def test_views_open_needs_a_fresh_unused_trigger_id(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    trigger = fake.trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=_modal())
    assert opened["view"]["id"] in fake.views
    assert opened["view"]["blocks"][0]["block_id"]  # Slack assigns one

    expired = fake.trigger_id()
    fake.clock = lambda: time.time() + 4
    outcomes = []
    for trigger_id in (trigger, expired, "12.34.made-up"):
        with pytest.raises(SlackApiError) as error:
            await client.views_open(trigger_id=trigger_id, view=_modal())
        outcomes.append(error.value.response["error"])
    assert outcomes == ["exchanged_trigger_id", "expired_trigger_id", "invalid_trigger_id"]


async def test_a_modal_title_over_24_characters_is_invalid_arguments(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as error:
        await client.views_open(trigger_id=fake.trigger_id(), view=_modal("x" * 25))
    assert error.value.response["error"] == "invalid_arguments"
    assert error.value.response["response_metadata"]["messages"]


async def test_views_update_with_a_stale_hash_is_a_hash_conflict(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id=fake.trigger_id(), view=_modal()))["view"]
    first = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=_modal(blocks=[_section("Slots")])
    )
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(
            view_id=opened["id"], hash=opened["hash"], view=_modal(blocks=[_section("Lost")])
        )
    assert stale.value.response["error"] == "hash_conflict"
    assert first["view"]["hash"] != opened["hash"]
    assert fake.views[opened["id"]]["blocks"][0]["text"]["text"] == "Slots"
    with pytest.raises(SlackApiError) as missing:
        await client.views_update(view_id="V0MISSING", view=_modal())
    assert missing.value.response["error"] == "not_found"


async def test_views_publish_keeps_one_home_tab_per_user(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    home = {"type": "home", "blocks": [_section("Your sessions")]}
    first = await client.views_publish(user_id=STUDENT, view=home)
    second = await client.views_publish(
        user_id=STUDENT, view={**home, "blocks": [_section("None")]}, hash=first["view"]["hash"]
    )
    assert first["view"]["id"] == second["view"]["id"]
    assert fake.home_views[STUDENT]["blocks"][0]["text"]["text"] == "None"
    with pytest.raises(SlackApiError) as stale:
        await client.views_publish(user_id=STUDENT, view=home, hash=first["view"]["hash"])
    assert stale.value.response["error"] == "hash_conflict"


async def test_files_upload_v2_makes_three_calls_and_the_file_lands_in_the_dm(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel = (await client.conversations_open(users=STUDENT))["channel"]["id"]
    calendar = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    reply = await client.files_upload_v2(
        channel=channel, content=calendar, filename="session.ics", title="Your session"
    )

    assert [c.method for c in fake.calls[-3:]] == [
        "files.getUploadURLExternal",
        UPLOAD,
        "files.completeUploadExternal",
    ]
    stored = fake.files[reply["file"]["id"]]
    assert (stored.content, stored.title, stored.channels) == (calendar, "Your session", [channel])
    assert fake.last_message(channel).files[0]["name"] == "session.ics"


async def test_a_429_is_retried_after_retry_after_by_the_rate_limit_handler(
    fake: FakeSlack,
) -> None:
    client = AsyncWebClient(
        token=fake.token,
        base_url=fake.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    reply = await client.chat_postMessage(channel=STUDENT, text="Reminder")
    attempts = fake.calls_to("chat.postMessage")

    assert reply["ok"] is True
    assert time.monotonic() - started >= 1.0
    assert [(c.status, (c.response or {}).get("error")) for c in attempts] == [
        (429, "ratelimited"),
        (200, None),
    ]


async def test_an_injected_error_is_answered_once_and_recorded(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("users.info", status=200, error="account_inactive")
    with pytest.raises(SlackApiError) as error:
        await client.users_info(user=STUDENT)
    await client.users_info(user=STUDENT)
    assert error.value.response["error"] == "account_inactive"
    assert [c.ok for c in fake.calls_to("users.info")] == [False, True]
    assert fake.calls_to("users.info")[0].params == {"user": STUDENT}


# -- signed requests into a bolt AsyncApp -----------------------------------------------------


@dataclass
class Seen:
    """What the tiny app's listeners received, so tests can look at the parsed payloads."""

    submissions: list[JSONDict] = field(default_factory=list)
    clicks: list[JSONDict] = field(default_factory=list)
    events: list[tuple[str, str | None]] = field(default_factory=list)  # event_id, retry num


def _tiny_app(fake: FakeSlack, seen: Seen) -> AsyncApp:
    """A bolt app with the shapes the staff app will have: command → modal and a DM button."""
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=fake.token, base_url=fake.base_url),
    )

    @app.command("/sessions")
    async def sessions(ack: AsyncAck, body: JSONDict, client: AsyncWebClient) -> None:
        await ack()
        modal = _modal(
            blocks=[
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "Subject"},
                    "element": {"type": "external_select", "action_id": "subject"},
                },
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "Note"},
                    "element": {"type": "plain_text_input", "action_id": "note"},
                    "optional": True,
                },
            ]
        )
        await client.views_open(trigger_id=body["trigger_id"], view=modal)
        await client.chat_postMessage(
            channel=body["user_id"],
            text="Your next session",
            blocks=[
                _section("Tue 14:00 with Jo"),
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "cancel",
                            "value": "session-7",
                            "text": {"type": "plain_text", "text": "Cancel"},
                        }
                    ],
                },
            ],
        )

    @app.options("subject")
    async def subjects(ack: AsyncAck, payload: JSONDict) -> None:
        wanted = payload["value"].lower()
        names = [s for s in ("Calculus", "Chemistry", "Statistics") if wanted in s.lower()]
        await ack(options=[{"text": {"type": "plain_text", "text": n}, "value": n} for n in names])

    @app.action("cancel")
    async def cancel(ack: AsyncAck, body: JSONDict, respond: AsyncRespond) -> None:
        await ack()
        seen.clicks.append(body)
        await respond(text="Cancelled", replace_original=True)

    @app.view("book")
    async def book(ack: AsyncAck, view: JSONDict) -> None:
        await ack()
        seen.submissions.append(view["state"]["values"])

    @app.event("app_home_opened")
    async def home(
        event: JSONDict, body: JSONDict, request: AsyncBoltRequest, client: AsyncWebClient
    ) -> None:
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        seen.events.append((body["event_id"], retry))
        await client.views_publish(
            user_id=event["user"], view={"type": "home", "blocks": [_section("Sessions")]}
        )

    return app


@dataclass
class Bolt:
    url: str
    session: aiohttp.ClientSession
    seen: Seen


@pytest.fixture
async def bolt(fake: FakeSlack) -> AsyncIterator[Bolt]:
    """The tiny app behind aiohttp on 127.0.0.1, mounted the way bots/slack will mount it."""
    seen = Seen()
    app = _tiny_app(fake, seen)

    async def endpoint(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    server = web.Application()
    server.router.add_post("/slack/events", endpoint)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        yield Bolt(f"http://127.0.0.1:{port}/slack/events", session, seen)
    await runner.cleanup()


async def _run_sessions_command(fake: FakeSlack, bolt: Bolt) -> tuple[int, str]:
    request = slash_command(
        SECRET,
        command="/sessions",
        user_id=STUDENT,
        trigger_id=fake.trigger_id(),
        response_url=fake.response_url(),
    )
    reply = await request.post(bolt.session, bolt.url)
    await fake.wait_until(lambda: bool(fake.views) and bool(fake.messages(fake.dm(STUDENT).id)))
    return reply


async def test_a_signed_slash_command_is_acked_and_its_listener_opens_the_modal(
    fake: FakeSlack, bolt: Bolt
) -> None:
    status, _ = await _run_sessions_command(fake, bolt)
    assert status == 200
    assert [c.method for c in fake.calls if c.ok] == [
        "auth.test",
        "views.open",
        "chat.postMessage",
    ]


async def test_a_click_built_from_the_sent_message_reaches_the_action_listener(
    fake: FakeSlack, bolt: Bolt
) -> None:
    await _run_sessions_command(fake, bolt)
    dm = fake.dm(STUDENT).id
    url = fake.response_url()
    click = block_actions(
        SECRET,
        user_id=STUDENT,
        trigger_id=fake.trigger_id(),
        action_id="cancel",
        message=fake.last_message(dm).to_api(),
        channel_id=dm,
        response_url=url,
    )
    status, _ = await click.post(bolt.session, bolt.url)
    key = url.rsplit("/", 1)[1]
    await fake.wait_until(lambda: bool(fake.responses[key]))

    assert status == 200
    assert bolt.seen.clicks[0]["actions"][0]["value"] == "session-7"
    assert fake.responses[key] == [{"text": "Cancelled", "replace_original": True}]


async def test_an_external_select_gets_its_options_and_the_submission_carries_them(
    fake: FakeSlack, bolt: Bolt
) -> None:
    await _run_sessions_command(fake, bolt)
    view = next(iter(fake.views.values()))
    status, body = await block_suggestion(
        SECRET, user_id=STUDENT, view=view, action_id="subject", query="chem"
    ).post(bolt.session, bolt.url)
    offered = json.loads(body)["options"]
    assert (status, [o["value"] for o in offered]) == (200, ["Chemistry"])

    submit = view_submission(
        SECRET,
        user_id=STUDENT,
        view=view,
        values={"subject": offered[0], "note": "Chapter 4"},
        trigger_id=fake.trigger_id(),
    )
    status, _ = await submit.post(bolt.session, bolt.url)
    assert status == 200
    values = bolt.seen.submissions[0]
    by_action = {action: entry for block in values.values() for action, entry in block.items()}
    assert by_action["subject"]["selected_option"]["value"] == "Chemistry"
    assert by_action["note"]["value"] == "Chapter 4"


async def test_app_home_opened_publishes_the_home_tab(fake: FakeSlack, bolt: Bolt) -> None:
    event = app_home_opened(SECRET, user_id=STUDENT, channel_id=fake.dm(STUDENT).id)
    status, _ = await event.post(bolt.session, bolt.url)
    await fake.wait_until(lambda: STUDENT in fake.home_views)
    assert status == 200


async def test_a_redelivered_event_keeps_its_event_id_and_carries_the_retry_number(
    fake: FakeSlack, bolt: Bolt
) -> None:
    """Bolt does not de-duplicate; this is what the app's own de-duplication will see."""
    channel = fake.dm(STUDENT).id
    for options in (SignOptions(), SignOptions(retry_num=1)):
        event = app_home_opened(
            SECRET, user_id=STUDENT, channel_id=channel, event_id="Ev0SAME", options=options
        )
        status, _ = await event.post(bolt.session, bolt.url)
        assert status == 200
    await fake.wait_until(lambda: len(bolt.seen.events) == 2)
    assert sorted(bolt.seen.events, key=str) == [("Ev0SAME", "1"), ("Ev0SAME", None)]


@pytest.mark.parametrize(
    "options",
    [SignOptions(wrong_signature=True), SignOptions(stale=True)],
    ids=["wrong signature", "stale timestamp"],
)
async def test_a_wrongly_signed_or_stale_request_is_refused_with_401_and_runs_nothing(
    fake: FakeSlack, bolt: Bolt, options: SignOptions
) -> None:
    request = slash_command(
        SECRET,
        command="/sessions",
        user_id=STUDENT,
        trigger_id=fake.trigger_id(),
        response_url=fake.response_url(),
        options=options,
    )
    status, _ = await request.post(bolt.session, bolt.url)
    assert status == 401
    assert fake.calls_to("views.open") == []
