"""Calendar invites and add-to-calendar links, read back by two independent parsers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject

from engine.chat.views import CourseInfo, TeacherInfo, Viewer, calendar_event
from engine.followup.calendar import (
    PRODID,
    CalendarEvent,
    google_calendar_url,
    ics,
    organizer_of,
    outlook_calendar_url,
)
from engine.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TRICKY = "Bring Q&A #3; notes, too\nJoin: https://meet.example/j?a=1&b=2 — Grüße \\ 100%"


def session(**changes: Any) -> CalendarEvent:
    base = CalendarEvent(
        uid="session-42@bookbot",
        start=datetime(2025, 3, 10, 9, 0, tzinfo=UTC),
        end=datetime(2025, 3, 10, 10, 0, tzinfo=UTC),
        summary="Calculus I tutoring with Ada Lovelace",
        description="Chapter 3 limits.\nJoin: https://meet.example/abc",
        location="Library, room 2",
        organizer_email="sessions@bookbot.example",
        organizer_name="Bookbot",
        attendees=(
            ("student@example.edu", "Zoë O'Brien, PhD"),
            ("ada@example.edu", "Ada Lovelace"),
            ("o'neil+guest@example.edu", None),
        ),
    )
    return replace(base, **changes)


def by_icalendar(data: bytes) -> dict[str, Any]:
    """What icalendar reads back, in plain values."""
    calendar = icalendar.Calendar.from_ical(data)
    (event,) = calendar.events
    organizer = event.get("ORGANIZER")
    return {
        "prodid": str(calendar["PRODID"]),
        "version": str(calendar["VERSION"]),
        "method": str(calendar["METHOD"]),
        "uid": str(event["UID"]),
        "sequence": int(event.decoded("SEQUENCE")),
        "status": str(event["STATUS"]),
        "start": event.decoded("DTSTART"),
        "end": event.decoded("DTEND"),
        "stamp": event.decoded("DTSTAMP"),
        "summary": str(event["SUMMARY"]),
        "description": str(event["DESCRIPTION"]),
        "location": str(event["LOCATION"]) if "LOCATION" in event else None,
        "url": str(event["URL"]) if "URL" in event else None,
        "organizer": None if organizer is None else (str(organizer), organizer.params.get("CN")),
        "attendees": [
            (
                str(a),
                a.params.get("CN"),
                a.params.get("ROLE"),
                a.params.get("PARTSTAT"),
                a.params.get("RSVP"),
            )
            for a in event.attendees
        ],
        "alarms": [
            (str(alarm["ACTION"]), alarm.decoded("TRIGGER"), str(alarm["DESCRIPTION"]))
            for alarm in event.walk("VALARM")
        ],
    }


def _param(line: Any, name: str) -> str | None:
    values = line.params.get(name)
    return None if not values else str(values[0])


def by_vobject(data: bytes) -> dict[str, Any]:
    """What vobject, an unrelated implementation, reads back, in the same plain values."""
    calendar = vobject.readOne(data.decode("utf-8"))
    (event,) = calendar.vevent_list
    organizer = getattr(event, "organizer", None)
    return {
        "prodid": calendar.prodid.value,
        "version": calendar.version.value,
        "method": calendar.method.value,
        "uid": event.uid.value,
        "sequence": int(event.sequence.value),
        "status": event.status.value,
        "start": event.dtstart.value,
        "end": event.dtend.value,
        "stamp": event.dtstamp.value,
        "summary": event.summary.value,
        "description": event.description.value,
        "location": event.location.value if hasattr(event, "location") else None,
        "url": event.url.value if hasattr(event, "url") else None,
        "organizer": None if organizer is None else (organizer.value, _param(organizer, "CN")),
        "attendees": [
            (
                a.value,
                _param(a, "CN"),
                _param(a, "ROLE"),
                _param(a, "PARTSTAT"),
                _param(a, "RSVP"),
            )
            for a in getattr(event, "attendee_list", [])
        ],
        "alarms": [
            (a.action.value, a.trigger.value, a.description.value)
            for a in getattr(event, "valarm_list", [])
        ],
    }


def parsed(data: bytes) -> dict[str, Any]:
    """Both parsers must agree on every field; return that agreed reading."""
    first, second = by_icalendar(data), by_vobject(data)
    assert first == second
    return first


def test_a_request_reads_back_identically_in_icalendar_and_vobject() -> None:
    event = session(sequence=2)
    got = parsed(ics(event, stamp=STAMP))
    assert got == {
        "prodid": "-//bookbot//session booking//EN",
        "version": "2.0",
        "method": "REQUEST",
        "uid": "session-42@bookbot",
        "sequence": 2,
        "status": "CONFIRMED",
        "start": datetime(2025, 3, 10, 9, 0, tzinfo=UTC),
        "end": datetime(2025, 3, 10, 10, 0, tzinfo=UTC),
        "stamp": STAMP,
        "summary": "Calculus I tutoring with Ada Lovelace",
        "description": "Chapter 3 limits.\nJoin: https://meet.example/abc",
        "location": "Library, room 2",
        "url": None,
        "organizer": ("mailto:sessions@bookbot.example", "Bookbot"),
        "attendees": [
            (
                "mailto:student@example.edu",
                "Zoë O'Brien, PhD",
                "REQ-PARTICIPANT",
                "ACCEPTED",
                "FALSE",
            ),
            ("mailto:ada@example.edu", "Ada Lovelace", "REQ-PARTICIPANT", "ACCEPTED", "FALSE"),
            ("mailto:o'neil+guest@example.edu", None, "REQ-PARTICIPANT", "ACCEPTED", "FALSE"),
        ],
        "alarms": [],
    }
    assert PRODID == got["prodid"]


def test_times_are_written_in_utc_with_z_and_lines_end_in_crlf() -> None:
    data = ics(session(), stamp=STAMP)
    assert b"DTSTART:20250310T090000Z\r\n" in data
    assert b"DTEND:20250310T100000Z\r\n" in data
    assert b"DTSTAMP:20260102T030405Z\r\n" in data
    assert b"VTIMEZONE" not in data
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")
    assert data.endswith(b"END:VCALENDAR\r\n")


def test_the_same_event_and_stamp_give_byte_identical_invites() -> None:
    assert ics(session(), stamp=STAMP) == ics(session(), stamp=STAMP)


def test_dtstamp_defaults_to_the_current_utc_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = parsed(ics(session()))["stamp"]
    assert before <= stamp <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("start", "end", "utc_start", "utc_end"),
    [
        # Berlin springs forward at 01:00Z on 2026-03-29: 01:30 CET to 03:30 CEST is one hour.
        (
            datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
            datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN),
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        ),
        # New York falls back at 06:00Z on 2026-11-01: 01:30 EDT to the second 01:30, in EST.
        (
            datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK),
            datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK),
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),
        # Already in UTC, either side of both changes.
        (
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        ),
    ],
)
def test_sessions_across_a_dst_change_keep_their_exact_instants_and_length(
    start: datetime, end: datetime, utc_start: datetime, utc_end: datetime
) -> None:
    event = session(start=start, end=end)
    assert (event.start, event.end) == (utc_start, utc_end)
    got = parsed(ics(event, stamp=STAMP))
    assert (got["start"], got["end"]) == (utc_start, utc_end)
    assert got["start"].utcoffset() == timedelta(0)
    assert got["end"] - got["start"] == timedelta(hours=1)
    assert (
        query(google_calendar_url(event))["dates"]
        == f"{utc_start:%Y%m%dT%H%M%SZ}/{utc_end:%Y%m%dT%H%M%SZ}"
    )
    outlook = query(outlook_calendar_url(event))
    assert (outlook["startdt"], outlook["enddt"]) == (
        f"{utc_start:%Y-%m-%dT%H:%M:%SZ}",
        f"{utc_end:%Y-%m-%dT%H:%M:%SZ}",
    )


def test_alarms_are_written_only_when_reminders_are_requested() -> None:
    assert parsed(ics(session(), stamp=STAMP))["alarms"] == []
    assert b"VALARM" not in ics(session(), stamp=STAMP)
    got = parsed(ics(session(alarm_minutes=(1440, 60, 15)), stamp=STAMP))
    summary = "Calculus I tutoring with Ada Lovelace"
    assert got["alarms"] == [
        ("DISPLAY", timedelta(days=-1), summary),
        ("DISPLAY", timedelta(hours=-1), summary),
        ("DISPLAY", timedelta(minutes=-15), summary),
    ]


def test_a_cancellation_keeps_the_uid_with_a_higher_sequence_and_no_alarms() -> None:
    booked = session(sequence=0, alarm_minutes=(60,))
    cancelled = replace(booked, sequence=booked.sequence + 1)
    request = parsed(ics(booked, stamp=STAMP))
    cancel = parsed(ics(cancelled, method="CANCEL", stamp=STAMP + timedelta(hours=1)))
    assert cancel["method"] == "CANCEL"
    assert cancel["status"] == "CANCELLED"
    assert cancel["uid"] == request["uid"] == "session-42@bookbot"
    assert cancel["sequence"] > request["sequence"]
    assert cancel["attendees"] == request["attendees"]
    assert (cancel["start"], cancel["end"]) == (request["start"], request["end"])
    assert request["alarms"] != []
    assert cancel["alarms"] == []


def test_special_characters_in_text_survive_both_parsers() -> None:
    event = session(summary="Maths & Physik; über #1, Teil 2", description=TRICKY, location="Ü, 3")
    got = parsed(ics(event, stamp=STAMP))
    assert (got["summary"], got["description"], got["location"]) == (
        "Maths & Physik; über #1, Teil 2",
        TRICKY,
        "Ü, 3",
    )


def test_long_lines_are_folded_and_still_read_back_whole() -> None:
    long_text = "Ä" * 200 + " end"
    data = ics(session(description=long_text), stamp=STAMP)
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    assert parsed(data)["description"] == long_text


def test_no_location_and_no_organizer_are_simply_left_out() -> None:
    event = session(location=None, organizer_email=None, organizer_name=None, attendees=())
    data = ics(event, stamp=STAMP)
    got = parsed(data)
    assert got["location"] is None
    assert got["organizer"] is None
    assert got["attendees"] == []
    assert b"LOCATION" not in data and b"ORGANIZER" not in data


def test_an_organizer_without_a_name_has_no_cn() -> None:
    got = parsed(ics(session(organizer_name=None), stamp=STAMP))
    assert got["organizer"] == ("mailto:sessions@bookbot.example", None)


def test_invalid_events_are_refused_on_construction() -> None:
    with pytest.raises(ValueError):
        session(start=datetime(2025, 3, 10, 9, 0))
    with pytest.raises(ValueError):
        session(end=datetime(2025, 3, 10, 9, 0, tzinfo=UTC))
    with pytest.raises(ValueError):
        session(uid=" ")
    with pytest.raises(ValueError):
        session(sequence=-1)
    with pytest.raises(ValueError):
        session(alarm_minutes=(-5,))


def test_a_broken_email_or_naive_stamp_is_refused() -> None:
    with pytest.raises(ValueError):
        ics(session(attendees=(("not-an-email", None),)), stamp=STAMP)
    with pytest.raises(ValueError):
        ics(session(organizer_email="a@b.example\r\nX-EVIL:1"), stamp=STAMP)
    with pytest.raises(ValueError):
        ics(session(), stamp=datetime(2026, 1, 1))


def query(url: str) -> dict[str, str]:
    params = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in params.values())
    return {key: values[0] for key, values in params.items()}


def test_the_google_link_carries_utc_dates_and_round_trips_special_characters() -> None:
    event = session(summary="Maths & Physik #1 über", description=TRICKY, location="Ü & #2")
    url = google_calendar_url(event)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "calendar.google.com",
        "/calendar/render",
    )
    assert parts.fragment == ""
    assert "+" not in parts.query
    assert query(url) == {
        "action": "TEMPLATE",
        "text": "Maths & Physik #1 über",
        "dates": "20250310T090000Z/20250310T100000Z",
        "details": TRICKY,
        "location": "Ü & #2",
    }


def test_the_google_link_leaves_out_a_missing_location() -> None:
    assert "location" not in query(google_calendar_url(session(location=None)))


def test_the_google_link_writes_dst_sessions_in_utc() -> None:
    event = session(
        start=datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK),
        end=datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK),
    )
    assert query(google_calendar_url(event))["dates"] == "20261101T053000Z/20261101T063000Z"


@pytest.mark.parametrize(
    ("office365", "host"), [(False, "outlook.live.com"), (True, "outlook.office.com")]
)
def test_the_outlook_link_carries_utc_dates_and_round_trips_special_characters(
    office365: bool, host: str
) -> None:
    event = session(
        start=datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
        end=datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN),
        summary="Maths & Physik #1 über",
        description=TRICKY,
        location="Ü & #2",
    )
    url = outlook_calendar_url(event, office365=office365)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        host,
        "/calendar/0/deeplink/compose",
    )
    assert parts.fragment == ""
    assert "+" not in parts.query
    assert query(url) == {
        "path": "/calendar/action/compose",
        "rru": "addevent",
        "startdt": "2026-03-29T00:30:00Z",
        "enddt": "2026-03-29T01:30:00Z",
        "subject": "Maths & Physik #1 über",
        "body": TRICKY,
        "location": "Ü & #2",
    }


def test_the_outlook_link_leaves_out_a_missing_location() -> None:
    assert "location" not in query(outlook_calendar_url(session(location=None)))


# --- Who organizes and who attends (RFC 5546) ------------------------------------------------


def booked_event(email_from: str) -> CalendarEvent:
    """The invite exactly as the bot builds it after a booking (engine/views.py)."""
    return calendar_event(
        CourseInfo(7, "calculus-1", "Calculus I", 10, 60),
        TeacherInfo(5, "Ada Lovelace", None, "Europe/London", True, 60, "ada@example.edu"),
        datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        42,
        True,
        "Chapter 3",
        Viewer(3, "Sam Student", "America/New_York", "en_US", "sam@example.edu"),
        organizer_of(email_from),
    )


def test_the_tutoring_service_organizes_and_the_student_and_st_attend() -> None:
    """EMAIL_FROM sends every REQUEST and CANCEL, so it is the ORGANIZER; both people are
    required attendees whose booking is already accepted, and nobody is asked to reply."""
    email_from = Settings().email_from
    assert email_from == "Tutoring <bookings@tutoring.example.edu>"
    event = booked_event(email_from)
    for method, stamp in (("REQUEST", STAMP), ("CANCEL", STAMP + timedelta(days=1))):
        got = parsed(ics(event, method=method, stamp=stamp))  # icalendar and vobject agree
        assert got["method"] == method
        assert got["stamp"] == stamp
        assert got["organizer"] == ("mailto:bookings@tutoring.example.edu", "Tutoring")
        assert got["attendees"] == [
            ("mailto:sam@example.edu", "Sam Student", "REQ-PARTICIPANT", "ACCEPTED", "FALSE"),
            ("mailto:ada@example.edu", "Ada Lovelace", "REQ-PARTICIPANT", "ACCEPTED", "FALSE"),
        ]
        assert got["organizer"][0] not in [a[0] for a in got["attendees"]]
    data = ics(event, stamp=STAMP)
    assert data.count(b"CUTYPE=INDIVIDUAL") == 2


@pytest.mark.parametrize(
    ("email_from", "expected"),
    [
        ("Tutoring <bookings@tutoring.example.edu>", ("bookings@tutoring.example.edu", "Tutoring")),
        ("bookings@tutoring.example.edu", ("bookings@tutoring.example.edu", None)),
        ('"Peer Tutoring, Uni" <a@uni.example>', ("a@uni.example", "Peer Tutoring, Uni")),
    ],
)
def test_the_organizer_comes_from_email_from(
    email_from: str, expected: tuple[str, str | None]
) -> None:
    assert organizer_of(email_from) == expected
    assert parsed(ics(booked_event(email_from), stamp=STAMP))["organizer"] == (
        f"mailto:{expected[0]}",
        expected[1],
    )


def test_an_email_from_without_an_address_is_refused() -> None:
    with pytest.raises(ValueError):
        organizer_of("Tutoring")


JOIN = "https://bot.example.edu/join/A0-_zZ9q" + "x" * 42  # as long as a real one (50)


def test_a_join_link_as_location_and_url_reads_back_in_both_parsers_and_links() -> None:
    event = session(location=JOIN, url=JOIN, alarm_minutes=(60,))
    data = ics(event, stamp=STAMP)
    got = parsed(data)  # icalendar and vobject agree
    assert (got["location"], got["url"]) == (JOIN, JOIN)
    assert b"\r\nURL:https://bot.example.edu/join/" in data  # a URI value, no escaping
    assert query(google_calendar_url(event))["location"] == JOIN
    for office365 in (False, True):
        assert query(outlook_calendar_url(event, office365=office365))["location"] == JOIN
    # The CANCEL of the same event parses too (the e-mails' CANCEL carries no link).
    assert parsed(ics(event, method="CANCEL", stamp=STAMP))["url"] == JOIN


def test_no_url_is_left_out_and_a_url_must_be_a_web_link() -> None:
    assert b"URL" not in ics(session(), stamp=STAMP)
    for bad in ("javascript:alert(1)", "", "https://x.example/a b", "ftp://x.example"):
        with pytest.raises(ValueError):
            session(url=bad)
