"""E-mail about a booked or cancelled session: rendering, and the interface for sending it.

Rendering is pure: callers pass strings already formatted for the recipient (their zone and
locale), so a student and an ST never see each other's wall clock. Sending goes through
`EmailSender`; the senders themselves (Resend, .eml files) live with the other channels in
`bots/email/`, so the engine imports no provider SDK. Each takes an idempotency key, so a
retried job never mails anyone twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from icalendar import Calendar
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from engine.addresses import check_address
from engine.chat import messages as m
from engine.followup.manage import ROOM_OPENS_BEFORE

__all__ = [
    "TEMPLATES_DIR",
    "EmailContent",
    "EmailError",
    "EmailSender",
    "Role",
    "one_line",
    "render_cancellation",
    "render_confirmation",
    "render_reminder",
    "template_environment",
]

TEMPLATES_DIR = Path(__file__).parents[2] / "templates"
CANCELLED_TITLE = "Session cancelled"
REMINDER_TITLE = "Session reminder"
# Line breaks and tabs only: babel puts no-break spaces (U+202F before "AM") in times, and the
# subject must show `when` exactly as formatted for the recipient.
_BREAKS = re.compile(r"[ \t\r\n\v\f\x1c-\x1f\x85\u2028\u2029]+")
_MAX_SUBJECT_CHARS = 200
_OPENS_BEFORE_MINUTES = int(ROOM_OPENS_BEFORE.total_seconds() // 60)


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
def template_environment() -> Environment:
    """One cached environment for every page we write (e-mails, the join link's pages): HTML
    autoescaped (names, notes and course titles are user input), text not.

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
    env = template_environment()
    html = env.get_template(f"email/{name}.html.j2").render(context)
    text = env.get_template(f"email/{name}.txt.j2").render(context)
    return html, text


def one_line(value: str) -> str:
    """Header-safe text: user input must not smuggle line breaks into Subject or To."""
    return _BREAKS.sub(" ", value).strip(" ")


def _subject(value: str) -> str:
    line = one_line(value)
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
    join_url: str,
    ics: bytes,
) -> EmailContent:
    """The "Session Booked!" e-mail, the student's or the ST's copy (`role`), each with the
    invite; `when` is already in the recipient's zone and locale, and `join_url` is the
    recipient's own join link (engine/followup/join.py), which their invite carries too.

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
            join_url=join_url,
        ),
        "opens_before_minutes": _OPENS_BEFORE_MINUTES,
    }
    html, text = _render("confirmation", context)
    return EmailContent(
        to_email=check_address(recipient_email),
        to_name=one_line(recipient_name),
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
        to_name=one_line(recipient_name),
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
    join_url: str,
) -> EmailContent:
    """The student's reminder e-mail that goes with the chat reminder (`left`: "in 1 day",
    localised); "Join the session" is their join link, "Manage in Telegram" opens /mysessions
    to reschedule or cancel."""
    context: dict[str, Any] = {
        "title": REMINDER_TITLE,
        "recipient_name": recipient_name,
        "course": course,
        "teacher": teacher,
        "when": when,
        "left": left,
        "cutoff_hours": f"{cutoff_hours:g}",
        **_links(manage_url=manage_url, join_url=join_url),
        "opens_before_minutes": _OPENS_BEFORE_MINUTES,
    }
    html, text = _render("reminder", context)
    return EmailContent(
        to_email=check_address(recipient_email),
        to_name=one_line(recipient_name),
        subject=_subject(f"{REMINDER_TITLE}: {course} with {teacher} {left}"),
        html=html,
        text=text,
        ics=None,
    )
