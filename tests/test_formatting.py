"""Rendering in the viewer's zone and locale.

Expected strings pin the CLDR data shipped with babel 2.18 (e.g. the narrow no-break space
U+202F before AM/PM, and ", " rather than " at " between date and time).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfoNotFoundError

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from engine.chat.formatting import (
    first_weekday,
    format_datetime_long,
    format_day,
    format_day_short,
    format_month,
    format_time,
    month_grid,
    normalize_locale,
    timezone_note,
    weekday_initials,
)

NNBSP = "\u202f"
FRIDAY = date(2026, 11, 27)
WINTER = datetime(2026, 11, 27, 13, 30, tzinfo=UTC)  # Friday, CET / EST
SUMMER = datetime(2026, 7, 10, 12, 0, tzinfo=UTC)  # Friday, CEST / EDT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de-DE", "de_DE"),
        ("de_DE", "de_DE"),
        ("de_DE.UTF-8", "de_DE"),
        ("de_DE@euro", "de_DE"),
        ("EN-us", "en_US"),
        ("  es  ", "es"),
        ("fr", "fr"),
        ("zh-Hant-TW", "zh_Hant_TW"),
        (None, "en"),
        ("", "en"),
        ("xx", "en"),
        ("C", "en"),
        ("POSIX", "en"),
        ("en_US_POSIX", "en"),
        ("C.UTF-8", "en"),
        ("123", "en"),
        ("de__DE", "en"),
        ("root", "en"),
        ("a" * 500, "en"),
    ],
)
def test_normalize_locale_maps_platform_codes_to_babel_and_unknowns_to_english(
    raw: str | None, expected: str
) -> None:
    assert normalize_locale(raw) == expected


@given(st.one_of(st.none(), st.text(max_size=60)))
def test_normalize_locale_never_raises_and_always_yields_a_babel_locale(raw: str | None) -> None:
    Locale.parse(normalize_locale(raw))


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", "Friday, November 27"),
        ("en_GB", "Friday 27 November"),
        ("de_DE", "Freitag, 27. November"),
        ("fr", "vendredi 27 novembre"),
        ("es", "viernes, 27 de noviembre"),
        ("bogus", "Friday, November 27"),
    ],
)
def test_format_day_spells_out_weekday_and_month(locale: str, expected: str) -> None:
    assert format_day(FRIDAY, locale) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", "Fri, Nov 27"),
        ("en_GB", "Fri 27 Nov"),
        ("de_DE", "Fr., 27. Nov."),
        ("fr", "ven. 27 nov."),
    ],
)
def test_format_day_short_fits_on_a_button(locale: str, expected: str) -> None:
    assert format_day_short(FRIDAY, locale) == expected


@pytest.mark.parametrize(
    ("zone", "locale", "expected"),
    [
        ("Europe/Berlin", "en_US", f"2:30{NNBSP}PM"),
        ("Europe/Berlin", "de_DE", "14:30"),
        ("Europe/Berlin", "fr", "14:30"),
        ("America/New_York", "en_US", f"8:30{NNBSP}AM"),
        ("America/New_York", "de_DE", "08:30"),
        ("Asia/Kolkata", "en_GB", "19:00"),
        ("Asia/Kathmandu", "de_DE", "19:15"),
        ("UTC", "de_DE", "13:30"),
    ],
)
def test_times_show_in_viewer_zone_and_clock_convention(
    zone: str, locale: str, expected: str
) -> None:
    assert format_time(WINTER, zone, locale) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 7, 10, 12, 0, tzinfo=UTC), "14:00"),  # CEST, UTC+2
        (datetime(2026, 11, 27, 12, 0, tzinfo=UTC), "13:00"),  # CET, UTC+1
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "01:59"),  # last minute of CET
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "03:00"),  # clocks jump forward
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "02:30"),  # first 02:30 (CEST)
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "02:30"),  # repeated 02:30 (CET)
    ],
)
def test_times_show_in_viewer_zone_across_dst(moment: datetime, expected: str) -> None:
    assert format_time(moment, "Europe/Berlin", "de_DE") == expected


def test_same_instant_reads_differently_per_viewer() -> None:
    moment = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert format_time(moment, "America/New_York", "en_US") == f"6:30{NNBSP}PM"
    assert format_time(moment, "Asia/Tokyo", "en_US") == f"8:30{NNBSP}AM"


def test_aware_non_utc_input_is_converted_not_relabelled() -> None:
    same_instant = WINTER.astimezone(timezone(timedelta(hours=5)))
    assert format_time(same_instant, "Europe/Berlin", "de_DE") == "14:30"


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = WINTER.replace(tzinfo=None)
    assert format_time(naive, "Europe/Berlin", "de_DE") == "14:30"
    assert format_datetime_long(naive, "Europe/Berlin", "de_DE").endswith("14:30 CET")


@pytest.mark.parametrize(
    ("moment", "zone", "locale", "expected"),
    [
        (WINTER, "Europe/Berlin", "en_US", f"Friday, November 27, 2026, 2:30{NNBSP}PM CET"),
        (WINTER, "Europe/Berlin", "de_DE", "Freitag, 27. November 2026, 14:30 CET"),
        (SUMMER, "Europe/Berlin", "de_DE", "Freitag, 10. Juli 2026, 14:00 CEST"),
        (WINTER, "America/New_York", "en_US", f"Friday, November 27, 2026, 8:30{NNBSP}AM EST"),
        (SUMMER, "America/New_York", "en_US", f"Friday, July 10, 2026, 8:00{NNBSP}AM EDT"),
        (WINTER, "Asia/Kolkata", "en_GB", "Friday, 27 November 2026, 19:00 IST"),
        (WINTER, "Asia/Kathmandu", "en_GB", "Friday, 27 November 2026, 19:15 UTC+05:45"),
        (WINTER, "Europe/Paris", "fr", "vendredi 27 novembre 2026, 14:30 CET"),
    ],
)
def test_long_datetime_has_date_time_and_zone_abbreviation(
    moment: datetime, zone: str, locale: str, expected: str
) -> None:
    assert format_datetime_long(moment, zone, locale) == expected


def test_long_datetime_uses_the_viewers_date_not_utcs() -> None:
    late_utc = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
    assert format_datetime_long(late_utc, "Asia/Tokyo", "en_GB").startswith("Saturday, 28")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", "November 2026"),
        ("de_DE", "November 2026"),
        ("fr", "novembre 2026"),
        ("ja", "2026年11月"),
    ],
)
def test_format_month_titles_the_calendar(locale: str, expected: str) -> None:
    assert format_month(2026, 11, locale) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", 6),
        ("en", 6),  # a bare language borrows its likely territory (US)
        ("en_GB", 0),
        ("de_DE", 0),
        ("de", 0),
        ("fr", 0),
        ("bogus", 6),  # falls back to "en"
    ],
)
def test_first_weekday_follows_the_locales_territory(locale: str, expected: int) -> None:
    assert first_weekday(locale) == expected


@pytest.mark.parametrize(
    ("locale", "start", "expected"),
    [
        ("en_US", None, ["Su", "Mo", "Tu", "We", "Th", "Fr", "Sa"]),
        ("en_US", 0, ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]),
        ("de_DE", None, ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]),
        ("de_DE", 6, ["So", "Mo", "Di", "Mi", "Do", "Fr", "Sa"]),
        ("fr", None, ["lu", "ma", "me", "je", "ve", "sa", "di"]),
    ],
)
def test_weekday_initials_start_at_the_locales_first_day(
    locale: str, start: int | None, expected: list[str]
) -> None:
    assert weekday_initials(locale, start) == expected


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr", "es", "ja", "ru", "ar", "he", "hu"])
def test_weekday_initials_are_seven_short_labels(locale: str) -> None:
    labels = weekday_initials(locale)
    assert len(labels) == 7
    assert all(0 < len(label) <= 3 for label in labels)


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr", "ar"])
def test_weekday_headers_line_up_with_grid_columns(locale: str) -> None:
    start = first_weekday(locale)
    headers = weekday_initials(locale)
    grid = month_grid(2026, 11, start)
    for week in grid:
        for column, cell in enumerate(week):
            if cell is not None:
                assert cell.weekday() == (start + column) % 7
                assert headers[column] == weekday_initials(locale, cell.weekday())[0]


@pytest.mark.parametrize("bad", [-1, 7])
def test_weekday_initials_reject_impossible_week_starts(bad: int) -> None:
    with pytest.raises(ValueError, match="first_weekday"):
        weekday_initials("en_US", bad)


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        ("Europe/Berlin", WINTER, "Times shown in Europe/Berlin (CET)"),
        ("Europe/Berlin", SUMMER, "Times shown in Europe/Berlin (CEST)"),
        ("America/New_York", WINTER, "Times shown in America/New_York (EST)"),
        ("America/New_York", SUMMER, "Times shown in America/New_York (EDT)"),
        ("Asia/Kolkata", WINTER, "Times shown in Asia/Kolkata (IST)"),
        ("Asia/Kathmandu", SUMMER, "Times shown in Asia/Kathmandu (UTC+05:45)"),
        ("America/Sao_Paulo", WINTER, "Times shown in America/Sao_Paulo (UTC-03:00)"),
        ("Asia/Dubai", WINTER, "Times shown in Asia/Dubai (UTC+04:00)"),
        ("UTC", WINTER, "Times shown in UTC (UTC)"),
    ],
)
def test_timezone_note_names_zone_and_its_abbreviation_at_that_moment(
    zone: str, at: datetime, expected: str
) -> None:
    assert timezone_note(zone, at, "en_US") == expected


def test_timezone_note_is_english_whatever_the_locale() -> None:
    assert timezone_note("Europe/Berlin", WINTER, "de_DE") == "Times shown in Europe/Berlin (CET)"


@pytest.mark.parametrize(
    "call",
    [
        lambda: format_time(WINTER, "Mars/Olympus", "en"),
        lambda: format_datetime_long(WINTER, "Mars/Olympus", "en"),
        lambda: timezone_note("Mars/Olympus", WINTER, "en"),
    ],
)
def test_unknown_timezone_raises_rather_than_showing_a_wrong_clock(
    call: Callable[[], str],
) -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        call()


def d(day: int) -> date:
    return date(2026, 11, day)


def test_month_grid_for_nov_2026_starting_monday() -> None:
    grid = month_grid(2026, 11, 0)
    assert len(grid) == 6
    assert grid[0] == [None, None, None, None, None, None, d(1)]  # Nov 1 is a Sunday
    assert grid[1] == [d(day) for day in range(2, 9)]
    assert grid[-1] == [d(30), None, None, None, None, None, None]


def test_month_grid_for_nov_2026_starting_sunday() -> None:
    grid = month_grid(2026, 11, 6)
    assert len(grid) == 5
    assert grid[0] == [d(day) for day in range(1, 8)]
    assert grid[-1] == [d(29), d(30), None, None, None, None, None]


def test_month_grid_handles_the_ends_of_the_calendar() -> None:
    assert month_grid(1, 1, 6)[0][0] is None
    assert month_grid(9999, 12, 0)[-1][4] == date(9999, 12, 31)


@pytest.mark.parametrize("bad", [-1, 7, 13])
def test_month_grid_rejects_impossible_week_starts(bad: int) -> None:
    with pytest.raises(ValueError, match="first_weekday"):
        month_grid(2026, 11, bad)


@given(
    year=st.integers(min_value=1, max_value=9999),
    month=st.integers(min_value=1, max_value=12),
    start=st.integers(min_value=0, max_value=6),
)
def test_month_grid_holds_every_day_once_in_order_in_rows_of_7(
    year: int, month: int, start: int
) -> None:
    grid = month_grid(year, month, start)
    assert 4 <= len(grid) <= 6
    assert all(len(week) == 7 for week in grid)
    cells = [cell for week in grid for cell in week]
    days = [cell for cell in cells if cell is not None]
    first = date(year, month, 1)
    assert days == [first + timedelta(days=offset) for offset in range(len(days))]
    assert len(days) == calendar.monthrange(year, month)[1]
    # Padding only before the first and after the last day; columns keep their weekday.
    assert cells[cells.index(days[0]) : cells.index(days[-1]) + 1] == days
    assert all(
        cell.weekday() == (start + column) % 7
        for week in grid
        for column, cell in enumerate(week)
        if cell is not None
    )
