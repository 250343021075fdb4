"""Locale- and zone-aware rendering of dates and times for chat messages and keyboards.

Everything is stored in UTC; users must see their own wall clock and their own language's
conventions, otherwise a booked "14:30" silently means a different hour to each participant.
All functions are pure: babel supplies the CLDR data, zoneinfo the offsets.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel import dates as babel_dates
from babel.core import get_global

from engine.chat.slots import day_bounds_utc

__all__ = [
    "first_weekday",
    "format_datetime_long",
    "format_day",
    "format_day_short",
    "format_month",
    "format_time",
    "month_grid",
    "normalize_locale",
    "timezone_note",
    "viewer_timezone",
    "weekday_initials",
]

_FALLBACK_LOCALE = "en"
# Real identifiers are short; refusing long input keeps hostile values away from babel.
_POSIX_DEFAULT_LOCALES = frozenset({"C", "POSIX"})
_MAX_LOCALE_CHARS = 40
# Zones without a letters abbreviation report "+05", "+0545", "-03" from tzname().
_NUMERIC_ABBREVIATION = re.compile(r"[+-]\d{2}(?:\d{2})?")
# Quoted literals in CLDR patterns ('de', 'at') must never be rewritten as fields.
_QUOTED_OR_FIELD = re.compile(r"'[^']*'|([A-Za-z])\1*")
_MAX_WEEKDAY_CHARS = 3
_LONG_DAY_SKELETONS = ("MMMMEEEEd", "MMMMEd", "MMMEd")


@lru_cache(maxsize=256)
def normalize_locale(locale: str | None) -> str:
    """Turn whatever a chat platform reports into a babel identifier, never raising.

    Platforms send "de-DE", POSIX "de_DE.UTF-8" or nothing at all; a bad value must
    degrade to English instead of breaking the conversation.
    """
    if not isinstance(locale, str):
        return _FALLBACK_LOCALE
    cleaned = locale.strip().split(".", 1)[0].split("@", 1)[0].replace("-", "_")
    if not cleaned or len(cleaned) > _MAX_LOCALE_CHARS:
        return _FALLBACK_LOCALE
    if cleaned.upper() in _POSIX_DEFAULT_LOCALES:
        return _FALLBACK_LOCALE
    try:
        parsed = Locale.parse(cleaned)
    except Exception:  # babel raises several unrelated types for bad identifiers
        return _FALLBACK_LOCALE
    if parsed.variant == "POSIX" or str(parsed) == "root":
        # Newer CLDR maps "C" to en_US_POSIX, a machine locale (no grouping, 24-hour ASCII
        # clocks) that no person chose: the process default means "no preference".
        return _FALLBACK_LOCALE
    return str(parsed)


def _locale(locale: str) -> Locale:
    """Parse after normalising so formatting can never fail on a user-supplied locale."""
    return Locale.parse(normalize_locale(locale))


def viewer_timezone(*candidates: str | None) -> str:
    """The first candidate that names a time zone, else "UTC".

    Callers list their sources best first: the user's own row, then what the chat platform's
    profile says (Slack's `user.tz`). The platform's database may hold no zone (NULL, "") or
    one zoneinfo does not know; both mean "none" here rather than a failed screen.
    """
    for name in candidates:
        if name and name.strip():
            try:
                ZoneInfo(name.strip())
            except (ZoneInfoNotFoundError, ValueError):  # ValueError: "../x", absolute paths
                continue
            return name.strip()
    return "UTC"


def _zone(timezone: str) -> ZoneInfo:
    """Unknown zones raise: showing a wrong wall clock is worse than failing loudly."""
    return ZoneInfo(timezone)


def _localize(moment: datetime, zone: tzinfo) -> datetime:
    """Naive input is taken as UTC (the storage convention), never as the server's zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def _zone_abbreviation(local: datetime) -> str:
    """Prefer the familiar letters (CET, EST, IST); spell numeric ones as a UTC offset."""
    name = local.tzname() or ""
    if name.isalpha():
        return name
    if _NUMERIC_ABBREVIATION.fullmatch(name):
        return f"UTC{name[0]}{name[1:3]}:{name[3:5] or '00'}"
    offset = local.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours:02d}:{mins:02d}"


def _widen(pattern: str) -> str:
    """Spell weekday and month names out in full; CLDR only offers abbreviated skeletons."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        letter = match.group(1)
        if letter in ("E", "c") and len(token) <= 3:
            return letter * 4
        if letter in ("M", "L") and len(token) == 3:
            return letter * 4
        return token

    return _QUOTED_OR_FIELD.sub(replace, pattern)


def format_day(day: date, locale: str) -> str:
    """Long day label ("Friday, November 27") for confirmations, where clarity beats brevity."""
    parsed = _locale(locale)
    skeletons = parsed.datetime_skeletons
    # Widest first: only the long skeletons carry grammar such as Spanish "d 'de' MMMM".
    for skeleton in _LONG_DAY_SKELETONS:
        if skeleton in skeletons:
            pattern = _widen(str(skeletons[skeleton].pattern))
            return babel_dates.format_date(day, format=pattern, locale=parsed)
    return babel_dates.format_date(day, format="full", locale=parsed)


def format_day_short(day: date, locale: str) -> str:
    """Compact day label ("Fri, Nov 27") because chat buttons truncate long text."""
    return babel_dates.format_skeleton("MMMEd", day, locale=_locale(locale))


def format_time(moment: datetime, timezone: str, locale: str) -> str:
    """Clock time in the viewer's zone and the locale's 12/24-hour convention."""
    local = _localize(moment, _zone(timezone))
    return babel_dates.format_time(local, format="short", locale=_locale(locale))


def format_datetime_long(moment: datetime, timezone: str, locale: str) -> str:
    """Unambiguous full timestamp with zone abbreviation, for booking confirmations."""
    local = _localize(moment, _zone(timezone))
    parsed = _locale(locale)
    date_part = babel_dates.format_date(local.date(), format="full", locale=parsed)
    time_part = babel_dates.format_time(local, format="short", locale=parsed)
    glue = str(parsed.datetime_formats["full"]).replace("'", "")
    combined = glue.replace("{1}", date_part).replace("{0}", time_part)
    return f"{combined} {_zone_abbreviation(local)}"


def format_month(year: int, month: int, locale: str) -> str:
    """Calendar header; the CLDR skeleton gets word order right (e.g. "2026年11月" in ja)."""
    return babel_dates.format_skeleton("yMMMM", date(year, month, 1), locale=_locale(locale))


def _week_start(parsed: Locale) -> int:
    """Week data is per territory; a bare language ("en") borrows its likely territory (US)."""
    if parsed.territory is None:
        likely = get_global("likely_subtags").get(parsed.language)
        if likely:
            try:
                return int(Locale.parse(likely).first_week_day)
            except Exception:  # likely-subtags data may name a locale babel lacks
                pass
    return int(parsed.first_week_day)


def first_weekday(locale: str) -> int:
    """Where the calendar keyboard's week starts (0 = Monday), as the user expects it."""
    return _week_start(_locale(locale))


def weekday_initials(locale: str, first_weekday: int | None = None) -> list[str]:
    """Calendar column headers; at most ~3 characters so seven fit on one keyboard row."""
    parsed = _locale(locale)
    start = _week_start(parsed) if first_weekday is None else first_weekday
    if start not in range(7):
        raise ValueError(f"first_weekday must be 0..6, got {start}")
    short = {int(k): str(v).rstrip(".") for k, v in parsed.days["stand-alone"]["short"].items()}
    if any(len(name) > _MAX_WEEKDAY_CHARS for name in short.values()):
        narrow = parsed.days["stand-alone"]["narrow"]
        short = {int(k): str(v) for k, v in narrow.items()}
    return [short[(start + offset) % 7] for offset in range(7)]


def timezone_note(timezone: str, day: date, locale: str) -> str:
    """Footer naming the zone of the times shown, right for that very day.

    On a day whose UTC offset changes (DST starts or ends) one abbreviation would be wrong for
    part of the list, so the note names both and the local time the second one starts.
    """
    zone = _zone(timezone)
    start, end = day_bounds_utc(day, timezone)
    first = _zone_abbreviation(_localize(start, zone))
    change = _offset_change(start, end, zone)
    if change is None:
        return f"Times shown in {zone.key} ({first})"
    then = _zone_abbreviation(_localize(change, zone))
    since = format_time(change, timezone, locale)
    return f"Times shown in {zone.key} ({first}, then {then} from {since})"


def _offset_change(start: datetime, end: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant in [start, end) with another UTC offset than `start`, to the minute."""
    offset = start.astimezone(zone).utcoffset()
    last = end - timedelta(minutes=1)  # `end` is the next day's first instant
    if last.astimezone(zone).utcoffset() == offset:
        return None  # offsets change at most once a day in the tz database
    low, high = start, last
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(second=0, microsecond=0)


def month_grid(year: int, month: int, first_weekday: int) -> list[list[date | None]]:
    """Weeks x 7 cells for a calendar keyboard; None pads days outside the month.

    Built from day numbers (not neighbouring dates) so January 1 and December 9999 work.
    """
    if first_weekday not in range(7):
        raise ValueError(f"first_weekday must be 0..6, got {first_weekday}")
    weeks = calendar.Calendar(first_weekday).monthdayscalendar(year, month)
    return [[date(year, month, day) if day else None for day in week] for week in weeks]


def weekday_name(day_of_week: int, locale: str) -> str:
    """Monday is 0, as in `availability.day_of_week`."""
    return str(babel_dates.get_day_names("wide", locale=_locale(locale))[day_of_week])


def format_clock(clock: time, locale: str) -> str:
    """A wall-clock time of a weekly rule (no date, no zone), in the viewer's locale."""
    return babel_dates.format_time(clock, format="short", locale=_locale(locale))
