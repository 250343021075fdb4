"""Understanding the day a user types in chat ("tomorrow", "25 Nov", "mañana", "1/12").

Users think in their own language, date order and local calendar day, so parsing happens
relative to *their* wall clock, not the server's. dateparser does the heavy lifting; this
module pins down the few places where its answer is wrong for booking (today rolling over
to next year, ambiguous "1/12", German "1.12.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dateparser  # type: ignore[import-untyped, unused-ignore]
from babel import Locale
from dateparser.data.languages_info import (  # type: ignore[import-untyped, unused-ignore]
    language_order,
)

from engine.chat.formatting import normalize_locale

__all__ = ["DateParseError", "ParsedDate", "example_day", "parse_day"]

# dateparser's cost grows with input length; nobody types a day in more than this.
MAX_INPUT_CHARS = 100

_SUPPORTED_LANGUAGES: frozenset[str] = frozenset(language_order)
# "1.12." is how German speakers write a day; dateparser reads it as the time 01:12.
_DOTTED_DAY_MONTH = re.compile(r"(\d{1,2})\.\s?(\d{1,2})\.")
_ENGLISH_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_QUOTED_LITERAL = re.compile(r"'[^']*'")
_HALF_YEAR = timedelta(days=182)


@dataclass(frozen=True)
class ParsedDate:
    """A calendar day in the user's own zone; times of day are decided later by slots."""

    day: date


@dataclass(frozen=True)
class DateParseError:
    """Why the text was rejected, so the bot can answer "that's in the past" vs "pardon?"."""

    reason: Literal["unparseable", "past"]
    text: str


@lru_cache(maxsize=256)
def _languages(locale: str) -> tuple[str, ...]:
    """User language first, English always as fallback since many users mix it in."""
    parsed = Locale.parse(locale)
    candidates = [f"{parsed.language}-{parsed.script}"] if parsed.script else []
    candidates.append(parsed.language)
    for candidate in candidates:
        if candidate in _SUPPORTED_LANGUAGES and candidate != "en":
            return (candidate, "en")
    return ("en",)


@lru_cache(maxsize=256)
def _date_order(locale: str) -> str | None:
    """Read "1/12" the way the user's locale writes short dates (MDY in en_US, DMY in de)."""
    pattern = _QUOTED_LITERAL.sub("", str(Locale.parse(locale).date_formats["short"].pattern))
    positions = {
        "D": pattern.find("d"),
        "M": min((i for i in (pattern.find("M"), pattern.find("L")) if i >= 0), default=-1),
        "Y": pattern.find("y"),
    }
    if min(positions.values()) < 0:
        return None
    return "".join(sorted(positions, key=positions.__getitem__))


def _rewrite(text: str) -> str:
    """Spell the month of "d.m." out, which is unambiguous whatever the date order."""
    match = _DOTTED_DAY_MONTH.fullmatch(text)
    if match is None:
        return text
    day, month = int(match.group(1)), int(match.group(2))
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return text
    return f"{day} {_ENGLISH_MONTHS[month - 1]}"


def _parse(text: str, languages: tuple[str, ...], settings: dict[str, Any]) -> date | None:
    """Any dateparser failure is the user's text being unusable, not a bot crash."""
    try:
        result = dateparser.parse(text, languages=list(languages), settings=settings)
    except Exception:  # dateparser raises assorted internal errors on odd input
        return None
    return result.date() if isinstance(result, datetime) else None


def _undo_year_rollover(
    day: date, today: date, query: str, languages: tuple[str, ...], settings: dict[str, Any]
) -> date:
    """Pick the nearest occurrence of a year-less date instead of always next year's.

    "Future" preference turns "25 Nov" typed on Nov 25 into next year, and "24 Nov" into a
    booking 364 days out; the user meant today, or made a slip the bot should point out as
    past. Far-back dates ("1/12" in November) still mean the coming one.
    """
    earlier = _parse(query, languages, {**settings, "PREFER_DATES_FROM": "past"})
    if earlier is None or earlier >= day or (earlier.month, earlier.day) != (day.month, day.day):
        return day  # an explicit year or a relative phrase: the preference changed nothing
    return earlier if today - earlier < day - today else day


def parse_day(
    text: str, *, now: datetime, timezone: str, locale: str
) -> ParsedDate | DateParseError:
    """Resolve a typed day against the user's local today; past days can't be booked.

    ``now`` should be aware (naive is taken as UTC); an unknown ``timezone`` raises because
    guessing it would silently shift "today". A bad ``locale`` falls back to English.
    """
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_INPUT_CHARS:
        return DateParseError("unparseable", cleaned)
    zone = ZoneInfo(timezone)
    aware_now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    local_now = aware_now.astimezone(zone)
    today = local_now.date()
    normalized = normalize_locale(locale)
    languages = _languages(normalized)
    settings: dict[str, Any] = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        # Text naming its own zone ("10am PST") is converted into the user's day.
        "TIMEZONE": timezone,
        "TO_TIMEZONE": timezone,
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    order = _date_order(normalized)
    if order is not None:
        settings["DATE_ORDER"] = order
    query = _rewrite(cleaned)
    day = _parse(query, languages, settings)
    if day is None:
        return DateParseError("unparseable", cleaned)
    if day - today > _HALF_YEAR:  # only then can last year's occurrence be the nearer one
        day = _undo_year_rollover(day, today, query, languages, settings)
    if day < today:
        return DateParseError("past", cleaned)
    return ParsedDate(day)


def example_day(today: date) -> str:
    """A day to suggest in hints ("8 Dec"): always ahead of `today`, so following it works.

    A week ahead stays inside every booking horizon and never names a past day, whatever the
    month; the hints are English, so the month is too.
    """
    day = today + timedelta(days=7)
    return f"{day.day} {_ENGLISH_MONTHS[day.month - 1]}"
