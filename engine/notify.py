"""E-mail about a booked or cancelled session: rendering, and two ways of sending it.

Rendering is pure: callers pass strings already formatted for the recipient (their zone and
locale), so a student and an ST never see each other's wall clock. Sending goes through
`EmailSender`: `ResendSender` for production, `OutboxFolderSender` (.eml files) when no API key
is configured. Both take an idempotency key, so a retried job never mails anyone twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import resend
from icalendar import Calendar
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from resend.exceptions import NoContentError, ResendError
from resend.http_client_async import AsyncHTTPClient

from engine import messages as m
from engine.addresses import check_address

__all__ = [
    "TEMPLATES_DIR",
    "EmailContent",
    "EmailError",
    "EmailSender",
    "OutboxFolderSender",
    "ResendSender",
    "Role",
    "render_cancellation",
    "render_confirmation",
    "render_reminder",
]

TEMPLATES_DIR = Path(__file__).parent.parent / "templates"
RESEND_DEFAULT_URL = "https://api.resend.com"
CANCELLED_TITLE = "Session cancelled"
REMINDER_TITLE = "Session reminder"
# Resend accepts idempotency keys of 1-256 characters and keeps them for 24 hours.
_MAX_KEY_CHARS = 256
# Line breaks and tabs only: babel puts no-break spaces (U+202F before "AM") in times, and the
# subject must show `when` exactly as formatted for the recipient.
_BREAKS = re.compile(r"[ \t\r\n\v\f\x1c-\x1f\x85\u2028\u2029]+")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_SUBJECT_CHARS = 200
# 409 with this type: the same key is still being processed; retrying later is safe.
_RETRYABLE_CONFLICT = "concurrent_idempotent_requests"
# The SDK reports a missing httpx as a 500; it is configuration, and no retry will fix it.
_NO_ASYNC_CLIENT = "AsyncClientNotConfigured"


@dataclass(frozen=True)
class EmailContent:
    """One e-mail, everything already formatted for its recipient, ready for any sender."""

    to_email: str
    to_name: str
    subject: str
    html: str
    text: str
    ics: bytes | None
    ics_method: Literal["REQUEST", "CANCEL"] = "REQUEST"
    ics_filename: str = "session.ics"


class EmailError(Exception):
    """Sending failed; `retryable` tells a job queue whether trying again can help.

    Retrying with the same idempotency key is always safe: the provider de-duplicates.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.error_type = error_type
        self.retry_after = retry_after


class EmailSender(Protocol):
    """Anything that can deliver an `EmailContent` exactly once per idempotency key."""

    async def send(self, email: EmailContent, *, idempotency_key: str) -> str:
        """Deliver `email`; return the provider's message id; raise `EmailError`."""
        ...


# ---------------------------------------------------------------------------------------------
# Rendering


def _nl2br(value: object) -> Markup:
    """Keep the line breaks of user text in HTML, after escaping it (never trust the note)."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """One cached environment: HTML autoescaped (names and notes are user input), text not.

    StrictUndefined makes a missing variable an error instead of a silently empty field.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2", "htm", "xml"),
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = _nl2br
    return env


def _render(name: str, context: dict[str, Any]) -> tuple[str, str]:
    env = _environment()
    html = env.get_template(f"email/{name}.html.j2").render(context)
    text = env.get_template(f"email/{name}.txt.j2").render(context)
    return html, text


def _one_line(value: str) -> str:
    """Header-safe text: user input must not smuggle line breaks into Subject or To."""
    return _BREAKS.sub(" ", value).strip(" ")


def _subject(value: str) -> str:
    line = _one_line(value)
    return line if len(line) <= _MAX_SUBJECT_CHARS else line[: _MAX_SUBJECT_CHARS - 1] + "…"


def _check_url(url: str, what: str) -> str:
    """Only web links belong in buttons; a `javascript:` or empty href would be a trap."""
    if not url.startswith(("https://", "http://")) or any(c in url for c in " \t\r\n"):
        raise ValueError(f"{what} must be an http(s) URL, got {url!r}")
    return url


def _check_ics(data: bytes, method: Literal["REQUEST", "CANCEL"]) -> bytes:
    """Refuse an .ics whose METHOD contradicts the e-mail: a cancellation sent as REQUEST
    re-adds the session to calendars instead of removing it (Cal.com #29706)."""
    found = str(Calendar.from_ical(data).get("METHOD", "")).upper()
    if found != method:
        raise ValueError(f"the .ics has METHOD {found or 'none'!r}, this e-mail needs {method}")
    return data


Role = Literal["student", "teacher"]
"""Whose copy an e-mail is: each person's is written for them (greeting, "with <other>")."""


def _other_label(role: Role) -> str:
    """What the other person is to the reader, for the "with" row."""
    return "Student-Teacher" if role == "student" else "Student"


def _links(**urls: str) -> dict[str, str]:
    return {name: _check_url(url, name) for name, url in urls.items()}


def render_confirmation(
    *,
    role: Role,
    recipient_name: str,
    recipient_email: str,
    other_name: str,
    course: str,
    when: str,
    minutes: int,
    note: str | None,
    reminders: bool,
    google_url: str,
    outlook_url: str,
    office365_url: str,
    manage_url: str,
    dashboard_url: str,
    ics: bytes,
) -> EmailContent:
    """The "Session Booked!" e-mail, the student's or the ST's copy (`role`), each with the
    same invite; `when` is already in the recipient's zone and locale.

    Rendering is deterministic for the same input, which matters: Resend answers a retry whose
    payload differs from the first attempt under the same idempotency key with a 409.
    """
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    context: dict[str, Any] = {
        "title": m.SUCCESS_TITLE,
        "back_to_dashboard": m.BACK_TO_DASHBOARD,
        "role": role,
        "recipient_name": recipient_name,
        "other_name": other_name,
        "other_label": _other_label(role),
        "course": course,
        "when": when,
        "minutes": minutes,
        "note": note.strip() if note and note.strip() else None,
        "reminders": reminders,
        **_links(
            google_url=google_url,
            outlook_url=outlook_url,
            office365_url=office365_url,
            manage_url=manage_url,
            dashboard_url=dashboard_url,
        ),
    }
    html, text = _render("confirmation", context)
    return EmailContent(
        to_email=check_address(recipient_email),
        to_name=_one_line(recipient_name),
        subject=_subject(f"{m.SUCCESS_TITLE} {course} with {other_name}, {when}"),
        html=html,
        text=text,
        ics=_check_ics(ics, "REQUEST"),
        ics_method="REQUEST",
        ics_filename="session.ics",
    )


def render_cancellation(
    *,
    role: Role,
    recipient_name: str,
    recipient_email: str,
    other_name: str,
    cancelled_by_recipient: bool,
    course: str,
    when: str,
    ics: bytes,
    moved: bool = False,
    cancelled_by_name: str | None = None,
    reason: str | None = None,
) -> EmailContent:
    """The "Session cancelled" e-mail for one of the two people: it names the other person and
    who cancelled ("you", or `cancelled_by_name`: the other person unless someone else, such as
    a coordinator, cancelled) and the reason when one was given; only the student's copy
    suggests booking again. `ics` must be the METHOD:CANCEL file for the session."""
    context: dict[str, Any] = {
        "title": CANCELLED_TITLE,
        "role": role,
        "recipient_name": recipient_name,
        "other_name": other_name,
        "other_label": _other_label(role),
        "by_you": cancelled_by_recipient,
        "canceller": cancelled_by_name or other_name,
        "reason": reason.strip() if reason and reason.strip() else None,
        "moved": moved,  # released by a reschedule: no "want another time?"
        "course": course,
        "when": when,
    }
    html, text = _render("cancellation", context)
    return EmailContent(
        to_email=check_address(recipient_email),
        to_name=_one_line(recipient_name),
        subject=_subject(f"{CANCELLED_TITLE}: {course} with {other_name}, {when}"),
        html=html,
        text=text,
        ics=_check_ics(ics, "CANCEL"),
        ics_method="CANCEL",
        ics_filename="cancellation.ics",
    )


def render_reminder(
    *,
    recipient_name: str,
    recipient_email: str,
    course: str,
    teacher: str,
    when: str,
    left: str,
    cutoff_hours: float,
    manage_url: str,
) -> EmailContent:
    """The student's reminder e-mail that goes with the chat reminder (`left`: "in 1 day",
    localised); "Manage in Telegram" opens /mysessions to reschedule or cancel."""
    context: dict[str, Any] = {
        "title": REMINDER_TITLE,
        "recipient_name": recipient_name,
        "course": course,
        "teacher": teacher,
        "when": when,
        "left": left,
        "cutoff_hours": f"{cutoff_hours:g}",
        **_links(manage_url=manage_url),
    }
    html, text = _render("reminder", context)
    return EmailContent(
        to_email=check_address(recipient_email),
        to_name=_one_line(recipient_name),
        subject=_subject(f"{REMINDER_TITLE}: {course} with {teacher} {left}"),
        html=html,
        text=text,
        ics=None,
    )


# ---------------------------------------------------------------------------------------------
# Sending


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
        base = api_url or os.environ.get("RESEND_API_URL") or RESEND_DEFAULT_URL
        self._api_url = base.rstrip("/")
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
        message["Subject"] = _one_line(email.subject)
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
