"""Signed requests from "Slack" to a bolt app, built like a person's clicks produce them.

Slack signs `v0:{timestamp}:{raw body}` with the app's signing secret (HMAC-SHA256), and bolt
refuses anything else with 401; so every helper here returns the exact bytes to post with the
headers computed over exactly those bytes. Interactions are built from the blocks the app really
sent (a view or a message as the fake Slack stored it, with Slack's `block_id`s): a test names an
`action_id` and, for a select, the option's value, and the helper fails loudly if no such element
is there, as a person could not click what is not on screen.

`SignOptions` makes the requests bolt must refuse or de-duplicate: a stale timestamp, a wrong
signature, a redelivery with `X-Slack-Retry-Num`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.fake_slack import TEAM_ID

JSONDict = dict[str, Any]

STALE_SECONDS = 6 * 60  # bolt refuses requests older than 5 minutes


@dataclass(frozen=True)
class SignOptions:
    """How to spoil (or mark as a retry) an otherwise correct request."""

    stale: bool = False
    wrong_signature: bool = False
    retry_num: int | None = None
    retry_reason: str = "http_timeout"


@dataclass(frozen=True)
class SignedRequest:
    """The body to post and the headers signed over it."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    async def post(self, session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
        """POST it as Slack would; the status and body bolt answered with."""
        async with session.post(url, data=self.body, headers=self.headers) as response:
            return response.status, await response.text()


def sign(
    secret: str, body: bytes, content_type: str, options: SignOptions = SignOptions()
) -> SignedRequest:
    """Headers Slack sends, signed over exactly `body`."""
    timestamp = str(int(time.time()) - (STALE_SECONDS if options.stale else 0))
    signing_secret = secret + "-wrong" if options.wrong_signature else secret
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or "",
    }
    if options.retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(options.retry_num)
        headers["X-Slack-Retry-Reason"] = options.retry_reason
    return SignedRequest(body, headers)


def _form(secret: str, fields: dict[str, str], options: SignOptions) -> SignedRequest:
    return sign(secret, urlencode(fields).encode(), "application/x-www-form-urlencoded", options)


def _interaction(secret: str, payload: JSONDict, options: SignOptions) -> SignedRequest:
    """Interactivity arrives as a form with one field, `payload`, holding JSON."""
    return _form(secret, {"payload": json.dumps(payload)}, options)


def _user(user_id: str) -> JSONDict:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM_ID}


def slash_command(
    secret: str,
    *,
    command: str,
    text: str = "",
    user_id: str,
    trigger_id: str,
    response_url: str,
    channel_id: str = "D00000000",
    team_id: str = TEAM_ID,
    options: SignOptions = SignOptions(),
) -> SignedRequest:
    """A slash command as Slack posts it: form fields, no JSON."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": "campus-tutoring",
        "channel_id": channel_id,
        "channel_name": "directmessage" if channel_id.startswith("D") else "general",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0BOOKBOT",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return _form(secret, fields, options)


def _elements(blocks: list[JSONDict]) -> Iterator[tuple[JSONDict, JSONDict]]:
    """(block, element) for every interactive element a person could use."""
    for block in blocks:
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                yield block, element
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                yield block, block[key]


def find_element(blocks: list[JSONDict], action_id: str) -> tuple[JSONDict, JSONDict]:
    """The block and element with `action_id`; an AssertionError lists what is on screen."""
    found = [(b, e) for b, e in _elements(blocks) if e.get("action_id") == action_id]
    if not found:
        shown = [e.get("action_id") for _, e in _elements(blocks)]
        raise AssertionError(f"no element with action_id {action_id!r}; on screen: {shown}")
    if len(found) > 1:
        raise AssertionError(f"action_id {action_id!r} is used {len(found)} times")
    return found[0]


def _options(element: JSONDict) -> list[JSONDict]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options.extend(group.get("options", []))
    return options


def _pick_option(element: JSONDict, value: str) -> JSONDict:
    for option in _options(element):
        if option.get("value") == value:
            return option
    values = [o.get("value") for o in _options(element)]
    raise AssertionError(f"{element.get('action_id')!r} has no option {value!r}; it has {values}")


def _action(
    block: JSONDict, element: JSONDict, value: str | None, option: JSONDict | None
) -> JSONDict:
    """The `actions[0]` entry Slack sends for a click on `element`."""
    kind = element["type"]
    action: JSONDict = {
        "type": kind,
        "action_id": element["action_id"],
        "block_id": block["block_id"],
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        if value is not None and value != element.get("value"):
            raise AssertionError(
                f"button {element['action_id']!r} carries {element.get('value')!r}"
            )
        action["text"] = element["text"]
        if "value" in element:
            action["value"] = element["value"]
    elif kind in {"static_select", "radio_buttons"}:
        if value is None:
            raise AssertionError(f"say which option of {element['action_id']!r} to pick")
        action["selected_option"] = _pick_option(element, value)
    elif kind == "external_select":
        if option is None:
            raise AssertionError("an external_select needs the option the app offered")
        action["selected_option"] = option
    elif kind == "overflow":
        action["selected_option"] = _pick_option(element, value or "")
    elif kind == "datepicker":
        action["selected_date"] = value
    elif kind == "timepicker":
        action["selected_time"] = value
    elif kind == "checkboxes":  # a click on a one-option checkbox flips it
        ticked = bool(element.get("initial_options"))
        action["selected_options"] = [] if ticked else list(element["options"][:1])
    else:
        action["value"] = value
    return action


def block_actions(
    secret: str,
    *,
    user_id: str,
    trigger_id: str,
    action_id: str,
    value: str | None = None,
    option: JSONDict | None = None,
    view: JSONDict | None = None,
    message: JSONDict | None = None,
    channel_id: str | None = None,
    response_url: str | None = None,
    options: SignOptions = SignOptions(),
) -> SignedRequest:
    """A click on the element `action_id` of a `view` or of a `message` in `channel_id`.

    `value` picks a select's option by value (and must match a button's own value if given);
    `option` is the option an `external_select`'s options request returned.
    """
    if (view is None) == (message is None):
        raise ValueError("give exactly one of view or message")
    source = view if view is not None else message
    assert source is not None
    block, element = find_element(source.get("blocks", []), action_id)
    payload: JSONDict = {
        "type": "block_actions",
        "user": _user(user_id),
        "api_app_id": "A0BOOKBOT",
        "token": "deprecated-verification-token",
        "team": {"id": TEAM_ID, "domain": "campus-tutoring"},
        "trigger_id": trigger_id,
        "is_enterprise_install": False,
        "actions": [_action(block, element, value, option)],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
    else:
        assert message is not None
        if channel_id is None:
            raise ValueError("a message click needs its channel_id")
        payload["container"] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["message"] = message
        payload["channel"] = {"id": channel_id, "name": "directmessage"}
        payload["response_url"] = response_url or "https://hooks.slack.invalid/actions/x"
    return _interaction(secret, payload, options)


def _state_value(element: JSONDict, value: Any) -> JSONDict:
    """One entry of `view.state.values` as Slack fills it for an input element."""
    kind = element["type"]
    entry: JSONDict = {"type": kind}
    if kind == "plain_text_input":
        entry["value"] = value
    elif kind in {"static_select", "radio_buttons"}:
        entry["selected_option"] = None if value is None else _pick_option(element, value)
    elif kind == "external_select":
        entry["selected_option"] = value  # the option dict the app offered
    elif kind == "checkboxes":
        entry["selected_options"] = [_pick_option(element, v) for v in value or []]
    elif kind == "datepicker":
        entry["selected_date"] = value
    elif kind == "timepicker":
        entry["selected_time"] = value
    elif kind == "users_select":
        entry["selected_user"] = value
    else:
        entry["value"] = value
    return entry


def view_submission(
    secret: str,
    *,
    user_id: str,
    view: JSONDict,
    values: dict[str, Any],
    trigger_id: str,
    options: SignOptions = SignOptions(),
) -> SignedRequest:
    """Pressing Submit on `view` with `values` by action_id (unnamed inputs stay empty).

    Values are text for inputs, an option's value for static selects and radio buttons, the
    option dict for external selects, a list of values for checkboxes.
    """
    inputs = [(b, b["element"]) for b in view.get("blocks", []) if b.get("type") == "input"]
    known = {e.get("action_id") for _, e in inputs}
    unknown = set(values) - known
    if unknown:
        raise AssertionError(f"no input with action_id {sorted(unknown)}; inputs: {known}")
    state: dict[str, JSONDict] = {}
    for block, element in inputs:
        state[block["block_id"]] = {
            element["action_id"]: _state_value(element, values.get(element["action_id"]))
        }
    submitted = {**view, "state": {"values": state}}
    payload: JSONDict = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "campus-tutoring"},
        "user": _user(user_id),
        "api_app_id": "A0BOOKBOT",
        "token": "deprecated-verification-token",
        "trigger_id": trigger_id,
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return _interaction(secret, payload, options)


def block_suggestion(
    secret: str,
    *,
    user_id: str,
    view: JSONDict,
    action_id: str,
    query: str,
    options: SignOptions = SignOptions(),
) -> SignedRequest:
    """Typing `query` into the external_select `action_id` of `view` (the options request)."""
    block, element = find_element(view.get("blocks", []), action_id)
    if element.get("type") != "external_select":
        raise AssertionError(f"{action_id!r} is a {element.get('type')}, not an external_select")
    payload: JSONDict = {
        "type": "block_suggestion",
        "user": _user(user_id),
        "team": {"id": TEAM_ID, "domain": "campus-tutoring"},
        "api_app_id": "A0BOOKBOT",
        "token": "deprecated-verification-token",
        "action_id": action_id,
        "block_id": block["block_id"],
        "value": query,
        "container": {"type": "view", "view_id": view["id"]},
        "view": view,
        "is_enterprise_install": False,
    }
    return _interaction(secret, payload, options)


def app_home_opened(
    secret: str,
    *,
    user_id: str,
    channel_id: str,
    event_id: str | None = None,
    tab: str = "home",
    view: JSONDict | None = None,
    options: SignOptions = SignOptions(),
) -> SignedRequest:
    """An `event_callback` for `app_home_opened`; pass the same `event_id` to redeliver."""
    event: JSONDict = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel_id,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    payload: JSONDict = {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0BOOKBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": "U0BOOKBOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return sign(secret, json.dumps(payload).encode(), "application/json", options)
