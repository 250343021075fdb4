"""The fake Telegram and Slack servers of `bookbot bench load`, with a clock on every reply.

The fakes are the test suite's own (`tests/fake_telegram.py`, `tests/fake_slack.py`): the same
wire format the real clients are tested against, so the benchmark drives `serve` exactly as the
tests do. They are imported from the source checkout (they are test code, not shipped); a wheel
install without `tests/` is told so in one sentence.

What the benchmark adds is a stamp: each reply the bot makes to a chat (a message sent, edited or
deleted; a modal opened or updated) is recorded with `time.perf_counter()` when the fake receives
it, per chat, and wakes whoever waits on that chat. Latency is then "from just before the update
was posted to the bot's reply arriving here", on one clock, in one process.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CHECKOUT = Path(__file__).resolve().parent.parent
if not (_CHECKOUT / "tests" / "fake_telegram.py").exists():  # pragma: no cover - wheel install
    raise SystemExit("bookbot bench load needs the source checkout: its fake servers are tests/")
if str(_CHECKOUT) not in sys.path:
    sys.path.insert(0, str(_CHECKOUT))  # the editable install maps bots/engine/storage only

from tests.fake_slack import Call as SlackCall  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402
from tests.fake_telegram import Call as TelegramCall  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

__all__ = ["Replies", "TimedSlack", "TimedTelegram"]

# Bot API methods a person sees in the chat (the press's spinner answer is not among them: the
# person waits for the screen, which comes after it).
TELEGRAM_REPLIES = (
    "sendmessage",
    "editmessagetext",
    "editmessagereplymarkup",
    "sendphoto",
    "senddocument",
    "deletemessage",
)
SLACK_REPLIES = ("views.open", "views.update", "chat.postMessage")


@dataclass
class Replies:
    """Arrival times of the bot's replies per chat, and a wake-up for whoever waits on one."""

    times: dict[Any, list[float]] = field(default_factory=dict)
    methods: dict[Any, list[str]] = field(default_factory=dict)
    _changed: dict[Any, asyncio.Event] = field(default_factory=dict)

    def record(self, chat: Any, method: str) -> None:
        self.times.setdefault(chat, []).append(time.perf_counter())
        self.methods.setdefault(chat, []).append(method)
        event = self._changed.pop(chat, None)
        if event is not None:
            event.set()

    def since(self, chat: Any, started: float) -> list[float]:
        return [t for t in self.times.get(chat, []) if t >= started]

    async def changed(self, chat: Any, seconds: float) -> bool:
        """Until the next reply to `chat` (True) or `seconds` have passed (False)."""
        event = self._changed.setdefault(chat, asyncio.Event())
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True


def _timed(
    handler: Callable[[Any], Any], method: str, chat_of: Callable[[Any], Any], replies: Replies
) -> Callable[[Any], Any]:
    """`handler` that stamps its chat's reply once the fake accepted it (errors are not
    replies: the person saw nothing)."""

    def stamped(call: Any) -> Any:
        result = handler(call)
        replies.record(chat_of(call), method)
        return result

    return stamped


class TimedTelegram(FakeTelegram):
    """FakeTelegram recording when each reply to a chat (by chat id) arrived."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__(token)
        self.replies = Replies()
        self.flood = None  # thousands of chats at human pace; Telegram's own limit is the pacer's
        for method in TELEGRAM_REPLIES:
            self._methods[method] = _timed(
                self._methods[method], method, _telegram_chat, self.replies
            )


def _telegram_chat(call: TelegramCall) -> Any:
    return call.params.get("chat_id")


class TimedSlack(FakeSlack):
    """FakeSlack recording replies per coordinator: `views.open` by the trigger a coordinator
    was given, `views.update` by the view they work in (`owner` maps both to the person)."""

    def __init__(self) -> None:
        super().__init__()
        self.replies = Replies()
        self.owner: dict[str, str] = {}  # trigger id or view id -> Slack user id
        for method in SLACK_REPLIES:
            self._methods[method] = _timed(self._methods[method], method, self._who, self.replies)
        opened = self._methods["views.open"]

        def views_open(call: SlackCall) -> Any:
            """The modal a trigger opened belongs to whoever the trigger was given to."""
            result = opened(call)
            owner = self.owner.get(str(call.params.get("trigger_id")))
            if owner is not None:
                self.owner[result["view"]["id"]] = owner
            return result

        self._methods["views.open"] = views_open

    def _who(self, call: SlackCall) -> Any:
        for key in ("trigger_id", "view_id"):
            value = call.params.get(key)
            if isinstance(value, str) and value in self.owner:
                return self.owner[value]
        return call.params.get("channel")
