"""A fake Slack Web API server, so Slack tests drive the real slack_sdk / slack_bolt clients.

Mocking slack_sdk would test our guesses about slack_sdk; pointing a real
`AsyncWebClient(token=fake.token, base_url=fake.base_url)` at this server exercises its real
request encoding (query string, form or JSON body, `Authorization: Bearer`), its error mapping
(`SlackApiError` for `"ok": false`) and its retry handlers. Like bolt's own
`tests/mock_web_api_server` it answers `POST|GET /api/{method}` and records every call; unlike
it, it keeps state a test can look at: users, channels (a DM per user from
`conversations.open`), messages per channel with their `ts`, modal views with their `hash`, the
App Home view per user, and uploaded files shared into channels.

Slack's answers are reproduced for common bot bugs: `not_authed` without a token,
`invalid_auth` for a wrong one, `channel_not_found`, `no_text`, `message_not_found`,
`user_not_found`, `users_not_found`, `missing_scope` (email without `users:read.email`),
`invalid_trigger_id` / `exchanged_trigger_id` / `expired_trigger_id` (a trigger id lives about 3
seconds and is used once, bolt-python issues 772 and 886), `hash_conflict` for a `views.update`
or `views.publish` with a stale `hash`, `invalid_arguments` for an over-long modal title or too
many blocks. `fail_next` injects anything else, e.g. a 429 with `Retry-After` or a 500. Slow or
lost answers, per method, as in the fake Telegram: `delay_next` holds a reply past the client's
timeout, before the call takes effect or (`accepted=True`) after it; `slow_down` makes every call
of a method take longer; `on_next` runs a test's action when the next call of a method arrives.

`files_upload_v2` is three requests and all three land here: `files.getUploadURLExternal`
returns an `upload_url` on this server, the client POSTs the bytes to it (recorded as the method
`UPLOAD`), and `files.completeUploadExternal` shares the file into `channel_id` as a message.

Socket Mode: `apps.connections.open` takes the app-level token (`app_token`, xapp-…) and
returns a one-use `ws://` URL on this server; that WebSocket sends Slack's `hello`, then whatever
`push_envelope` delivers, and keeps what the client sends back (its acknowledgements).

Everything runs on one asyncio loop; no state change spans an `await`.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSONDict = dict[str, Any]

TOKEN = "xoxb-test-token"
TEAM_ID = "T0BOOKBOT"
TEAM_NAME = "Campus Tutoring"
BOT_USER_ID = "U0BOOKBOT"
BOT_ID = "B0BOOKBOT"
APP_ID = "A0BOOKBOT"
UPLOAD = "upload"  # the method name recorded for the POST of a file's bytes to its upload_url
APP_TOKEN = "xapp-1-A0BOOKBOT-1-test"  # app-level: apps.connections.open takes only this one
APP_LEVEL = frozenset({"apps.connections.open"})
# Calls a transcript leaves out: identity and plumbing, not what a person sees.
TRANSCRIPT_HIDES = frozenset(
    {"auth.test", "conversations.open", "users.info", "files.getUploadURLExternal", UPLOAD}
)
DEFAULT_SCOPES = frozenset(
    {"commands", "chat:write", "im:write", "users:read", "users:read.email", "files:write"}
)
TRIGGER_LIFETIME = 3.0  # seconds; Slack's documented lifetime of a trigger_id
MODAL_TITLE_MAX = 24
VIEW_BLOCKS_MAX = 100
HOME_BLOCKS_MAX = 100


class SlackError(Exception):
    """An `"ok": false` reply; raised by method handlers, turned into the JSON body."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> JSONDict:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class Call:
    """One HTTP request, recorded before it is answered (so failures show too)."""

    method: str
    params: JSONDict
    token: str | None
    status: int = 0  # HTTP status of the reply
    response: JSONDict | None = None  # the JSON body sent back
    at: float = field(default_factory=time.monotonic)  # when it arrived, for pacing checks

    @property
    def ok(self) -> bool:
        if self.response is None:  # the upload answers plain text
            return 200 <= self.status < 300
        return bool(self.response.get("ok"))


@dataclass
class SlackUser:
    """A workspace member as `users.info` describes them."""

    id: str
    name: str
    real_name: str
    tz: str
    tz_offset: int
    email: str | None
    email_verified: bool = True
    is_bot: bool = False
    deleted: bool = False

    def to_api(self, with_email: bool) -> JSONDict:
        profile: JSONDict = {
            "real_name": self.real_name,
            "display_name": self.name,
            "first_name": self.real_name.split(" ")[0],
        }
        if with_email and self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": self.tz_offset,
            "is_email_confirmed": self.email_verified,
            "profile": profile,
        }


@dataclass
class Message:
    """A message the bot posted (current state; `history` keeps the versions it replaced)."""

    channel: str
    ts: str
    text: str
    blocks: list[JSONDict]
    user: str = BOT_USER_ID
    thread_ts: str | None = None
    files: list[JSONDict] = field(default_factory=list)
    history: list[JSONDict] = field(default_factory=list)

    def to_api(self) -> JSONDict:
        msg: JSONDict = {
            "type": "message",
            "user": self.user,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": self.ts,
            "text": self.text,
        }
        if self.blocks:
            msg["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            msg["thread_ts"] = self.thread_ts
        if self.files:
            msg["files"] = copy.deepcopy(self.files)
        if self.history:
            msg["edited"] = {"user": BOT_USER_ID, "ts": self.ts}
        return msg


@dataclass
class Ephemeral:
    """A chat.postEphemeral message: only `user` sees it, and it cannot be fetched later."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[JSONDict]


@dataclass
class Channel:
    """A conversation: a DM (`D…`, `user` set) or a channel the bot is in (`C…`)."""

    id: str
    name: str | None
    user: str | None = None
    members: set[str] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    ephemerals: list[Ephemeral] = field(default_factory=list)

    def to_api(self) -> JSONDict:
        if self.user is not None:
            return {"id": self.id, "is_im": True, "user": self.user, "created": 0}
        return {"id": self.id, "name": self.name, "is_channel": True, "is_member": True}


@dataclass
class UploadedFile:
    """A file through its three steps: URL issued, bytes posted, completed (and shared)."""

    id: str
    filename: str
    length: int
    upload_url: str
    content: bytes | None = None
    title: str | None = None
    channels: list[str] = field(default_factory=list)
    completed: bool = False

    def to_api(self) -> JSONDict:
        return {
            "id": self.id,
            "name": self.filename,
            "title": self.title or self.filename,
            "size": len(self.content or b""),
            "user": BOT_USER_ID,
            "channels": list(self.channels),
            "url_private": f"https://files.example.invalid/{self.id}/{self.filename}",
        }


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None


@dataclass
class _Delay:
    seconds: float
    accepted: bool  # the call takes effect before the wait (only its answer is late)


Hook = Callable[[Call], Awaitable[None] | None]


class FakeSlack:
    """The server; use as `async with FakeSlack() as fake:`."""

    def __init__(self, token: str = TOKEN, scopes: frozenset[str] = DEFAULT_SCOPES) -> None:
        self.token = token
        self.scopes = set(scopes)
        self.calls: list[Call] = []
        self._notes: list[tuple[int, str]] = []  # (calls so far, what a person did)
        self.users: dict[str, SlackUser] = {}
        self.channels: dict[str, Channel] = {}
        self.views: dict[str, JSONDict] = {}  # modal views by view id, as Slack last returned
        self.home_views: dict[str, JSONDict] = {}  # App Home by user id
        self.files: dict[str, UploadedFile] = {}
        self.responses: dict[str, list[JSONDict]] = {}  # bodies posted to response_url keys
        self.clock: Callable[[], float] = time.time
        self._triggers: dict[str, float | None] = {}  # id -> issued at; None once exchanged
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._hooks: dict[str, deque[Hook]] = {}
        self.latency: dict[str, float] = {}  # method -> seconds each call waits first
        self._ids = itertools.count(1)
        self._ts_seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods: dict[str, Callable[[Call], JSONDict]] = {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }
        self.app_token = APP_TOKEN
        self.socket_received: list[JSONDict] = []  # what Socket Mode clients sent, in order
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()  # issued by apps.connections.open, each used once

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_get("/socket", self._socket)
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """For `AsyncWebClient(base_url=...)`, which joins method names onto it: ends in `/`."""
        return f"{self.origin}/api/"

    # -- test-facing API ---------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str = "sam",
        *,
        real_name: str | None = None,
        tz: str = "Europe/Berlin",
        tz_offset: int = 3600,
        email: str | None = None,
        email_verified: bool = True,
    ) -> SlackUser:
        """A workspace member; `tz_offset` is given, not computed, as Slack reports it."""
        user = SlackUser(
            id=user_id,
            name=name,
            real_name=real_name or name.title(),
            tz=tz,
            tz_offset=tz_offset,
            email=email if email is not None else f"{name}@campus.example",
            email_verified=email_verified,
        )
        self.users[user_id] = user
        return user

    def add_channel(self, name: str, members: list[str] | None = None) -> Channel:
        """A public channel the bot is a member of."""
        channel = Channel(id=f"C{next(self._ids):08d}", name=name, members=set(members or []))
        self.channels[channel.id] = channel
        return channel

    def dm(self, user_id: str) -> Channel:
        """The bot's DM with a user, opened on first use as `conversations.open` does."""
        for channel in self.channels.values():
            if channel.user == user_id:
                return channel
        channel = Channel(id=f"D{next(self._ids):08d}", name=None, user=user_id)
        channel.members = {user_id, BOT_USER_ID}
        self.channels[channel.id] = channel
        return channel

    def messages(self, channel_id: str) -> list[Message]:
        channel = self.channels.get(channel_id)
        return list(channel.messages) if channel else []

    def last_message(self, channel_id: str) -> Message:
        sent = self.messages(channel_id)
        if not sent:
            raise AssertionError(f"the bot posted nothing in {channel_id}")
        return sent[-1]

    def trigger_id(self) -> str:
        """A fresh trigger_id, as Slack puts in a slash command or an interaction."""
        value = f"{next(self._ids)}.{int(self.clock())}.{secrets.token_hex(16)}"
        self._triggers[value] = self.clock()
        return value

    def note(self, line: str) -> None:
        """What a person did (a command, a click), for the transcript."""
        self._notes.append((len(self.calls), line))

    def transcript(self, hide: frozenset[str] = TRANSCRIPT_HIDES) -> str:
        """What people did and what the app drew, in order, as text (ids and hashes left out)."""
        names = {u.id: u.real_name for u in self.users.values()}
        dms = {c.id: names.get(c.user or "", c.id) for c in self.channels.values() if c.user}
        lines: list[str] = []
        notes = list(self._notes)
        for index, call in enumerate([*self.calls, None]):
            while notes and notes[0][0] <= index:
                lines.append(notes.pop(0)[1])
            if call is None or call.method in hide:
                continue
            lines.extend(_describe(call, names, dms))
        return "\n".join(lines)

    def answer_with_view(self, view_id: str, view: JSONDict) -> JSONDict:
        """What Slack does with a `view_submission` answered `response_action: update`: the
        modal becomes `view`, with a new hash."""
        current = self.views.get(view_id)
        if current is None:
            raise AssertionError(f"no view {view_id}")
        updated = self._view(
            Call("views.update", {"view": view}, self.token), view_id=view_id, previous=current
        )
        self.views[view_id] = updated
        drawn = "\n".join(f"    {line}" for line in _drawn(updated["blocks"]) if line)
        self.note(f"app answers the submission: the modal becomes\n{drawn}")
        return copy.deepcopy(updated)

    def change_view_elsewhere(self, view_id: str) -> None:
        """Another click updated the modal first: its hash moves on, its blocks stay."""
        self.views[view_id]["hash"] = f"{int(self.clock())}.{secrets.token_hex(6)}"

    def response_url(self) -> str:
        """A response_url on this server; what the app posts to it lands in `responses`."""
        key = secrets.token_hex(8)
        self.responses[key] = []
        return f"{self.origin}/respond/{key}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_until(self, check: Callable[[], bool], seconds: float = 5.0) -> None:
        """Bolt acks first and runs the rest of a listener later: wait for its effect."""
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {seconds} s; calls: {self.method_log()}")
            await asyncio.sleep(0.01)

    def method_log(self) -> list[str]:
        """Method names and outcomes in order, for assertion messages."""
        return [
            f"{c.method}:{'ok' if c.ok else (c.response or {}).get('error', c.status)}"
            for c in self.calls
        ]

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = None,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail.

        A 429 carries `Retry-After` (1 s unless given) and `ratelimited`, as Slack sends it;
        `status=200` with an `error` is an `"ok": false` reply such as `channel_not_found`.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        if error is None:
            error = {429: "ratelimited", 200: "fatal_error"}.get(status, "internal_error")
        queue = self._failures.setdefault(method, deque())
        queue.extend(_Failure(error, status, retry_after) for _ in range(times))

    def delay_next(
        self, method: str, seconds: float, *, times: int = 1, accepted: bool = False
    ) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a client timeout).

        `accepted=False`: the wait comes first, and a call whose client gave up meanwhile never
        takes effect (its `status` stays 0). `accepted=True`: the call takes effect at once and
        only the answer is late, as when Slack posted a message but the reply was lost.
        """
        queue = self._delays.setdefault(method, deque())
        queue.extend(_Delay(seconds, accepted) for _ in range(times))

    def slow_down(self, method: str, seconds: float) -> None:
        """Every later call of `method` waits `seconds` before it takes effect (0: fast again)."""
        self.latency[method] = seconds

    def on_next(self, method: str, hook: Hook) -> None:
        """Run `hook(call)` (awaited if it returns an awaitable) when the next call of `method`
        arrives, before it is answered or takes effect."""
        self._hooks.setdefault(method, deque()).append(hook)

    async def _before(self, call: Call, request: web.Request) -> _Delay | None:
        """Hooks, latency and a delay before the call; the delay to apply after it, if any.

        Raises ConnectionResetError when the client gave up during the wait: the call is dropped.
        """
        hooks = self._hooks.get(call.method)
        if hooks:
            done = hooks.popleft()(call)
            if inspect.isawaitable(done):
                await done
        delays = self._delays.get(call.method)
        delay = delays.popleft() if delays else None
        wait = self.latency.get(call.method, 0.0)
        if delay is not None and not delay.accepted:
            wait += delay.seconds
        if wait:
            await asyncio.sleep(wait)
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError(f"the client gave up on {call.method}")
        return delay if delay is not None and delay.accepted else None

    # -- wire --------------------------------------------------------------------------------

    @staticmethod
    async def _read_params(request: web.Request) -> JSONDict:
        """Query string, form or JSON body: slack_sdk uses all three, depending on the method."""
        params: JSONDict = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.body_exists:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    @staticmethod
    def _token_of(request: web.Request, params: JSONDict) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ").strip() or None
        token = params.pop("token", None)
        return str(token) if token else None

    def _check_failure(self, method: str) -> None:
        failures = self._failures.get(method)
        if not failures:
            return
        failure = failures.popleft()
        error = SlackError(failure.error, failure.status)
        if failure.retry_after is not None:
            error.headers["Retry-After"] = str(failure.retry_after)
        raise error

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._read_params(request)
        token = self._token_of(request, params)
        call = Call(method, params, token)
        self.calls.append(call)
        late = await self._before(call, request)
        headers: dict[str, str] = {}
        try:
            if token is None:
                raise SlackError("not_authed")
            if token != (self.app_token if method in APP_LEVEL else self.token):
                raise SlackError("invalid_auth")
            self._check_failure(method)
            handler = self._methods.get(method)
            if handler is None:
                raise SlackError("unknown_method", req_method=method)
            reply: JSONDict = {"ok": True, **handler(call)}
            status = 200
            if method == "auth.test":
                headers["X-OAuth-Scopes"] = ",".join(sorted(self.scopes))
        except SlackError as exc:
            reply, status, headers = exc.body(), exc.status, exc.headers
        call.status, call.response = status, reply
        if late is not None:
            await asyncio.sleep(late.seconds)  # done; only the answer is late (or never read)
        return web.json_response(reply, status=status, headers=headers)

    async def _upload(self, request: web.Request) -> web.Response:
        """Step 2 of files_upload_v2; files.slack.com answers `text/plain` "OK - <size>"."""
        file_id = request.match_info["file_id"]
        content = await request.read()
        call = Call(UPLOAD, {"file_id": file_id, "size": len(content)}, None)
        self.calls.append(call)
        try:
            self._check_failure(UPLOAD)
        except SlackError as exc:
            call.status = exc.status
            return web.Response(status=exc.status, text=exc.error, headers=exc.headers)
        stored = self.files.get(file_id)
        if stored is None or stored.completed:
            call.status = 404
            return web.Response(status=404, text="file_not_found")
        stored.content = content
        call.status = 200
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")

    async def _respond(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self.responses:
            return web.Response(status=404, text="invalid_response_url")
        self.responses[key].append(await request.json())
        return web.Response(text="ok", content_type="text/plain")

    # -- helpers for method handlers ---------------------------------------------------------

    def _next_ts(self) -> str:
        """Unique, increasing `ts` strings shaped like Slack's ("1700000000.000100")."""
        return f"{int(self.clock())}.{next(self._ts_seq):06d}"

    def _user(self, user_id: Any) -> SlackUser:
        user = self.users.get(str(user_id or ""))
        if user is None:
            raise SlackError("user_not_found")
        return user

    def _channel(self, channel_id: Any) -> Channel:
        """A channel id, or a user id (Slack posts those into the bot's DM with the user)."""
        key = str(channel_id or "")
        if key in self.channels:
            return self.channels[key]
        if key in self.users:
            return self.dm(key)
        raise SlackError("channel_not_found")

    @staticmethod
    def _as_list(value: Any) -> list[JSONDict]:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list):
            raise SlackError("invalid_blocks_format")
        return value

    def _with_block_ids(self, blocks: list[JSONDict]) -> list[JSONDict]:
        """Slack gives every block without a `block_id` a random one; interactions carry it."""
        result = copy.deepcopy(blocks)
        for block in result:
            if not isinstance(block, dict) or "type" not in block:
                raise SlackError("invalid_blocks")
            block.setdefault("block_id", secrets.token_urlsafe(4))
        return result

    def _content(self, call: Call) -> tuple[str, list[JSONDict]]:
        text = str(call.params.get("text") or "")
        blocks = self._with_block_ids(self._as_list(call.params.get("blocks")))
        if not text and not blocks and not call.params.get("attachments"):
            raise SlackError("no_text")
        if len(blocks) > 50:
            raise SlackError("invalid_blocks", errors=["must be less than 51 items"])
        return text, blocks

    def _view(self, call: Call, *, view_id: str, previous: JSONDict | None) -> JSONDict:
        """A view as Slack returns it: the app's fields plus ids, a new hash and empty state."""
        raw = call.params.get("view")
        if isinstance(raw, str):
            raw = json.loads(raw)
        if not isinstance(raw, dict) or raw.get("type") not in {"modal", "home"}:
            raise SlackError("invalid_arguments", response_metadata={"messages": ["bad view"]})
        blocks = self._with_block_ids(self._as_list(raw.get("blocks")))
        problems = []
        if raw["type"] == "modal":
            title = (raw.get("title") or {}).get("text", "")
            if not title or len(title) > MODAL_TITLE_MAX:
                problems.append(
                    "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
                )
        if len(blocks) > VIEW_BLOCKS_MAX:
            problems.append("[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]")
        if problems:
            raise SlackError("invalid_arguments", response_metadata={"messages": problems})
        view: JSONDict = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": raw["type"],
            "title": raw.get("title"),
            "submit": raw.get("submit"),
            "close": raw.get("close"),
            "blocks": blocks,
            "private_metadata": raw.get("private_metadata", ""),
            "callback_id": raw.get("callback_id", ""),
            "external_id": raw.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{secrets.token_hex(6)}",
            "clear_on_close": bool(raw.get("clear_on_close", False)),
            "notify_on_close": bool(raw.get("notify_on_close", False)),
            "root_view_id": (previous or {}).get("root_view_id", view_id),
            "previous_view_id": None,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        }
        return view

    # -- methods -----------------------------------------------------------------------------

    def _auth_test(self, call: Call) -> JSONDict:
        return {
            "url": "https://campus-tutoring.slack.com/",
            "team": TEAM_NAME,
            "user": "bookbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _users_info(self, call: Call) -> JSONDict:
        user = self._user(call.params.get("user"))
        return {"user": user.to_api(with_email="users:read.email" in self.scopes)}

    def _users_lookup_by_email(self, call: Call) -> JSONDict:
        if "users:read.email" not in self.scopes:
            raise SlackError(
                "missing_scope", needed="users:read.email", provided=",".join(sorted(self.scopes))
            )
        email = str(call.params.get("email") or "").lower()
        for user in self.users.values():
            if user.email is not None and user.email.lower() == email and not user.deleted:
                return {"user": user.to_api(with_email=True)}
        raise SlackError("users_not_found")

    def _conversations_open(self, call: Call) -> JSONDict:
        if call.params.get("channel"):
            return {"channel": self._channel(call.params["channel"]).to_api()}
        users = [u for u in str(call.params.get("users") or "").split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("not_supported")  # group DMs: not modelled
        self._user(users[0])
        existed = any(c.user == users[0] for c in self.channels.values())
        channel = self.dm(users[0])
        reply: JSONDict = {"channel": {"id": channel.id}}
        if existed:
            reply["already_open"] = True
        if call.params.get("return_im") in {True, "true", "1"}:
            reply["channel"] = channel.to_api()
        return reply

    def _chat_post_message(self, call: Call) -> JSONDict:
        channel = self._channel(call.params.get("channel"))
        text, blocks = self._content(call)
        thread_ts = call.params.get("thread_ts") or None
        message = Message(channel.id, self._next_ts(), text, blocks, thread_ts=thread_ts)
        channel.messages.append(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api()}

    def _chat_post_ephemeral(self, call: Call) -> JSONDict:
        channel = self._channel(call.params.get("channel"))
        user = self._user(call.params.get("user"))
        if channel.user is None and user.id not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks = self._content(call)
        ephemeral = Ephemeral(channel.id, user.id, self._next_ts(), text, blocks)
        channel.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    def _chat_update(self, call: Call) -> JSONDict:
        channel = self._channel(call.params.get("channel"))
        ts = str(call.params.get("ts") or "")
        message = next((m for m in channel.messages if m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = self._content(call)
        message.history.append(message.to_api())
        message.text, message.blocks = text, blocks
        return {"channel": channel.id, "ts": ts, "text": text, "message": message.to_api()}

    def _take_trigger(self, call: Call) -> None:
        trigger = str(call.params.get("trigger_id") or call.params.get("interactivity_pointer"))
        if trigger not in self._triggers:
            raise SlackError("invalid_trigger_id")
        issued = self._triggers[trigger]
        if issued is None:
            raise SlackError("exchanged_trigger_id")
        if self.clock() - issued > TRIGGER_LIFETIME:
            raise SlackError("expired_trigger_id")
        self._triggers[trigger] = None

    def _views_open(self, call: Call) -> JSONDict:
        self._take_trigger(call)
        view = self._view(call, view_id=f"V{next(self._ids):08d}", previous=None)
        if view["type"] != "modal":
            raise SlackError("invalid_arguments")
        self.views[view["id"]] = view
        return {"view": copy.deepcopy(view)}

    def _views_update(self, call: Call) -> JSONDict:
        view_id = call.params.get("view_id")
        external_id = call.params.get("external_id")
        current = self.views.get(str(view_id)) if view_id else None
        if current is None and external_id:
            current = next(
                (v for v in self.views.values() if v["external_id"] == external_id), None
            )
        if current is None:
            raise SlackError("not_found")
        wanted_hash = call.params.get("hash")
        if wanted_hash and wanted_hash != current["hash"]:
            raise SlackError("hash_conflict")
        view = self._view(call, view_id=current["id"], previous=current)
        self.views[view["id"]] = view
        return {"view": copy.deepcopy(view)}

    def _views_publish(self, call: Call) -> JSONDict:
        user = self._user(call.params.get("user_id"))
        current = self.home_views.get(user.id)
        wanted_hash = call.params.get("hash")
        if current is not None and wanted_hash and wanted_hash != current["hash"]:
            raise SlackError("hash_conflict")
        view_id = current["id"] if current else f"V{next(self._ids):08d}"
        view = self._view(call, view_id=view_id, previous=current)
        if view["type"] != "home":
            raise SlackError("invalid_arguments")
        self.home_views[user.id] = view
        return {"view": copy.deepcopy(view)}

    def _files_get_upload_url(self, call: Call) -> JSONDict:
        filename = call.params.get("filename")
        try:
            length = int(call.params.get("length") or 0)
        except ValueError:
            length = 0
        if not filename or length <= 0:
            raise SlackError("invalid_arguments")
        file_id = f"F{next(self._ids):08d}"
        url = f"{self.origin}/upload/{file_id}"
        self.files[file_id] = UploadedFile(file_id, str(filename), length, url)
        return {"upload_url": url, "file_id": file_id}

    def _files_complete_upload(self, call: Call) -> JSONDict:
        items = self._as_list(call.params.get("files"))
        if not items:
            raise SlackError("invalid_arguments")
        channel = None
        if call.params.get("channel_id"):
            channel = self._channel(call.params["channel_id"])
        done: list[UploadedFile] = []
        for item in items:
            stored = self.files.get(str(item.get("id")))
            if stored is None or stored.content is None or stored.completed:
                raise SlackError("file_not_found")
            done.append(stored)
        for stored, item in zip(done, items, strict=True):
            stored.completed = True
            stored.title = item.get("title") or stored.filename
            if channel is not None:
                stored.channels.append(channel.id)
        if channel is not None:
            text = str(call.params.get("initial_comment") or "")
            message = Message(channel.id, self._next_ts(), text, [])
            message.files = [f.to_api() for f in done]
            channel.messages.append(message)
        return {"files": [{"id": f.id, "title": f.title} for f in done]}

    # -- Socket Mode -------------------------------------------------------------------------

    def _apps_connections_open(self, call: Call) -> JSONDict:
        """A one-use WebSocket URL, on this server instead of `wss://wss-….slack.com`."""
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self._port}/socket?ticket={ticket}"}

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """Socket Mode's WebSocket: Slack's `hello` first, then whatever `push_envelope` sends;
        every JSON text the client sends back (its acknowledgements) lands in
        `socket_received`."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        try:
            await socket.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
            async for message in socket:
                if message.type == web.WSMsgType.TEXT:
                    self.socket_received.append(json.loads(message.data))
        finally:
            self._sockets.remove(socket)
        return socket

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self._sockets):
            await socket.close()

    @property
    def socket_clients(self) -> int:
        """Socket Mode connections open now."""
        return len(self._sockets)

    async def push_envelope(
        self, kind: str, payload: JSONDict, *, accepts_response_payload: bool = False
    ) -> str:
        """Deliver `payload` as Slack does in Socket Mode (`kind`: `slash_commands`,
        `interactive`, `events_api`) down the newest connection; its `envelope_id`."""
        if not self._sockets:
            raise AssertionError("no Socket Mode client is connected")
        envelope_id = secrets.token_hex(16)
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
            }
        )
        return envelope_id

    def acknowledgements(self, envelope_id: str) -> list[JSONDict]:
        return [m for m in self.socket_received if m.get("envelope_id") == envelope_id]


def _text(element: JSONDict | None) -> str:
    return str((element or {}).get("text", ""))


def _drawn(blocks: list[JSONDict]) -> list[str]:
    """A view's or a message's blocks as a person reads them: text, [buttons], fields."""
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            out.extend(_text(block.get("text")).splitlines())
        elif kind == "context":
            out.extend(_text(e) for e in block.get("elements", []))
        elif kind == "input":
            element = block.get("element", {})
            out.append(f"{_text(block.get('label'))}: <{element.get('type')}>")
        elif kind == "actions":
            shown = []
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    shown.append(f"[{_text(element.get('text'))}]")
                elif element.get("type") == "checkboxes":
                    ticked = "x" if element.get("initial_options") else " "
                    shown.append(f"[{ticked}] {_text(element['options'][0].get('text'))}")
                elif element.get("type") == "datepicker":
                    shown.append(f"[📅 {element.get('initial_date', 'pick a day')}]")
            out.append(" ".join(shown))
        elif kind == "divider":
            out.append("---")
    return out


def _describe(call: Call, names: dict[str, str], dms: dict[str, str]) -> list[str]:
    """One call as transcript lines: what the app showed, to whom, and how Slack answered."""
    params = call.params
    error = "" if call.ok else f"  → {(call.response or {}).get('error', call.status)}"
    if call.method in {"views.open", "views.update", "views.publish"}:
        raw = params.get("view")
        view = json.loads(raw) if isinstance(raw, str) else raw or {}
        verb = {"views.open": "opens", "views.update": "updates", "views.publish": "publishes"}
        what = "App Home" if call.method == "views.publish" else "the modal"
        checked = " (with its hash)" if params.get("hash") else ""
        head = f"app {verb[call.method]} {what}{checked}{error}"
        blocks = view.get("blocks", [])
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return [head, *(f"    {line}" for line in _drawn(blocks) if line)]
    if call.method in {"chat.postMessage", "chat.update", "chat.postEphemeral"}:
        where = dms.get(str(params.get("channel")), str(params.get("channel")))
        raw_blocks = params.get("blocks") or []
        blocks = json.loads(raw_blocks) if isinstance(raw_blocks, str) else raw_blocks
        lines = _drawn(blocks) or str(params.get("text", "")).splitlines()
        verb = {"chat.postMessage": "→", "chat.update": "edits", "chat.postEphemeral": "(only you)"}
        return [f"app {verb[call.method]} {where}{error}", *(f"    {line}" for line in lines)]
    if call.method == "files.completeUploadExternal":
        where = dms.get(str(params.get("channel_id")), "")
        files = params.get("files")
        items = json.loads(files) if isinstance(files, str) else files or []
        titles = ", ".join(str(i.get("title", "")) for i in items)
        return [f"app uploads {titles} to {where}'s DM{error}"]
    return [f"app calls {call.method}{error}"]
