"""ChatSender for Slack: the engine's outgoing messages as DMs through slack_sdk.

A notice goes to the person's DM channel (the chat id stored for them). Buttons carry the
engine's opaque data in `value`, as the interactive front end will read it back.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from engine.followup.senders import OutButton, OutMessage, SendError

# Errors that no retry can fix: the channel or person is gone, or the app may not post there.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "user_not_found",
        "account_inactive",
        "is_archived",
        "not_in_channel",
        "cannot_dm_bot",
        "invalid_auth",
        "not_authed",
        "missing_scope",
        "restricted_action",
    }
)
MAX_TEXT = 3000  # a section's text
MAX_LABEL = 75  # a button's text


def _element(index: int, button: OutButton) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": f"notice:{index}",
        "text": {"type": "plain_text", "text": button.label[:MAX_LABEL], "emoji": True},
    }
    if button.url:
        element["url"] = button.url
    if button.data:
        element["value"] = button.data
    return element


def notice_blocks(message: OutMessage) -> list[dict[str, Any]]:
    """The message as a section and one actions block per row of buttons."""
    text = message.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT]}}
    ]
    index = 0
    for row in message.buttons:
        elements = []
        for button in row:
            elements.append(_element(index, button))
            index += 1
        if elements:
            blocks.append({"type": "actions", "elements": elements})
    return blocks


class SlackSender:
    platform = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def send(self, chat_id: str, message: OutMessage) -> None:
        try:
            await self.client.chat_postMessage(
                channel=chat_id, text=message.text, blocks=notice_blocks(message)
            )
        except SlackApiError as error:
            status = error.response.status_code
            code = str(error.response.get("error", ""))
            if status == 429:
                wait = error.response.headers.get("Retry-After", "1")
                raise SendError("slack 429", retry_after=float(wait)) from error
            raise SendError(f"slack {code}", permanent=code in PERMANENT) from error
        except SlackClientError as error:  # the connection, not Slack, failed: try again later
            raise SendError(type(error).__name__) from error
        except OSError as error:
            raise SendError(type(error).__name__) from error
