"""E-mail senders: e-mail is a channel too, so its providers live beside the chat adapters.

`ResendSender` (production) runs the official Resend SDK; `OutboxFolderSender` writes `.eml`
files when no API key is configured. Both implement the engine's `EmailSender` and take an
idempotency key, so a retried job never mails anyone twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import tempfile
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import resend
from resend.exceptions import NoContentError, ResendError
from resend.http_client_async import AsyncHTTPClient

from bots.email.settings import EmailSettings
from engine.followup.notify import EmailContent, EmailError, EmailSender, one_line

__all__ = ["OutboxFolderSender", "ResendSender", "email_sender"]

RESEND_DEFAULT_URL = "https://api.resend.com"
# Resend accepts idempotency keys of 1-256 characters and keeps them for 24 hours.
_MAX_KEY_CHARS = 256
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
# 409 with this type: the same key is still being processed; retrying later is safe.
_RETRYABLE_CONFLICT = "concurrent_idempotent_requests"
# The SDK reports a missing httpx as a 500; it is configuration, and no retry will fix it.
_NO_ASYNC_CLIENT = "AsyncClientNotConfigured"


def email_sender(settings: EmailSettings, from_address: str) -> EmailSender:
    """Resend when there is an API key; otherwise .eml files in EMAIL_OUTBOX_DIR (local)."""
    if settings.resend_api_key:
        return ResendSender(settings.resend_api_key, from_address, settings.resend_api_url)
    return OutboxFolderSender(Path(settings.email_outbox_dir), from_address)


def _check_key(key: str) -> str:
    """Resend's limits (1-256 chars); control characters would also break .eml headers."""
    if not 1 <= len(key) <= _MAX_KEY_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError("idempotency_key must be 1-256 printable characters")
    return key


def _retry_after(headers: dict[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None  # an HTTP date; the caller's own backoff applies
    return None


def _status(code: object) -> int | None:
    try:
        return int(str(code))
    except ValueError:
        return None


def _classify(error: ResendError) -> EmailError:
    """429, 5xx and network failures may pass; other 4xx will fail the same way again.

    The SDK reports network errors as code 500 with type "HttpClientError", so they land with
    the 5xx. A 409 is retryable only while the first request with that key is still running.
    """
    status = _status(error.code)
    error_type = str(error.error_type)
    if error_type == _NO_ASYNC_CLIENT:
        retryable = False
    elif status is None:
        retryable = True
    elif status == 409:
        retryable = error_type == _RETRYABLE_CONFLICT
    else:
        retryable = status == 429 or status >= 500
    return EmailError(
        f"Resend {status or error.code} {error_type}: {error.message}",
        retryable=retryable,
        status=status,
        error_type=error_type,
        retry_after=_retry_after(error.headers),
    )


class ResendSender:
    """Sends through the official Resend SDK (`send_async`, which needs httpx).

    The SDK keeps its key and base URL in module globals; they are set right before each call,
    and the SDK reads both before its first await, so senders with different settings can share
    one event loop.
    """

    def __init__(self, api_key: str, from_address: str, api_url: str | None = None) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if not from_address or "@" not in from_address:
            raise ValueError(f"not a sender address: {from_address!r}")
        if resend.default_async_http_client is None and not isinstance(
            resend.default_http_client, AsyncHTTPClient
        ):
            # Fail at start-up, not on the first booking: send_async needs httpx.
            raise RuntimeError("resend.Emails.send_async needs httpx: install resend[async]")
        self._api_key = api_key
        self._from = from_address
        # The URL comes from EmailSettings (RESEND_API_URL), never from os.environ directly.
        self._api_url = (api_url or RESEND_DEFAULT_URL).rstrip("/")
        if api_url:
            resend.api_url = self._api_url

    def _params(self, email: EmailContent) -> resend.Emails.SendParams:
        params: resend.Emails.SendParams = {
            "from": self._from,
            # The bare address: a user-chosen display name cannot break the recipient list.
            "to": [email.to_email],
            "subject": email.subject,
            "html": email.html,
            "text": email.text,
        }
        if email.ics is not None:
            params["attachments"] = [
                {
                    "filename": email.ics_filename,
                    "content": base64.b64encode(email.ics).decode("ascii"),
                    "content_type": f"text/calendar; method={email.ics_method}",
                }
            ]
        return params

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        """POST /emails with an Idempotency-Key; return Resend's e-mail id."""
        options: resend.Emails.SendOptions = {"idempotency_key": _check_key(idempotency_key)}
        params = self._params(email)
        resend.api_key = self._api_key
        resend.api_url = self._api_url
        try:
            response = await resend.Emails.send_async(params, options)
        except ResendError as error:
            raise _classify(error) from error
        except NoContentError as error:
            raise EmailError("Resend returned an empty response", retryable=True) from error
        message_id = response.get("id") if isinstance(response, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise EmailError("Resend's response carries no e-mail id", retryable=True)
        return message_id


class OutboxFolderSender:
    """Writes each e-mail as an RFC 5322 .eml file: the local default without an API key.

    The file name derives from the idempotency key, so a retried job finds the file already
    there and writes nothing; files appear atomically, so a crash leaves no half e-mail.
    """

    def __init__(self, folder: Path, from_address: str) -> None:
        if not from_address or "@" not in from_address:
            raise ValueError(f"not a sender address: {from_address!r}")
        self._folder = Path(folder)
        self._from = from_address

    def path_for(self, idempotency_key: str) -> Path:
        """Readable prefix plus a hash: distinct keys ("a/b" and "a_b") never share a file."""
        key = _check_key(idempotency_key)
        readable = _UNSAFE_FILENAME.sub("_", key).strip("._")[:80] or "email"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return self._folder / f"{readable}-{digest}.eml"

    def build(self, email: EmailContent, *, idempotency_key: str) -> EmailMessage:
        """multipart/mixed: (text | html alternatives) plus the text/calendar attachment."""
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = Address(display_name=email.to_name, addr_spec=email.to_email)
        message["Subject"] = one_line(email.subject)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self._from.rsplit("@", 1)[-1].strip(" >"))
        message["X-Idempotency-Key"] = idempotency_key
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        if email.ics is not None:
            message.add_attachment(
                email.ics,
                maintype="text",
                subtype="calendar",
                filename=email.ics_filename,
                params={"method": email.ics_method},
            )
        return message

    def _deliver(self, path: Path, email: EmailContent, idempotency_key: str) -> Path:
        """Blocking file work, run in a thread so the event loop keeps serving chats."""
        if path.exists():
            return path
        data = self.build(email, idempotency_key=idempotency_key).as_bytes()
        self._folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)  # never replaces: a concurrent retry's file stays
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)
        return path

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        """Write the .eml unless this key was already written; return the file's path."""
        path = self.path_for(idempotency_key)
        return str(await asyncio.to_thread(self._deliver, path, email, idempotency_key))
