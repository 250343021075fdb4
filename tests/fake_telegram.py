"""A fake Telegram Bot API server, so end-to-end tests drive the real python-telegram-bot client.

Mocking PTB would test our guesses about PTB; pointing a real `Application` at this server
(`.base_url(fake.base_url).base_file_url(fake.base_file_url)`) exercises its real request
encoding, de-serialisation, error mapping, polling loop and handlers. The server speaks the wire
format PTB uses: `POST /bot{token}/{method}`, form or multipart bodies with nested objects as
JSON strings, answers `{"ok": true, "result": ...}` or `{"ok": false, "error_code", ...}`.

It keeps what a test wants to look at: every call (`calls`), every message the bot sent per chat
in its current state with its edit history (`messages`), and a readable `transcript()`;
`wait_until` waits for an effect of a polling bot instead of sleeping. Users
(`user(...)`) type text and press inline buttons by label; their updates are queued for
`getUpdates` (long polling, offsets confirmed like the real API) and returned so they can also be
pushed to a webhook or given to `Application.process_update`. Errors the real API gives for
common bot bugs are reproduced (edit without change, edit/delete of a missing message, unknown
chat, over-long text, callback_data over 64 bytes, answering a callback query twice, a callback
answer over 200 characters), and `fail_next` injects any other failure (a 429 with retry_after, a
500). Slow or lost answers, per method: `delay_next` holds a reply past the client's timeout,
either before the call takes effect (never happened) or after (`accepted=True`: the message is
out, only the answer was lost); `slow_down` makes every call of a method take longer; `on_next`
runs a test's action when the next call of a method arrives (say, stop the database just as the
bot draws its "booking..." screen).

Telegram's own rules are enforced as TDLib (which runs the Bot API) enforces them, see
`tests/telegram_rules.py`: HTML text is parsed like Telegram parses it (only its tags; a stray
`<` is "Bad Request: can't parse entities: ..."; entities decoded, so the user sees what a real
client would show), button URLs are checked ("Bad Request: inline keyboard button URL '...' is
invalid: ..."), and each chat has flood control (`flood`, a `FloodControl`: a short burst of new
messages, then about one a second, else 429 with `parameters.retry_after`). A test tightens it
(`fake.flood = FloodControl(burst=1, per_second=0.5)`), turns it off (`fake.flood = None`) or
moves its clock (`fake.clock`).

Everything runs on one asyncio loop, so two Applications may share one server: state changes
never span an `await`. Like the real API, a pending update is returned by every `getUpdates`
until an offset confirms it, so two Applications *polling* the same token both see it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

import aiohttp
from aiohttp import web

from tests.telegram_rules import EntityError, FloodControl, check_link, parse_html

JSONDict = dict[str, Any]

TOKEN = "123456:TEST-TOKEN"
BOT_ID = 123456
BOT_USERNAME = "tutor_test_bot"

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
DELETE_NOT_FOUND = "Bad Request: message to delete not found"
CHAT_NOT_FOUND = "Bad Request: chat not found"
BLOCKED = "Forbidden: bot was blocked by the user"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CALLBACK_ANSWER_MAX = 200  # answerCallbackQuery text: "0-200 characters"

# Form values that are plain strings on the wire; every other value is JSON-encoded by PTB
# (numbers, booleans, objects, arrays), so it is decoded before the handlers see it.
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "language_code",
        "action",
        "emoji",
        "business_connection_id",
        "message_effect_id",
        "ip_address",
        "name",
        "description",
        "short_description",
        "title",
        "file_id",
        "photo",
        "document",
        "thumbnail",
        "certificate",
    }
)
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]+)?")
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_WHO = "\x00"  # placeholder for the chat's display name, filled in when rendering


class ApiError(Exception):
    """A Bot API error reply; raised by method handlers, turned into the JSON error body."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSONDict:
        reply: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            reply["parameters"] = {"retry_after": self.retry_after}
        return reply


@dataclass
class UploadedFile:
    """One multipart file part as the bot uploaded it (bytes and the filename PTB chose)."""

    field: str
    filename: str
    content: bytes
    content_type: str


@dataclass
class Call:
    """One HTTP request to the Bot API, recorded before it is answered (so failures show too)."""

    method: str
    params: JSONDict
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int = 0  # HTTP status of the reply
    result: Any = None  # `result` of an ok reply, or the error description
    at: float = field(default_factory=time.monotonic)  # when it arrived, for pacing checks

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class StoredFile:
    """A file known to the fake: uploaded (content kept) or referenced only by URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    filename: str | None
    mime_type: str | None
    content: bytes | None
    width: int = 0
    height: int = 0

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else 0


@dataclass
class Revision:
    """An earlier version of a message, before an edit."""

    text: str | None
    reply_markup: JSONDict | None
    edit_date: int | None


@dataclass
class SentMessage:
    """A message the bot sent, in its current state; `history` keeps the versions it replaced."""

    chat_id: int
    message_id: int
    kind: Literal["text", "photo", "document"]
    text: str | None  # the text, or the caption of a photo/document; HTML tags stripped
    raw_text: str | None  # as sent, before parse_mode was applied
    parse_mode: str | None
    entities: list[JSONDict] | None
    reply_markup: JSONDict | None  # as sent: inline, reply keyboard, remove or force reply
    date: int
    file: StoredFile | None = None
    deleted: bool = False
    edit_date: int | None = None
    history: list[Revision] = field(default_factory=list)

    @property
    def caption(self) -> str | None:
        return None if self.kind == "text" else self.text

    @property
    def photo(self) -> list[JSONDict] | None:
        return _photo_sizes(self.file) if self.kind == "photo" and self.file else None

    @property
    def document(self) -> JSONDict | None:
        return _document(self.file) if self.kind == "document" and self.file else None

    @property
    def button_rows(self) -> list[list[JSONDict]]:
        """Buttons as dicts by row, for tests that check callback_data or url."""
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [[_as_button(b) for b in row] for row in rows]

    def buttons(self) -> list[list[str]]:
        """Labels by row, as the user sees them (inline keyboard, else reply keyboard)."""
        return [[b["text"] for b in row] for row in self.button_rows]

    def to_api(self, bot_user: JSONDict, chat: JSONDict) -> JSONDict:
        """The Message object the real API would return for this message now."""
        msg: JSONDict = {
            "message_id": self.message_id,
            "from": bot_user,
            "chat": chat,
            "date": self.date,
        }
        entities_key = "entities" if self.kind == "text" else "caption_entities"
        if self.kind == "text":
            msg["text"] = self.text or ""
        elif self.text:
            msg["caption"] = self.text
        if self.entities:
            msg[entities_key] = self.entities
        if self.kind == "photo":
            msg["photo"] = self.photo
        if self.kind == "document":
            msg["document"] = self.document
        if self.edit_date is not None:
            msg["edit_date"] = self.edit_date
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            msg["reply_markup"] = self.reply_markup  # the API echoes inline keyboards only
        return msg


@dataclass
class _IncomingMessage:
    message: JSONDict
    deleted: bool = False


@dataclass
class _CallbackQuery:
    query_id: str
    chat_id: int
    message_id: int
    data: str
    answered: bool = False
    answer: JSONDict | None = None


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None


@dataclass
class _Delay:
    seconds: float
    accepted: bool  # the call takes effect before the wait, so a client that gives up lost only
    # the answer; otherwise the wait comes first and a client that gives up cancels the call


Hook = Callable[[Call], Awaitable[None] | None]


def _as_button(button: Any) -> JSONDict:
    """Reply keyboards may hold bare strings; make every button a dict with `text`."""
    return {"text": button} if isinstance(button, str) else dict(button)


def _norm(label: str) -> str:
    """Babel/locale formatting puts narrow/no-break spaces in labels; tests type plain ones."""
    return label.replace("\u202f", " ").replace("\xa0", " ")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _parsed(
    raw: str, parse_mode: str | None, entities: list[JSONDict] | None
) -> tuple[str, list[JSONDict] | None]:
    """What the user sees: HTML parsed like Telegram does, or refused like Telegram refuses it.

    Markdown modes are not modelled (the bot does not use them): their text is kept as sent.
    """
    if (parse_mode or "").upper() != "HTML":
        return raw, entities
    try:
        text, parsed = parse_html(raw)
    except EntityError as error:
        raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    return text, parsed or None


def _decode_param(key: str, value: str) -> Any:
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _image_size(content: bytes) -> tuple[int, int]:
    """Real sizes for PNG uploads (cheap to read), a plausible default otherwise."""
    if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return int(width), int(height)
    return 1280, 720


def _photo_sizes(file: StoredFile) -> list[JSONDict]:
    return [
        {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "width": file.width,
            "height": file.height,
            "file_size": file.size,
        }
    ]


def _document(file: StoredFile) -> JSONDict:
    doc: JSONDict = {
        "file_id": file.file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.size,
    }
    if file.filename:
        doc["file_name"] = file.filename
    if file.mime_type:
        doc["mime_type"] = file.mime_type
    return doc


def _keyboard_lines(markup: JSONDict | None) -> list[str]:
    if not markup:
        return []
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        return [
            "    "
            + " ".join(
                f"[{b['text']} → {b['url']}]" if b.get("url") else f"[{b['text']}]" for b in row
            )
            for row in rows
        ]
    if "keyboard" in markup:
        return [
            "    (keyboard) " + " ".join(f"[{_as_button(b)['text']}]" for b in row)
            for row in markup["keyboard"]
        ]
    if markup.get("remove_keyboard"):
        return ["    (keyboard removed)"]
    if markup.get("force_reply"):
        return ["    (force reply)"]
    return []


def _indent_text(text: str) -> str:
    return text.replace("\n", "\n  ")


class FakeUser:
    """A person in a private chat with the bot (chat id == user id)."""

    def __init__(
        self, fake: FakeTelegram, user_id: int, first_name: str, language_code: str
    ) -> None:
        self.fake = fake
        self.id = user_id
        self.first_name = first_name
        self.language_code = language_code
        self.blocked = False  # True: the bot gets 403 "bot was blocked by the user"
        self._message_ids = itertools.count(1)
        self._sent: list[SentMessage] = []  # bot → user, in order
        self._incoming: dict[int, _IncomingMessage] = {}  # user → bot
        self._flood_tokens: float | None = None  # None: a quiet chat, the whole burst is left
        self._flood_at = 0.0

    @property
    def api_user(self) -> JSONDict:
        return {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }

    @property
    def api_chat(self) -> JSONDict:
        return {"id": self.id, "type": "private", "first_name": self.first_name}

    def send_text(self, text: str) -> JSONDict:
        """Queue a Message update; commands get bot_command entities like the real client."""
        message: JSONDict = {
            "message_id": next(self._message_ids),
            "from": self.api_user,
            "chat": self.api_chat,
            "date": int(time.time()),
            "text": text,
        }
        entities = [
            {
                "type": "bot_command",
                "offset": _utf16_len(text[: m.start()]),
                "length": _utf16_len(m.group()),
            }
            for m in _COMMAND_RE.finditer(text)
        ]
        if entities:
            message["entities"] = entities
        self._incoming[message["message_id"]] = _IncomingMessage(message)
        self.fake._person_acts(self)
        self.fake._log(self.id, f"{_WHO}: {_indent_text(text)}")
        return self.fake._enqueue({"message": message})

    def press(self, label: str, message_id: int | None = None) -> JSONDict:
        """Press the inline button labelled `label`; fails loudly if the user cannot see one."""
        wanted = _norm(label)
        if message_id is not None:
            candidates = [self._message(message_id)]
            if candidates[0].deleted:
                raise AssertionError(f"message #{message_id} in chat {self.id} was deleted")
        else:
            candidates = [m for m in reversed(self._sent) if not m.deleted]
        for msg in candidates:
            for row in msg.button_rows:
                for button in row:
                    if _norm(button["text"]) != wanted:
                        continue
                    if "callback_data" not in button or "inline_keyboard" not in (
                        msg.reply_markup or {}
                    ):
                        raise AssertionError(
                            f"[{label}] on message #{msg.message_id} is not a callback button "
                            f"(a reply-keyboard button is pressed with send_text): {button}"
                        )
                    return self._callback(msg, button["callback_data"], f"[{button['text']}]")
        raise AssertionError(self._no_button_message(label, message_id))

    def press_data(self, data: str, message_id: int | None = None) -> JSONDict:
        """Send arbitrary callback_data (a forged or stale button) from a bot message."""
        if message_id is not None:
            msg = self._message(message_id)
        else:
            live = [m for m in self._sent if not m.deleted]
            if not live:
                raise AssertionError(f"the bot has no message in chat {self.id} to press on")
            msg = live[-1]
        return self._callback(msg, data, f"(data {data!r})")

    def buttons(self, message_id: int | None = None) -> list[list[str]]:
        """Button labels on a message; the bot's latest message by default."""
        if message_id is not None:
            return self._message(message_id).buttons()
        return self.fake.last_message(self.id).buttons()

    def messages(self) -> list[SentMessage]:
        return list(self._sent)

    def last_message(self) -> SentMessage:
        return self.fake.last_message(self.id)

    def _message(self, message_id: int) -> SentMessage:
        for msg in self._sent:
            if msg.message_id == message_id:
                return msg
        raise AssertionError(f"the bot never sent message #{message_id} to chat {self.id}")

    def _callback(self, msg: SentMessage, data: str, shown: str) -> JSONDict:
        if msg.deleted:
            raise AssertionError(f"message #{msg.message_id} in chat {self.id} was deleted")
        query_id = str(next(self.fake._query_ids))
        self.fake._queries[query_id] = _CallbackQuery(query_id, self.id, msg.message_id, data)
        self.fake._person_acts(self)
        query: JSONDict = {
            "id": query_id,
            "from": self.api_user,
            "message": msg.to_api(self.fake.bot_user, self.api_chat),
            "chat_instance": f"ci{self.id}",
            "data": data,
        }
        self.fake._log(self.id, f"{_WHO} pressed {shown} on #{msg.message_id}")
        return self.fake._enqueue({"callback_query": query})

    def _no_button_message(self, label: str, message_id: int | None) -> str:
        where = f"message #{message_id}" if message_id is not None else f"chat {self.id}"
        live = [m for m in self._sent if not m.deleted]
        visible = [
            f"#{m.message_id}: " + " ".join(f"[{t}]" for row in m.buttons() for t in row)
            for m in live
            if m.buttons()
        ]
        gone = [
            m.message_id
            for m in self._sent
            if any(_norm(t) == _norm(label) for row in m.buttons() for t in row) and m.deleted
        ]
        note = f" (it was on deleted message(s) {gone})" if gone else ""
        shown = "; ".join(visible) if visible else "none"
        return f"no button [{label}] in {where}{note}; visible buttons: {shown}"


class FakeTelegram:
    """The server; see the module docstring for why and how."""

    token: str = TOKEN

    def __init__(self, token: str | None = None, username: str = BOT_USERNAME) -> None:
        if token is not None:
            self.token = token
        self.bot_id = int(self.token.split(":", 1)[0])
        self.username = username
        self.calls: list[Call] = []
        self.webhook: JSONDict | None = None  # setWebhook parameters while one is set
        self.commands_by_scope: dict[tuple[str, str], list[JSONDict]] = {}
        self.flood: FloodControl | None = FloodControl()  # None: no flood control at all
        self.clock: Callable[[], float] = time.monotonic  # seconds, for flood control only
        self._users: dict[int, FakeUser] = {}
        self._updates: list[JSONDict] = []  # not yet confirmed by an offset
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(7_000_000_001)
        self._file_ids = itertools.count(1)
        self._queries: dict[str, _CallbackQuery] = {}
        self._files: dict[str, StoredFile] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._hooks: dict[str, deque[Hook]] = {}
        self.latency: dict[str, float] = {}  # lower-case method -> seconds each call waits first
        self._allowed_updates: list[str] | None = None
        self._arrived = asyncio.Event()  # replaced after each set: one per arrival
        self._changed = asyncio.Event()  # likewise, for wait_until
        self._closing = False
        self._events: list[tuple[int | None, str]] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods: dict[str, Callable[[Call], Any]] = {
            "getme": lambda call: self.bot_user_full,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "sendphoto": lambda call: self._send_file(call, "photo"),
            "senddocument": lambda call: self._send_file(call, "document"),
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
            "close": lambda call: True,
            "logout": lambda call: True,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        # handler_cancellation: a long poll PTB abandons (stop, timeout) must not linger.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._closing = False

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/file/bot"

    @property
    def bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Tutor Test Bot",
            "username": self.username,
        }

    @property
    def bot_user_full(self) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    # -- test-facing API -------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def user(self, user_id: int, first_name: str = "Sam", language_code: str = "en") -> FakeUser:
        """The user (created on first use); only chats of known users exist for the bot."""
        if user_id not in self._users:
            self._users[user_id] = FakeUser(self, user_id, first_name, language_code)
        return self._users[user_id]

    def fail_next(
        self,
        method: str,
        *,
        retry_after: int | None = None,
        status: int = 429,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail; a 429 always carries retry_after."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = _default_description(status, retry_after)
        queue = self._failures.setdefault(method.lower(), deque())
        queue.extend(_Failure(status, description, retry_after) for _ in range(times))

    def delay_next(
        self, method: str, seconds: float, *, times: int = 1, accepted: bool = False
    ) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a client timeout).

        `accepted=False`: the wait comes first, and a client that gives up meanwhile cancels
        the call (it never took effect, its `status` stays 0). `accepted=True`: the call takes
        effect at once and only its answer is late, as when Telegram delivered a message but the
        reply was lost: a client that retries then sends it twice.
        """
        queue = self._delays.setdefault(method.lower(), deque())
        queue.extend(_Delay(seconds, accepted) for _ in range(times))

    def slow_down(self, method: str, seconds: float) -> None:
        """Every later call of `method` waits `seconds` before it takes effect (0: fast again)."""
        self.latency[method.lower()] = seconds

    def on_next(self, method: str, hook: Hook) -> None:
        """Run `hook(call)` (awaited if it returns an awaitable) when the next call of `method`
        arrives, before it is answered or takes effect."""
        self._hooks.setdefault(method.lower(), deque()).append(hook)

    def messages(self, chat_id: int) -> list[SentMessage]:
        user = self._users.get(chat_id)
        return list(user._sent) if user else []

    def last_message(self, chat_id: int) -> SentMessage:
        sent = self.messages(chat_id)
        if not sent:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return sent[-1]

    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a getUpdates offset (or acknowledged by a webhook)."""
        return list(self._updates)

    def unanswered_callback_queries(self) -> list[str]:
        """Ids of presses the bot never answered (the user's button would keep spinning)."""
        return [q.query_id for q in self._queries.values() if not q.answered]

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        return list(self.commands_by_scope.get(_scope_key(scope, language_code), []))

    def transcript(self, chat_id: int | None = None) -> str:
        """The conversation as text, in order; names stand for chats (ids when ambiguous)."""
        names = [u.first_name for u in self._users.values()]
        lines = []
        for event_chat, line in self._events:
            if chat_id is not None and event_chat != chat_id:
                continue
            lines.append(line.replace(_WHO, self._chat_label(event_chat, names)))
        return "\n".join(lines)

    async def wait_until(self, check: Callable[[], bool], seconds: float = 5.0) -> None:
        """Wait until `check()` holds, re-checked after every request and queued update.

        Polling bots react asynchronously; this waits for the effect instead of sleeping, and
        on timeout fails with the transcript so the test says what the bot did instead.
        """
        try:
            async with asyncio.timeout(seconds):
                while not check():
                    changed = self._changed
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"condition not met within {seconds}s; transcript:\n{self.transcript()}"
            ) from None

    async def deliver_webhook(self, url: str, update: JSONDict, secret: str | None = None) -> int:
        """POST one update like Telegram does; a 2xx reply takes it off the getUpdates queue."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        client_timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            await response.read()
            status = response.status
        if 200 <= status < 300:
            self._updates = [u for u in self._updates if u["update_id"] != update.get("update_id")]
        return status

    async def deliver_pending_webhook(self) -> list[int]:
        """Push every queued update to the webhook set by the bot, with its secret."""
        if self.webhook is None:
            raise AssertionError("the bot has not set a webhook")
        statuses = []
        for update in list(self._updates):
            statuses.append(
                await self.deliver_webhook(
                    self.webhook["url"], update, self.webhook.get("secret_token")
                )
            )
        return statuses

    # -- plumbing --------------------------------------------------------------------------

    def _chat_label(self, chat_id: int | None, names: list[str]) -> str:
        user = self._users.get(chat_id) if chat_id is not None else None
        if user is None:
            return f"chat {chat_id}"
        if names.count(user.first_name) > 1:
            return f"{user.first_name} ({user.id})"
        return user.first_name

    def _log(self, chat_id: int | None, line: str) -> None:
        self._events.append((chat_id, line))

    def _enqueue(self, payload: JSONDict) -> JSONDict:
        update = {"update_id": next(self._update_ids), **payload}
        self._updates.append(update)
        self._wake()
        return update

    def _wake(self) -> None:
        self._arrived.set()
        self._arrived = asyncio.Event()
        self._notify_change()

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read_params(self, request: web.Request) -> tuple[JSONDict, dict[str, UploadedFile]]:
        params: JSONDict = {k: _decode_param(k, v) for k, v in request.query.items()}
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.body_exists:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = UploadedFile(
                        key, value.filename, value.file.read(), value.content_type
                    )
                elif isinstance(value, bytes | bytearray):
                    params[key] = _decode_param(key, value.decode())
                else:
                    params[key] = _decode_param(key, value)
        return params, files

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        call = Call(method, params, files)
        self.calls.append(call)
        key = method.lower()
        hooks = self._hooks.get(key)
        if hooks:
            done = hooks.popleft()(call)
            if inspect.isawaitable(done):
                await done
        delays = self._delays.get(key)
        delay = delays.popleft() if delays else None
        # A client that gives up during these waits cancels this handler (handler_cancellation).
        if self.latency.get(key):
            await asyncio.sleep(self.latency[key])
        if delay is not None and not delay.accepted:
            await asyncio.sleep(delay.seconds)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            failures = self._failures.get(method.lower())
            if failures:
                failure = failures.popleft()
                raise ApiError(failure.status, failure.description, failure.retry_after)
            if method.lower() == "getupdates":
                result: Any = await self._get_updates(call)
            else:
                handler = self._methods.get(method.lower())
                if handler is None:
                    raise ApiError(404, "Not Found: method not found")
                result = handler(call)
        except ApiError as exc:
            call.status, call.result = exc.status, exc.description
            reply, status = exc.body(), exc.status
        else:
            call.status, call.result = 200, result
            reply, status = {"ok": True, "result": result}, 200
        self._notify_change()
        if delay is not None and delay.accepted:
            await asyncio.sleep(delay.seconds)  # done; only the answer is late (or never read)
        return web.json_response(reply, status=status)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        for stored in self._files.values():
            if stored.file_path == request.match_info["path"] and stored.content is not None:
                return web.Response(
                    body=stored.content,
                    content_type=stored.mime_type or "application/octet-stream",
                )
        return web.json_response(ApiError(404, "Not Found").body(), status=404)

    # -- updates ---------------------------------------------------------------------------

    async def _get_updates(self, call: Call) -> list[JSONDict]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        p = call.params
        offset = int(p.get("offset") or 0)
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        wait = float(p.get("timeout") or 0)
        if p.get("allowed_updates") is not None:
            self._allowed_updates = list(p["allowed_updates"]) or None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            self._confirm(offset)
            batch = self._deliverable()[:limit]
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            arrived = self._arrived
            try:
                async with asyncio.timeout(remaining):
                    await arrived.wait()
            except TimeoutError:
                pass

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable(self) -> list[JSONDict]:
        if self._allowed_updates is None:
            return list(self._updates)
        allowed = set(self._allowed_updates)
        # Types the bot opted out of are never delivered, so they are dropped for good.
        self._updates = [u for u in self._updates if _update_type(u) in allowed]
        return list(self._updates)

    def _set_webhook(self, call: Call) -> bool:
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        url = call.params.get("url") or ""
        self.webhook = dict(call.params) if url else None
        return True

    def _delete_webhook(self, call: Call) -> bool:
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        return True

    def _get_webhook_info(self, call: Call) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook.get("max_connections", 40)
            if self.webhook.get("allowed_updates") is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    # -- commands --------------------------------------------------------------------------

    def _set_my_commands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.match(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        self.commands_by_scope[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, call: Call) -> list[JSONDict]:
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        return list(self.commands_by_scope.get(key, []))

    def _delete_my_commands(self, call: Call) -> bool:
        key = _scope_key(call.params.get("scope"), call.params.get("language_code") or "")
        self.commands_by_scope.pop(key, None)
        return True

    # -- messages --------------------------------------------------------------------------

    def _chat(self, call: Call) -> FakeUser:
        chat_id = call.params.get("chat_id")
        user = self._users.get(chat_id) if isinstance(chat_id, int) else None
        if user is None:
            raise ApiError(400, CHAT_NOT_FOUND)
        if user.blocked:
            raise ApiError(403, BLOCKED)
        return user

    def _check_markup(self, markup: Any) -> JSONDict | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                url = button.get("url")
                problem = check_link(str(url)) if url is not None else None
                if problem is not None:
                    invalid = f"inline keyboard button URL '{url}' is invalid: {problem}"
                    raise ApiError(400, f"Bad Request: {invalid}")
        return markup

    def _caption(
        self, raw: Any, parse_mode: str | None, call: Call
    ) -> tuple[str | None, list[JSONDict] | None]:
        if not isinstance(raw, str) or not raw:
            return None, None
        caption, entities = _parsed(raw, parse_mode, call.params.get("caption_entities"))
        if len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        return caption, entities

    def _take_flood_token(self, user: FakeUser) -> None:
        """One new message into this chat, or 429 if the chat is over Telegram's flood limit."""
        flood = self.flood
        if flood is None:
            return
        tokens = self._refill(user, flood)
        if tokens < 1:
            wait = flood.retry_after(tokens)
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        user._flood_tokens = tokens - 1

    def _refill(self, user: FakeUser, flood: FloodControl, extra_seconds: float = 0.0) -> float:
        now = self.clock()
        idle = now - user._flood_at + extra_seconds if user._flood_tokens is not None else 0.0
        tokens = flood.burst if user._flood_tokens is None else user._flood_tokens
        user._flood_tokens = min(float(flood.burst), tokens + idle * flood.per_second)
        user._flood_at = now
        return user._flood_tokens

    def _person_acts(self, user: FakeUser) -> None:
        """A person reads and taps at human speed: that time refills their chat's bucket."""
        if self.flood is not None:
            self._refill(user, self.flood, self.flood.seconds_per_action)

    def _send_message(self, call: Call) -> JSONDict:
        user = self._chat(call)
        raw = call.params.get("text")
        parse_mode = call.params.get("parse_mode")
        text, entities = _parsed(raw if isinstance(raw, str) else "", parse_mode, None)
        entities = entities or call.params.get("entities")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        markup = self._check_markup(call.params.get("reply_markup"))
        self._take_flood_token(user)
        msg = SentMessage(
            chat_id=user.id,
            message_id=next(user._message_ids),
            kind="text",
            text=text,
            raw_text=raw,
            parse_mode=parse_mode,
            entities=entities,
            reply_markup=markup,
            date=int(time.time()),
        )
        user._sent.append(msg)
        self._log(user.id, f"bot → {_WHO} #{msg.message_id}: {_indent_text(text)}")
        for line in _keyboard_lines(msg.reply_markup):
            self._log(user.id, line)
        return msg.to_api(self.bot_user, user.api_chat)

    def _send_file(self, call: Call, kind: Literal["photo", "document"]) -> JSONDict:
        user = self._chat(call)
        stored = self._file_from(call, kind)
        raw = call.params.get("caption")
        parse_mode = call.params.get("parse_mode")
        caption, entities = self._caption(raw, parse_mode, call)
        markup = self._check_markup(call.params.get("reply_markup"))
        self._take_flood_token(user)
        msg = SentMessage(
            chat_id=user.id,
            message_id=next(user._message_ids),
            kind=kind,
            text=caption,
            raw_text=raw,
            parse_mode=parse_mode,
            entities=entities,
            reply_markup=markup,
            date=int(time.time()),
            file=stored,
        )
        user._sent.append(msg)
        if kind == "photo":
            what = f"[photo {stored.filename or stored.file_id} {stored.width}x{stored.height}]"
        else:
            what = f"[document {stored.filename}, {stored.mime_type}, {stored.size} bytes]"
        shown = f"{what} {_indent_text(caption)}" if caption else what
        self._log(user.id, f"bot → {_WHO} #{msg.message_id}: {shown}")
        for line in _keyboard_lines(msg.reply_markup):
            self._log(user.id, line)
        return msg.to_api(self.bot_user, user.api_chat)

    def _file_from(self, call: Call, kind: Literal["photo", "document"]) -> StoredFile:
        """The uploaded part, an `attach://` part, a known file_id, or an HTTP URL."""
        value = call.params.get(kind)
        upload = call.files.get(kind)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = call.files.get(value.removeprefix("attach://"))
        if upload is not None:
            return self._store(kind, upload.filename, upload.content_type, upload.content)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store(kind, value.rsplit("/", 1)[-1] or None, None, None)
        if value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise ApiError(400, f"Bad Request: there is no {kind} in the request")

    def _store(
        self, kind: str, filename: str | None, mime: str | None, content: bytes | None
    ) -> StoredFile:
        n = next(self._file_ids)
        suffix = filename.rsplit(".", 1)[-1] if filename and "." in filename else "bin"
        folder = "photos" if kind == "photo" else "documents"
        width, height = _image_size(content or b"") if kind == "photo" else (0, 0)
        stored = StoredFile(
            file_id=f"fake-{kind}-{n}",
            file_unique_id=f"u{n}",
            file_path=f"{folder}/file_{n}.{suffix}",
            filename=filename,
            mime_type=mime,
            content=content,
            width=width,
            height=height,
        )
        self._files[stored.file_id] = stored
        return stored

    def _get_file(self, call: Call) -> JSONDict:
        stored = self._files.get(str(call.params.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def _editable(self, call: Call) -> tuple[FakeUser, SentMessage]:
        if call.params.get("inline_message_id") is not None:
            raise ApiError(400, EDIT_NOT_FOUND)  # the fake has no inline mode
        user = self._chat(call)
        message_id = call.params.get("message_id")
        if message_id in user._incoming:
            raise ApiError(400, "Bad Request: message can't be edited")
        for msg in user._sent:
            if msg.message_id == message_id and not msg.deleted:
                return user, msg
        raise ApiError(400, EDIT_NOT_FOUND)

    def _apply_edit(
        self,
        user: FakeUser,
        msg: SentMessage,
        *,
        text: str | None,
        raw: str | None,
        parse_mode: str | None,
        entities: list[JSONDict] | None,
        markup: JSONDict | None,
    ) -> JSONDict:
        """Record a new version; an unchanged one is refused like the real API does."""
        before = (msg.raw_text, msg.parse_mode, msg.entities, msg.reply_markup)
        if before == (raw, parse_mode, entities, markup):
            raise ApiError(400, NOT_MODIFIED)
        msg.history.append(Revision(msg.text, msg.reply_markup, msg.edit_date))
        msg.text, msg.raw_text, msg.parse_mode = text, raw, parse_mode
        msg.entities, msg.reply_markup = entities, markup
        msg.edit_date = int(time.time())
        return msg.to_api(self.bot_user, user.api_chat)

    def _edit_message_text(self, call: Call) -> JSONDict:
        user, msg = self._editable(call)
        if msg.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        raw = call.params.get("text")
        parse_mode = call.params.get("parse_mode")
        text, entities = _parsed(raw if isinstance(raw, str) else "", parse_mode, None)
        entities = entities or call.params.get("entities")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        # No reply_markup in an edit removes the inline keyboard, as in the real API.
        markup = self._check_markup(call.params.get("reply_markup"))
        result = self._apply_edit(
            user,
            msg,
            text=text,
            raw=raw,
            parse_mode=parse_mode,
            entities=entities,
            markup=markup,
        )
        self._log(user.id, f"bot edited #{msg.message_id} for {_WHO}: {_indent_text(text)}")
        for line in _keyboard_lines(markup):
            self._log(user.id, line)
        return result

    def _edit_message_caption(self, call: Call) -> JSONDict:
        user, msg = self._editable(call)
        if msg.kind == "text":
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        raw = call.params.get("caption")
        parse_mode = call.params.get("parse_mode")
        caption, entities = self._caption(raw, parse_mode, call)
        markup = self._check_markup(call.params.get("reply_markup"))
        result = self._apply_edit(
            user,
            msg,
            text=caption,
            raw=raw,
            parse_mode=parse_mode,
            entities=entities,
            markup=markup,
        )
        shown = _indent_text(caption) if caption else "(no caption)"
        self._log(user.id, f"bot edited caption of #{msg.message_id} for {_WHO}: {shown}")
        for line in _keyboard_lines(markup):
            self._log(user.id, line)
        return result

    def _edit_message_reply_markup(self, call: Call) -> JSONDict:
        user, msg = self._editable(call)
        markup = self._check_markup(call.params.get("reply_markup"))
        result = self._apply_edit(
            user,
            msg,
            text=msg.text,
            raw=msg.raw_text,
            parse_mode=msg.parse_mode,
            entities=msg.entities,
            markup=markup,
        )
        lines = _keyboard_lines(markup) or ["    (no buttons)"]
        self._log(user.id, f"bot edited buttons of #{msg.message_id} for {_WHO}:")
        for line in lines:
            self._log(user.id, line)
        return result

    def _delete_message(self, call: Call) -> bool:
        user = self._chat(call)
        message_id = call.params.get("message_id")
        incoming = user._incoming.get(message_id) if isinstance(message_id, int) else None
        if incoming is not None and not incoming.deleted:
            incoming.deleted = True
            self._log(user.id, f"bot deleted {_WHO}'s message #{message_id}")
            return True
        for msg in user._sent:
            if msg.message_id == message_id and not msg.deleted:
                msg.deleted = True
                self._log(user.id, f"bot deleted #{message_id} for {_WHO}")
                return True
        raise ApiError(400, DELETE_NOT_FOUND)

    def _answer_callback_query(self, call: Call) -> bool:
        query = self._queries.get(str(call.params.get("callback_query_id")))
        if query is None or query.answered:
            raise ApiError(400, QUERY_TOO_OLD)
        if len(str(call.params.get("text") or "")) > CALLBACK_ANSWER_MAX:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")  # and the press stays unanswered
        query.answered = True
        query.answer = dict(call.params)
        text = call.params.get("text")
        if call.params.get("show_alert"):
            line = f"bot alerted {_WHO}: {text!r}"
        elif text:
            line = f"bot answered {_WHO}'s press: {text!r}"
        else:
            line = f"bot answered {_WHO}'s press silently"
        if call.params.get("url"):
            line += f" → {call.params['url']}"
        self._log(query.chat_id, line)
        return True

    def _send_chat_action(self, call: Call) -> bool:
        self._chat(call)
        return True


def _update_type(update: JSONDict) -> str:
    return next(k for k in update if k != "update_id")


def _scope_key(scope: Any, language_code: str) -> tuple[str, str]:
    if not scope or scope == {"type": "default"}:
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True), language_code


def _default_description(status: int, retry_after: int | None) -> str:
    known = {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: BLOCKED,
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request",
        429: f"Too Many Requests: retry after {retry_after}",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
    if status in known:
        return known[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"
