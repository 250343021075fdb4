"""A tiny stand-in for the Resend API on 127.0.0.1, so tests drive the real SDK over HTTP.

It behaves like Resend where the e-mail code depends on it: Bearer auth, POST /emails answering
{"id": ...}, errors shaped {"statusCode", "message", "name"}, and idempotency keys (1-256
chars; same key and payload: same id, no second e-mail; same key, other payload: 409
invalid_idempotent_request). Failures can be scripted, including the nasty one where the
e-mail is accepted but the response is lost.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

_ERROR_NAMES = {
    400: "validation_error",
    401: "missing_api_key",
    403: "invalid_api_key",
    409: "invalid_idempotent_request",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "application_error",
    502: "application_error",
    503: "application_error",
}


@dataclass
class Recorded:
    """One HTTP request as it arrived (every attempt, failed ones too)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _Failure:
    status: int
    name: str
    deliver: bool  # accept the e-mail, then answer with the error (response "lost")
    retry_after: int | None


@dataclass
class FakeResend:
    """Start with `async with FakeResend() as fake:`; point `resend.api_url` at `fake.url`."""

    api_key: str = "re_test_key"
    requests: list[Recorded] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)  # actually "sent"
    ids: list[str] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (digest, id)
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        name: str | None = None,
        deliver: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """The next `count` POST /emails answer `status`; with deliver=True the e-mail is
        still sent and its key remembered, as when Resend succeeds but the reply is lost."""
        failure = _Failure(
            status, name or _ERROR_NAMES.get(status, "application_error"), deliver, retry_after
        )
        self._failures.extend([failure] * count)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/emails", self._emails)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeResend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @staticmethod
    def _error(status: int, name: str, message: str, **headers: str) -> web.Response:
        body = {"statusCode": status, "message": message, "name": name}
        return web.json_response(body, status=status, headers=headers)

    def _accept(self, body: dict[str, Any], key: str | None, digest: str) -> str:
        email_id = str(uuid.uuid4())
        self.emails.append(body)
        self.ids.append(email_id)
        if key is not None:
            self._keys[key] = (digest, email_id)
        return email_id

    async def _emails(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = Recorded(request.method, request.path, dict(request.headers), body)
        self.requests.append(record)
        response = self._answer(request, body, raw)
        record.status = response.status
        return response

    def _answer(self, request: web.Request, body: Any, raw: bytes) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth == "Bearer None":
            return self._error(
                401, "missing_api_key", "Missing API key in the authorization header"
            )
        if auth != f"Bearer {self.api_key}":
            return self._error(403, "invalid_api_key", "API key is invalid")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 256:
            return self._error(400, "invalid_idempotency_key", "Key must be 1-256 characters")
        digest = hashlib.sha256(raw).hexdigest()
        if key is not None and key in self._keys:
            seen_digest, seen_id = self._keys[key]
            if seen_digest != digest:
                return self._error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload",
                )
            return web.json_response({"id": seen_id})
        if self._failures:
            failure = self._failures.pop(0)
            if failure.deliver and isinstance(body, dict):
                self._accept(body, key, digest)
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = str(failure.retry_after)
            return self._error(failure.status, failure.name, "scripted failure", **headers)
        problem = self._validate(body)
        if problem is not None:
            return self._error(422, "validation_error", problem)
        assert isinstance(body, dict)
        return web.json_response({"id": self._accept(body, key, digest)})

    @staticmethod
    def _validate(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Invalid JSON body"
        for name in ("from", "to", "subject"):
            if not body.get(name):
                return f"Missing `{name}` field."
        recipients = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if any(not isinstance(r, str) or "@" not in r for r in recipients):
            return "Invalid `to` field."
        if not (body.get("html") or body.get("text")):
            return "Missing `html` or `text` field."
        for attachment in body.get("attachments") or []:
            if not attachment.get("filename") or not attachment.get("content"):
                return "Attachments need `filename` and `content`."
        return None
