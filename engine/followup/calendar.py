"""Calendar invites (iCalendar / iTIP) and add-to-calendar links for a booked session.

A student or ST who books through a chat bot should find the session in the calendar they
already use: an `.ics` invite works with every mail client and calendar app, and the Google and
Outlook links cover people who never open attachments. Times are always written in UTC (`Z`), so
no VTIMEZONE is needed and every client shows the session at the right local time, across DST.

Roles (RFC 5546): the tutoring service (`EMAIL_FROM`) is the ORGANIZER, since it sends every
REQUEST and CANCEL; the student and the ST are both ATTENDEEs, REQ-PARTICIPANT. The booking is
final when it is made (the student picked a time from the ST's published hours), so both are
PARTSTAT=ACCEPTED with RSVP=FALSE: no calendar app asks anyone to answer an address that reads
no replies, and changes go through the chat instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Literal
from urllib.parse import quote, urlencode

from icalendar import CUTYPE, PARTSTAT, ROLE, STATUS, Alarm, Calendar, Event, vCalAddress

from engine.addresses import check_address

__all__ = [
    "PRODID",
    "CalendarEvent",
    "google_calendar_url",
    "ics",
    "organizer_of",
    "outlook_calendar_url",
]

PRODID = "-//bookbot//session booking//EN"
GOOGLE_CALENDAR_URL = "https://calendar.google.com/calendar/render"
OUTLOOK_LIVE_URL = "https://outlook.live.com/calendar/0/deeplink/compose"
OUTLOOK_OFFICE_URL = "https://outlook.office.com/calendar/0/deeplink/compose"


@dataclass(frozen=True)
class CalendarEvent:
    """One session as calendars see it; start and end are normalised to UTC on construction.

    `uid` must stay the same for the life of the session (updates and the cancellation refer to
    it), and `sequence` must grow with every update the attendees are sent. `location` and `url`
    carry the recipient's join link (engine/followup/join.py): calendar apps show LOCATION with
    the time and make a link in it clickable, and URL is where RFC 5545 puts "more about this
    event"; the add-to-calendar links carry it as their location.
    """

    uid: str
    start: datetime
    end: datetime
    summary: str
    description: str
    location: str | None
    organizer_email: str | None
    organizer_name: str | None
    attendees: tuple[tuple[str, str | None], ...]
    sequence: int = 0
    alarm_minutes: tuple[int, ...] = ()
    url: str | None = None

    def __post_init__(self) -> None:
        if not self.uid.strip():
            raise ValueError("uid must not be empty")
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.sequence < 0:
            raise ValueError("sequence must not be negative")
        if any(minutes < 0 for minutes in self.alarm_minutes):
            raise ValueError("alarm_minutes are minutes before the start, so not negative")
        if self.url is not None and (
            not self.url.startswith(("https://", "http://")) or any(c.isspace() for c in self.url)
        ):
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")


def organizer_of(email_from: str) -> tuple[str, str | None]:
    """The ORGANIZER (address, name) from the `EMAIL_FROM` setting, "Name <addr>" or "addr".

    The invites' organizer is the address the e-mails come from, so a calendar app that checks
    that a CANCEL comes from the organizer accepts it.
    """
    name, address = parseaddr(email_from)
    return check_address(address), name or None


def _alarm(minutes: int, text: str) -> Alarm:
    # Plain `add`: icalendar 7.0 has no ACTION attribute, and assigning one would be ignored.
    alarm = Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("DESCRIPTION", text)  # required for ACTION:DISPLAY
    alarm.add("TRIGGER", timedelta(minutes=-minutes))  # relative to DTSTART
    return alarm


def ics(
    event: CalendarEvent,
    *,
    method: Literal["REQUEST", "CANCEL"] = "REQUEST",
    stamp: datetime | None = None,
) -> bytes:
    """An iTIP message (RFC 5546) for the session: REQUEST invites or updates, CANCEL withdraws.

    A cancellation must carry the session's UID and a higher SEQUENCE than the last request;
    it has no alarms, since there is nothing left to remind anyone of. `stamp` (DTSTAMP, when
    the message was made) defaults to now and is a parameter so output can be reproduced.
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported METHOD {method!r}")
    if stamp is None:
        stamp = datetime.now(UTC)
    elif stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("stamp must be timezone-aware")
    cancelled = method == "CANCEL"
    # The same ATTENDEE lines in the CANCEL: RFC 5546 (3.2.5) wants every attendee listed when
    # the whole event is cancelled. See the module docstring for ACCEPTED and RSVP=FALSE.
    attendees = [
        vCalAddress.new(
            check_address(email),
            cn=name or None,
            cutype=CUTYPE.INDIVIDUAL,
            role=ROLE.REQ_PARTICIPANT,
            partstat=PARTSTAT.ACCEPTED,
            rsvp=False,
        )
        for email, name in event.attendees
    ]
    organizer = (
        vCalAddress.new(check_address(event.organizer_email), cn=event.organizer_name or None)
        if event.organizer_email is not None
        else None
    )
    alarms = (
        [] if cancelled else [_alarm(m, event.summary or "Session") for m in event.alarm_minutes]
    )
    vevent = Event.new(
        uid=event.uid,
        stamp=stamp.astimezone(UTC),
        start=event.start,
        end=event.end,
        summary=event.summary,
        description=event.description,
        location=event.location,
        url=event.url,
        organizer=organizer,
        attendees=attendees,
        sequence=event.sequence,
        status=STATUS.CANCELLED if cancelled else STATUS.CONFIRMED,
    )
    for alarm in alarms:
        vevent.add_component(alarm)
    calendar = Calendar.new(prodid=PRODID, method=method)
    calendar.add_component(vevent)
    calendar.uid = None  # Calendar.new adds a random RFC 7986 calendar UID; invites need none
    data: bytes = calendar.to_ical()
    return data


def _google_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _outlook_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(params: list[tuple[str, str]]) -> str:
    # %20 rather than "+" for spaces: Outlook shows a "+" literally.
    return urlencode(params, safe="/:", quote_via=quote)


def google_calendar_url(event: CalendarEvent) -> str:
    """Google Calendar's "add event" template link, with the session's times in UTC."""
    params = [
        ("action", "TEMPLATE"),
        ("text", event.summary),
        ("dates", f"{_google_time(event.start)}/{_google_time(event.end)}"),
        ("details", event.description),
    ]
    if event.location:
        params.append(("location", event.location))
    return f"{GOOGLE_CALENDAR_URL}?{_query(params)}"


def outlook_calendar_url(event: CalendarEvent, *, office365: bool = False) -> str:
    """Outlook's compose-event deep link: outlook.live.com, or outlook.office.com for
    Microsoft 365 (work and school) accounts."""
    params = [
        ("path", "/calendar/action/compose"),
        ("rru", "addevent"),
        ("startdt", _outlook_time(event.start)),
        ("enddt", _outlook_time(event.end)),
        ("subject", event.summary),
        ("body", event.description),
    ]
    if event.location:
        params.append(("location", event.location))
    base = OUTLOOK_OFFICE_URL if office365 else OUTLOOK_LIVE_URL
    return f"{base}?{_query(params)}"
