"""Screenshots of the confirmation e-mail at desktop (600 px) and phone (375 px) widths.

Renders the real template (`engine.followup.notify.render_confirmation`) with sample data
and photographs it with headless Chromium (Debian's `chromium`), so a change to the layout can
be looked at before it reaches anyone's inbox. Not part of CI. Usage, from the checkout:

    .venv/bin/python scripts/email_screenshots.py [--out docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bots.telegram.links import deep_link
from engine.chat.formatting import format_datetime_long
from engine.followup.calendar import (
    CalendarEvent,
    google_calendar_url,
    ics,
    organizer_of,
    outlook_calendar_url,
)
from engine.followup.join import join_url
from engine.followup.notify import render_confirmation
from engine.links import ManageClaims, manage_link_expiry, sign_manage

START = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
WIDTHS = (600, 375)
HEIGHT = 1300


def sample_html() -> str:
    """The student's confirmation as the worker would send it, with a long note."""
    end = START + timedelta(minutes=60)
    join = join_url("https://bot.tutoring.example.edu", "screenshot-secret", 42, 3, end)
    event = CalendarEvent(
        uid="session-42@bookbot",
        start=START,
        end=end,
        summary="Calculus I tutoring with Ada Lovelace",
        description="Course: Calculus I",
        location=join,
        organizer_email=organizer_of("Tutoring <bookings@tutoring.example.edu>")[0],
        organizer_name="Tutoring",
        attendees=(("sam@example.edu", "Sam Student"), ("ada@example.edu", "Ada Lovelace")),
        alarm_minutes=(60,),
        url=join,
    )
    payload = sign_manage(ManageClaims(3, manage_link_expiry(end)), "screenshot-secret")
    email = render_confirmation(
        role="student",
        recipient_name="Sam Student",
        recipient_email="sam@example.edu",
        other_name="Ada Lovelace",
        course="Calculus I",
        when=format_datetime_long(START, "America/New_York", "en_US"),
        minutes=60,
        note="Chapter 3 integrals, please: substitution and integration by parts. "
        "I keep getting the signs wrong in exercise 3.14.",
        reminders=True,
        google_url=google_calendar_url(event),
        outlook_url=outlook_calendar_url(event),
        office365_url=outlook_calendar_url(event, office365=True),
        manage_url=deep_link("tutoring_booking_bot", payload),
        dashboard_url="https://tutoring.example.edu/dashboard",
        join_url=join,
        ics=ics(event, stamp=START - timedelta(days=2)),
    )
    return email.html


def shoot(chromium: str, page: Path, width: int, target: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{HEIGHT}",
                f"--screenshot={target}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "confirmation.html"
        page.write_text(sample_html(), encoding="utf-8")
        for width in WIDTHS:
            target = (args.out / f"email-confirmation-{width}.png").resolve()
            shoot(args.chromium, page, width, target)
            print(target)


if __name__ == "__main__":
    main()
