"""Booking e-mails: templates, the real Resend SDK against a local fake API, the .eml outbox.

No mocks: `ResendSender` runs the installed `resend` SDK (httpx underneath) against
`tests.fake_resend.FakeResend` on 127.0.0.1, so request shape, headers and error mapping are the
SDK's own. api.resend.com is never contacted.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import icalendar
import pytest
import resend
from babel.dates import format_time
from markupsafe import escape

from bots.email.senders import OutboxFolderSender, ResendSender
from engine.chat.formatting import format_datetime_long
from engine.followup.calendar import CalendarEvent, google_calendar_url, ics, outlook_calendar_url
from engine.followup.notify import (
    EmailContent,
    EmailError,
    EmailSender,
    render_cancellation,
    render_confirmation,
    render_reminder,
)
from tests.fake_resend import FakeResend

FROM = "Bookbot <sessions@bookbot.example>"
STAMP = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
START = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)  # New York is on EDT since March 9
DASHBOARD = "https://tutoring.example.edu/dashboard?tab=sessions&from=email"
EVIL_NAME = 'Zoë <script>alert("x")</script> & Co'
EVIL_NOTE = 'Chapter 3 <b>limits</b> & "series"\nsecond line <img src=x onerror=alert(1)>'


def session(**changes: Any) -> CalendarEvent:
    base = CalendarEvent(
        uid="session-42@bookbot",
        start=START,
        end=START + timedelta(minutes=60),
        summary="Calculus I tutoring with Ada Lovelace",
        description="Bring your questions.",
        location=None,
        organizer_email="sessions@bookbot.example",
        organizer_name="Bookbot",
        attendees=(("student@example.edu", "Zoë O'Brien"), ("ada@example.edu", "Ada Lovelace")),
        alarm_minutes=(60,),
    )
    return replace(base, **changes)


def request_ics() -> bytes:
    return ics(session(), method="REQUEST", stamp=STAMP)


def cancel_ics() -> bytes:
    return ics(session(sequence=1), method="CANCEL", stamp=STAMP)


MANAGE = "https://t.me/tutoring_booking_bot?start=Av__________aVmtgPflYhj86N_g6vczJm6kWMA"
JOIN = "https://bot.tutoring.example.edu/join/A" + "x" * 49  # engine/followup/join.py's shape


def confirmation(**changes: Any) -> EmailContent:
    event = session()
    arguments: dict[str, Any] = {
        "role": "student",
        "recipient_name": "Zoë O'Brien",
        "recipient_email": "student@example.edu",
        "other_name": "Ada Lovelace",
        "course": "Calculus I",
        "when": format_datetime_long(START, "America/New_York", "en_US"),
        "minutes": 60,
        "note": "Chapter 3, limits please.",
        "reminders": True,
        "google_url": google_calendar_url(event),
        "outlook_url": outlook_calendar_url(event),
        "office365_url": outlook_calendar_url(event, office365=True),
        "manage_url": MANAGE,
        "dashboard_url": DASHBOARD,
        "join_url": JOIN,
        "ics": request_ics(),
    }
    arguments.update(changes)
    return render_confirmation(**arguments)


def teacher_confirmation(**changes: Any) -> EmailContent:
    """The ST's copy of the same booking."""
    arguments: dict[str, Any] = {
        "role": "teacher",
        "recipient_name": "Ada Lovelace",
        "recipient_email": "ada@example.edu",
        "other_name": "Zoë O'Brien",
        "when": format_datetime_long(START, "Europe/London", "en_GB"),
    }
    arguments.update(changes)
    return confirmation(**arguments)


def cancellation(**changes: Any) -> EmailContent:
    arguments: dict[str, Any] = {
        "role": "student",
        "recipient_name": "Zoë O'Brien",
        "recipient_email": "student@example.edu",
        "other_name": "Ada Lovelace",
        "cancelled_by_recipient": True,
        "course": "Calculus I",
        "when": format_datetime_long(START, "America/New_York", "en_US"),
        "ics": cancel_ics(),
    }
    arguments.update(changes)
    return render_cancellation(**arguments)


def reminder(**changes: Any) -> EmailContent:
    arguments: dict[str, Any] = {
        "recipient_name": "Zoë O'Brien",
        "recipient_email": "student@example.edu",
        "course": "Calculus I",
        "teacher": "Ada Lovelace",
        "when": format_datetime_long(START, "America/New_York", "en_US"),
        "left": "in 1 day",
        "cutoff_hours": 2,
        "manage_url": MANAGE,
        "join_url": JOIN,
    }
    arguments.update(changes)
    return render_reminder(**arguments)


class _Links(HTMLParser):
    """Collects hrefs as a mail client would read them (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs.extend(value or "" for name, value in attrs if name == "href")


def links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


@pytest.fixture(autouse=True)
def _keep_resend_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK's key and URL are module globals; no test may leak the fake's into another."""
    monkeypatch.setattr(resend, "api_url", resend.api_url)
    monkeypatch.setattr(resend, "api_key", resend.api_key)
    yield


@pytest.fixture
async def fake() -> AsyncIterator[FakeResend]:
    async with FakeResend() as server:
        yield server


@pytest.fixture
def sender(fake: FakeResend) -> ResendSender:
    result = ResendSender(fake.api_key, FROM, api_url=fake.url)
    assert resend.api_url == fake.url  # never api.resend.com
    return result


# --- Resend: request shape -------------------------------------------------------------------


async def test_request_shape_is_what_resend_expects(fake: FakeResend, sender: ResendSender) -> None:
    email = confirmation()
    message_id = await sender.send(email, idempotency_key="confirm/42")

    assert message_id == fake.ids[0]
    (request,) = fake.requests
    assert (request.method, request.path, request.status) == ("POST", "/emails", 200)
    assert request.header("Authorization") == f"Bearer {fake.api_key}"
    assert request.header("Idempotency-Key") == "confirm/42"
    assert (request.header("User-Agent") or "").startswith("resend-python:")
    body = request.body
    assert body["from"] == FROM
    assert body["to"] == ["student@example.edu"]
    assert body["subject"] == email.subject
    assert body["html"] == email.html
    assert body["text"] == email.text
    (attachment,) = body["attachments"]
    assert attachment["filename"] == "session.ics"
    assert attachment["content_type"] == "text/calendar; method=REQUEST"
    assert base64.b64decode(attachment["content"], validate=True) == request_ics()


async def test_email_without_ics_has_no_attachments(fake: FakeResend, sender: ResendSender) -> None:
    await sender.send(replace(confirmation(), ics=None), idempotency_key="no-ics")
    assert "attachments" not in fake.requests[0].body


def test_senders_satisfy_the_protocol(tmp_path: Path) -> None:
    senders: list[EmailSender] = [
        ResendSender("re_x", FROM, api_url="http://127.0.0.1:9"),
        OutboxFolderSender(tmp_path, FROM),
    ]
    assert len(senders) == 2


# --- Resend: idempotency and retries ---------------------------------------------------------


async def test_same_key_twice_sends_once(fake: FakeResend, sender: ResendSender) -> None:
    email = confirmation()
    first = await sender.send(email, idempotency_key="confirm/42")
    second = await sender.send(email, idempotency_key="confirm/42")
    assert first == second
    assert len(fake.emails) == 1
    assert len(fake.requests) == 2


async def test_retry_after_a_lost_response_never_sends_twice(
    fake: FakeResend, sender: ResendSender
) -> None:
    """Resend accepted the e-mail but the reply was a 500: the retry gets the same id back."""
    email = confirmation()
    fake.fail_next(1, 500, deliver=True)
    with pytest.raises(EmailError) as caught:
        await sender.send(email, idempotency_key="confirm/42")
    assert caught.value.retryable
    assert len(fake.emails) == 1

    message_id = await sender.send(email, idempotency_key="confirm/42")
    assert message_id == fake.ids[0]
    assert len(fake.emails) == 1
    assert [r.header("Idempotency-Key") for r in fake.requests] == ["confirm/42"] * 2


async def test_rerendering_is_byte_identical_so_retries_match(
    fake: FakeResend, sender: ResendSender
) -> None:
    """A retry re-renders; a different payload under the same key would get a 409."""
    assert confirmation() == confirmation()
    await sender.send(confirmation(), idempotency_key="k")
    await sender.send(confirmation(), idempotency_key="k")
    assert len(fake.emails) == 1


async def test_same_key_other_payload_is_a_permanent_409(
    fake: FakeResend, sender: ResendSender
) -> None:
    await sender.send(confirmation(), idempotency_key="k")
    with pytest.raises(EmailError) as caught:
        await sender.send(confirmation(note="changed"), idempotency_key="k")
    assert (caught.value.status, caught.value.error_type) == (409, "invalid_idempotent_request")
    assert not caught.value.retryable
    assert len(fake.emails) == 1


async def test_concurrent_same_key_409_is_retryable(fake: FakeResend, sender: ResendSender) -> None:
    fake.fail_next(1, 409, name="concurrent_idempotent_requests")
    with pytest.raises(EmailError) as caught:
        await sender.send(confirmation(), idempotency_key="k")
    assert caught.value.retryable


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_rate_limits_and_server_errors_are_retryable(
    fake: FakeResend, sender: ResendSender, status: int
) -> None:
    fake.fail_next(2, status)
    for _ in range(2):
        with pytest.raises(EmailError) as caught:
            await sender.send(confirmation(), idempotency_key="k")
        assert caught.value.retryable
        assert caught.value.status == status
    assert fake.emails == []
    assert await sender.send(confirmation(), idempotency_key="k") == fake.ids[0]
    assert len(fake.emails) == 1


async def test_429_reports_retry_after(fake: FakeResend, sender: ResendSender) -> None:
    fake.fail_next(1, 429, retry_after=7)
    with pytest.raises(EmailError) as caught:
        await sender.send(confirmation(), idempotency_key="k")
    assert caught.value.retryable
    assert caught.value.error_type == "rate_limit_exceeded"
    assert caught.value.retry_after == 7.0


async def test_422_is_not_retryable(fake: FakeResend, sender: ResendSender) -> None:
    fake.fail_next(1, 422)
    with pytest.raises(EmailError) as caught:
        await sender.send(confirmation(), idempotency_key="k")
    assert caught.value.retryable is False
    assert caught.value.status == 422


async def test_invalid_payload_is_a_permanent_422(fake: FakeResend, sender: ResendSender) -> None:
    with pytest.raises(EmailError) as caught:
        await sender.send(replace(confirmation(), to_email="nobody"), idempotency_key="k")
    assert (caught.value.status, caught.value.retryable) == (422, False)
    assert fake.emails == []


async def test_wrong_api_key_is_not_retryable(fake: FakeResend) -> None:
    sender = ResendSender("re_wrong", FROM, api_url=fake.url)
    with pytest.raises(EmailError) as caught:
        await sender.send(confirmation(), idempotency_key="k")
    assert (caught.value.status, caught.value.retryable) == (403, False)


async def test_unreachable_api_is_retryable() -> None:
    server = FakeResend()
    await server.start()
    url = server.url
    await server.stop()  # nothing listens on that port any more
    with pytest.raises(EmailError) as caught:
        await ResendSender("re_x", FROM, api_url=url).send(confirmation(), idempotency_key="k")
    assert caught.value.retryable
    assert caught.value.error_type == "HttpClientError"


async def test_senders_with_different_settings_share_one_loop(fake: FakeResend) -> None:
    """The SDK keeps key and URL in globals; each send must still reach its own API."""
    async with FakeResend(api_key="re_other") as other:
        one = ResendSender(fake.api_key, FROM, api_url=fake.url)
        two = ResendSender(other.api_key, FROM, api_url=other.url)
        sends = [
            sender.send(confirmation(), idempotency_key=f"k{i}")
            for i in range(5)
            for sender in (one, two)
        ]
        await asyncio.gather(*sends)
    assert len(fake.emails) == len(other.emails) == 5
    assert {r.status for r in fake.requests + other.requests} == {200}


def test_missing_async_client_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without httpx (resend[async]) the SDK has no async client; say so before any booking."""
    monkeypatch.setattr(resend, "default_async_http_client", None)
    with pytest.raises(RuntimeError, match=r"resend\[async\]"):
        ResendSender("re_x", FROM, api_url="http://127.0.0.1:9")


@pytest.mark.parametrize("key", ["", "x" * 257, "bad\nkey"])
async def test_bad_idempotency_keys_are_refused_before_sending(
    fake: FakeResend, sender: ResendSender, key: str
) -> None:
    with pytest.raises(ValueError):
        await sender.send(confirmation(), idempotency_key=key)
    assert fake.requests == []


# --- Templates -------------------------------------------------------------------------------


def test_confirmation_content() -> None:
    email = confirmation()
    for body in (email.html, email.text):
        assert "Session Booked!" in body
        assert "Calculus I" in body
        assert "Ada Lovelace" in body
        assert "60 minutes" in body
        assert "Chapter 3, limits please." in body
        assert "The .ics file is attached (Apple Calendar and others)." in body
        assert "Back to Dashboard" in body
        assert "/mysessions" in body
    assert "Zoë O&#39;Brien" in email.html
    assert "Zoë O'Brien" in email.text
    assert email.to_name == "Zoë O'Brien"
    assert email.subject.startswith("Session Booked! Calculus I with Ada Lovelace")
    assert (email.ics_method, email.ics_filename) == ("REQUEST", "session.ics")


def test_html_is_mail_client_safe() -> None:
    email = confirmation()
    parsed = links(email.html)
    assert not {"script", "link", "style", "iframe", "form"} & parsed.tags
    assert 'role="presentation"' in email.html
    assert "max-width:600px" in email.html
    assert "class=" not in email.html  # inline styles only
    event = session()
    assert parsed.hrefs == [
        JOIN,
        google_calendar_url(event),
        outlook_calendar_url(event),
        outlook_calendar_url(event, office365=True),
        MANAGE,
        DASHBOARD,
    ]
    assert "&amp;" in email.html  # URLs' & escaped in attributes, decoded back by clients


def test_templates_escape_user_input() -> None:
    email = confirmation(recipient_name=EVIL_NAME, other_name=EVIL_NAME, note=EVIL_NOTE)
    assert "<script>" not in email.html
    assert "<img" not in email.html
    assert "<b>limits</b>" not in email.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in email.html
    assert "&lt;b&gt;limits&lt;/b&gt; &amp; &#34;series&#34;<br>\nsecond line" in email.html
    assert not {"script", "img", "b"} & links(email.html).tags
    # Text is not HTML: the user's words stay exactly as typed.
    assert EVIL_NAME in email.text
    assert EVIL_NOTE in email.text
    # Headers stay on one line whatever the name holds.
    assert "\n" not in confirmation(other_name="Ada\r\nBcc: x@evil.example").subject


def test_cancellation_escapes_user_input() -> None:
    email = cancellation(recipient_name=EVIL_NAME, course="<i>Calc</i>")
    assert "<script>" not in email.html and "<i>" not in email.html
    assert "&lt;i&gt;Calc&lt;/i&gt;" in email.html
    assert "<i>Calc</i>" in email.text


def test_reminders_and_missing_note() -> None:
    on = confirmation(reminders=True, note=None)
    off = confirmation(reminders=False, note="   ")
    assert "\nReminders:        on (we will remind you before the session)\n\nJoin" in on.text
    assert "\nReminders:        off\n\nJoin" in off.text
    with_note = confirmation(reminders=False, note="  line one\nline two  ")
    assert "\nReminders:        off\n\nYour note to Ada Lovelace:\nline one\nline two\n\n" in (
        with_note.text
    )
    assert "line one<br>\nline two</div>" in with_note.html
    for email in (on, off):
        assert "Your note to" not in email.html
        assert "Your note to" not in email.text


@pytest.mark.parametrize(
    ("zone", "locale", "expected"),
    [
        ("America/New_York", "en_US", "10:00\u202fAM EDT"),
        ("Europe/Berlin", "de_DE", "Montag, 10. März 2025, 15:00 CET"),
        # 14:00 UTC is 19:30 in Kolkata; CLDR releases disagree on "pm" vs "PM", so the
        # expected clock is the locale's own short time pattern, as babel has it.
        ("Asia/Kolkata", "en_IN", f"{format_time(time(19, 30), 'short', locale='en_IN')} IST"),
    ],
)
def test_times_appear_as_passed_in_the_recipients_zone(
    zone: str, locale: str, expected: str
) -> None:
    when = format_datetime_long(START, zone, locale)
    assert expected in when
    email = confirmation(when=when)
    assert when in email.html
    assert when in email.text
    assert when in email.subject
    # The stored UTC clock is only in the calendar links (which want UTC), never in the prose.
    assert "14:00" not in email.text.split("Add to Calendar")[0]


def test_bad_links_and_addresses_are_refused() -> None:
    with pytest.raises(ValueError):
        confirmation(dashboard_url="javascript:alert(1)")
    with pytest.raises(ValueError):
        confirmation(google_url="")
    with pytest.raises(ValueError):
        confirmation(recipient_email="a@b.example, c@d.example")
    with pytest.raises(ValueError):
        confirmation(minutes=0)


def test_ics_method_must_match_the_email() -> None:
    """A cancellation sent as REQUEST would put the session back into calendars."""
    with pytest.raises(ValueError, match="CANCEL"):
        cancellation(ics=request_ics())
    with pytest.raises(ValueError, match="REQUEST"):
        confirmation(ics=cancel_ics())


# --- Cancellation ----------------------------------------------------------------------------


async def test_cancellation_carries_method_cancel(fake: FakeResend, sender: ResendSender) -> None:
    email = cancellation()
    assert email.subject.startswith("Session cancelled: Calculus I with Ada Lovelace")
    assert "Session cancelled" in email.html and "Session cancelled" in email.text
    assert email.ics_method == "CANCEL"

    await sender.send(email, idempotency_key="cancel/42/1")
    (attachment,) = fake.requests[0].body["attachments"]
    assert attachment["content_type"] == "text/calendar; method=CANCEL"
    calendar = icalendar.Calendar.from_ical(base64.b64decode(attachment["content"]))
    assert str(calendar["METHOD"]) == "CANCEL"
    (event,) = calendar.events
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == "session-42@bookbot"
    assert int(event.decoded("SEQUENCE")) == 1


# --- Outbox folder (.eml) --------------------------------------------------------------------


def parse(path: Path) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def read(path: Path) -> bytes:
    return path.read_bytes()


def payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def calendar_part(message: EmailMessage) -> EmailMessage:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert isinstance(part, EmailMessage)
    return part


async def test_outbox_writes_one_parseable_file_per_key(tmp_path: Path) -> None:
    outbox = OutboxFolderSender(tmp_path / "outbox", FROM)
    email = confirmation()

    first = await outbox.send(email, idempotency_key="confirm/42")
    again = await outbox.send(email, idempotency_key="confirm/42")
    other = await outbox.send(email, idempotency_key="confirm_42")  # sanitises alike, differs
    assert first == again != other
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temporary files left behind
    assert Path(first) in files

    message = parse(Path(first))
    assert message.get_content_type() == "multipart/mixed"
    assert message["From"] == FROM
    assert message["To"].addresses[0].addr_spec == "student@example.edu"
    assert message["To"].addresses[0].display_name == "Zoë O'Brien"
    assert message["Subject"] == email.subject
    assert message["X-Idempotency-Key"] == "confirm/42"
    assert message["Message-ID"] and message["Date"]
    alternative = message.get_body(("related", "html", "plain"))
    assert alternative is not None
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == email.text
    assert html.get_content() == email.html
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "multipart/alternative",
        "text/calendar",
    ]

    part = calendar_part(message)
    assert part.get_filename() == "session.ics"
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_disposition() == "attachment"
    data = payload(part)
    assert data == request_ics()
    calendar = icalendar.Calendar.from_ical(data)
    assert str(calendar["METHOD"]) == "REQUEST"
    (event,) = calendar.events
    assert event.decoded("DTSTART") == START


async def test_outbox_never_rewrites_an_existing_key(tmp_path: Path) -> None:
    outbox = OutboxFolderSender(tmp_path, FROM)
    path = Path(await outbox.send(confirmation(), idempotency_key="k"))
    before = read(path)
    await outbox.send(confirmation(note="different"), idempotency_key="k")
    assert read(path) == before


async def test_outbox_cancellation_carries_method_cancel(tmp_path: Path) -> None:
    outbox = OutboxFolderSender(tmp_path, FROM)
    message = parse(Path(await outbox.send(cancellation(), idempotency_key="cancel/42/1")))
    part = calendar_part(message)
    assert part.get_param("method") == "CANCEL"
    assert part.get_filename() == "cancellation.ics"
    calendar = icalendar.Calendar.from_ical(payload(part))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(calendar.events[0]["STATUS"]) == "CANCELLED"


async def test_outbox_survives_hostile_names(tmp_path: Path) -> None:
    email = replace(confirmation(), to_name='Eve "x" <evil@example.org>, Bcc: a@b')
    message = parse(Path(await OutboxFolderSender(tmp_path, FROM).send(email, idempotency_key="k")))
    assert [a.addr_spec for a in message["To"].addresses] == ["student@example.edu"]
    assert message["Bcc"] is None


def test_the_reminder_email_escapes_names_and_says_when() -> None:
    from engine.followup.notify import render_reminder

    content = render_reminder(
        recipient_name="Sam <script>",
        recipient_email="sam@example.edu",
        course="Calculus I",
        teacher="Ada & Co",
        when="Friday, November 27, 2026, 10:00 AM UTC",
        left="in 1 day",
        cutoff_hours=2,
        manage_url=MANAGE,
        join_url=JOIN,
    )
    assert "<script>" not in content.html and "&lt;script&gt;" in content.html
    assert "Ada &amp; Co" in content.html
    assert "in 1 day" in content.text and "until 2 hours before the start" in content.text
    assert content.subject == "Session reminder: Calculus I with Ada & Co in 1 day"
    assert content.ics is None


# --- Each person's copy, links, phone layout --------------------------------------------------


_URL = re.compile(r"https?://[^\s<>\"']+")


def text_links(text: str) -> list[str]:
    return _URL.findall(text)


@pytest.mark.parametrize(
    "email",
    [
        confirmation(),
        confirmation(note=None, reminders=False),
        teacher_confirmation(),
        cancellation(),
        cancellation(role="teacher", cancelled_by_recipient=False),
        reminder(),
    ],
    ids=[
        "confirmation",
        "confirmation-plain",
        "st-confirmation",
        "cancel",
        "st-cancel",
        "reminder",
    ],
)
def test_the_text_part_has_every_link_of_the_html_and_no_other(email: EmailContent) -> None:
    hrefs = links(email.html).hrefs
    assert sorted(set(hrefs)) == sorted(set(text_links(email.text)))
    # The prose around the links says the same too.
    for phrase in ("Manage in Telegram", "Google Calendar", "Outlook.com", "Office 365"):
        assert (phrase in email.html) == (phrase in email.text)


def test_confirmations_and_reminders_offer_manage_in_telegram_and_office_365() -> None:
    event = session()
    office = outlook_calendar_url(event, office365=True)
    assert office.startswith("https://outlook.office.com/calendar/0/deeplink/compose?")
    for email in (confirmation(), teacher_confirmation()):
        hrefs = links(email.html).hrefs
        assert office in hrefs and outlook_calendar_url(event) in hrefs
        assert MANAGE in hrefs
        assert "Office 365" in email.html and "Outlook.com" in email.html
    assert links(reminder().html).hrefs == [JOIN, MANAGE]
    assert "Manage in Telegram" in reminder().html


def test_the_st_copy_of_the_confirmation_is_written_for_the_st() -> None:
    email = teacher_confirmation()
    assert email.to_email == "ada@example.edu" and email.to_name == "Ada Lovelace"
    assert email.subject.startswith("Session Booked! Calculus I with Zoë O'Brien, ")
    assert "Hi Ada Lovelace," in email.text
    assert "Zoë O'Brien booked a session with you." in email.text
    assert "\nStudent:          Zoë O'Brien\n" in email.text
    assert "Note from Zoë O'Brien:\nChapter 3, limits please." in email.text
    assert "Student-Teacher" not in email.text + email.html
    assert "Your note to" not in email.text + email.html
    assert "reschedule" not in email.text  # only the student reschedules
    assert "Zoë O&#39;Brien</strong> booked a session with you." in email.html
    # The student's copy, for contrast.
    student = confirmation()
    assert "Your session with Ada Lovelace is booked." in student.text
    assert "\nStudent-Teacher:  Ada Lovelace\n" in student.text


@pytest.mark.parametrize(
    ("role", "by_recipient", "other", "opening", "by"),
    [
        ("student", True, "Ada Lovelace", "You cancelled your session with Ada Lovelace.", "You"),
        ("student", False, "Ada Lovelace", "Ada Lovelace cancelled your session.", "Ada Lovelace"),
        ("teacher", False, "Zoë O'Brien", "Zoë O'Brien cancelled your session.", "Zoë O'Brien"),
        ("teacher", True, "Zoë O'Brien", "You cancelled your session with Zoë O'Brien.", "You"),
    ],
)
def test_each_cancellation_names_the_other_person_and_who_cancelled(
    role: str, by_recipient: bool, other: str, opening: str, by: str
) -> None:
    name, address = (
        ("Zoë O'Brien", "student@example.edu")
        if role == "student"
        else ("Ada Lovelace", "ada@example.edu")
    )
    email = cancellation(
        role=role,
        recipient_name=name,
        recipient_email=address,
        other_name=other,
        cancelled_by_recipient=by_recipient,
    )
    assert email.to_email == address
    assert f"Hi {name}," in email.text
    assert opening in email.text
    label = "Student-Teacher:" if role == "student" else "Student:        "
    assert f"\n{label}  {other}\n" in email.text
    assert f"\nCancelled by:     {by}\n" in email.text
    assert email.subject.startswith(f"Session cancelled: Calculus I with {other}, ")
    assert ("/book" in email.text) == (role == "student")  # rebook hint for the student only
    assert ("/book" in email.html) == (role == "student")
    assert str(escape(by)) in email.html


@pytest.mark.parametrize(
    ("role", "by_recipient", "opening"),
    [
        ("student", True, "You moved your session with Zoë O'Brien to a new time."),
        ("teacher", False, "Zoë O'Brien moved this session to another time"),
    ],
)
def test_a_time_released_by_a_reschedule_says_moved_not_cancelled(
    role: str, by_recipient: bool, opening: str
) -> None:
    email = cancellation(
        role=role,
        recipient_name="Ada Lovelace",
        recipient_email="ada@example.edu",
        other_name="Zoë O'Brien",
        cancelled_by_recipient=by_recipient,
        moved=True,
    )
    assert opening in email.text.replace("\n", " ")
    assert "cancelled your session" not in email.text
    assert "Want another time" not in email.text and "Want another time" not in email.html
    assert "METHOD:CANCEL" in (email.ics or b"").decode()


def test_detail_rows_stack_on_phones_instead_of_a_fixed_label_column() -> None:
    """No 160-px label cell: each row is two inline-block divs that wrap when narrow, with a
    table for Outlook on Windows in [if mso] comments."""
    for email in (confirmation(), teacher_confirmation(), cancellation(), reminder()):
        assert 'width="160"' not in email.html
        assert "max-width:150px" in email.html and "max-width:320px" in email.html
        assert "<!--[if mso]>" in email.html
        assert "word-break:break-word" not in email.html  # notes wrap at words, not mid-word
        assert 150 + 320 <= 600 - 2 * 32 - 2 - 2 * 16  # side by side in the 600-px layout


def test_each_confirmation_and_reminder_carries_the_readers_join_link() -> None:
    """The link goes first (it is what the reader needs on the day), as a button and as text,
    with when the room opens; the ST's copy carries the ST's own link."""
    st_join = JOIN.replace("Ax", "Bx")
    for email, join in (
        (confirmation(), JOIN),
        (teacher_confirmation(join_url=st_join), st_join),
        (reminder(), JOIN),
    ):
        assert links(email.html).hrefs[0] == join
        assert f"Join the session: {join}\n" in email.text
        assert ">Join the session</a>" in email.html
        for body in (email.html, email.text):
            assert "opens 10 minutes before the start" in body
    assert JOIN not in teacher_confirmation(join_url=st_join).html
    with pytest.raises(ValueError):
        confirmation(join_url="javascript:alert(1)")
    with pytest.raises(ValueError):
        reminder(join_url="")
