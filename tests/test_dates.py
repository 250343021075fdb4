"""Free-text day parsing, pinned to a fixed clock so relative phrases are deterministic.

NOW is Wednesday 2026-11-25 10:00 UTC: still the 25th in Berlin and New York. LATE is
22:00 UTC, when Tokyo is already on Thursday the 26th. EARLY is 03:00 UTC, when New York
is still on Tuesday the 24th.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chat.dates import MAX_INPUT_CHARS, DateParseError, ParsedDate, parse_day

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LATE = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
EARLY = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"

# (now, timezone, the local today there)
LOCAL_TODAYS = [
    pytest.param(NOW, BERLIN, date(2026, 11, 25), id="berlin-morning"),
    pytest.param(NOW, NEW_YORK, date(2026, 11, 25), id="new-york-morning"),
    pytest.param(LATE, BERLIN, date(2026, 11, 25), id="berlin-late-evening"),
    pytest.param(LATE, TOKYO, date(2026, 11, 26), id="tokyo-already-tomorrow"),
    pytest.param(EARLY, NEW_YORK, date(2026, 11, 24), id="new-york-still-yesterday"),
]


def day_of(
    text: str, *, now: datetime = NOW, timezone: str = BERLIN, locale: str = "en_US"
) -> date:
    result = parse_day(text, now=now, timezone=timezone, locale=locale)
    assert isinstance(result, ParsedDate), result
    return result.day


def error_of(
    text: str, *, now: datetime = NOW, timezone: str = BERLIN, locale: str = "en_US"
) -> DateParseError:
    result = parse_day(text, now=now, timezone=timezone, locale=locale)
    assert isinstance(result, DateParseError), result
    return result


@pytest.mark.parametrize(("now", "timezone", "local_today"), LOCAL_TODAYS)
def test_today_means_the_local_today(now: datetime, timezone: str, local_today: date) -> None:
    assert day_of("today", now=now, timezone=timezone) == local_today


@pytest.mark.parametrize(("now", "timezone", "local_today"), LOCAL_TODAYS)
def test_tomorrow_means_the_day_after_the_local_today(
    now: datetime, timezone: str, local_today: date
) -> None:
    assert day_of("tomorrow", now=now, timezone=timezone) == local_today + timedelta(days=1)


@pytest.mark.parametrize(("now", "timezone", "local_today"), LOCAL_TODAYS)
def test_in_3_days_counts_from_the_local_today(
    now: datetime, timezone: str, local_today: date
) -> None:
    assert day_of("in 3 days", now=now, timezone=timezone) == local_today + timedelta(days=3)


@pytest.mark.parametrize(
    ("text", "now", "timezone", "expected"),
    [
        ("next friday", NOW, BERLIN, date(2026, 11, 27)),
        ("next friday", NOW, NEW_YORK, date(2026, 11, 27)),
        ("next friday", LATE, TOKYO, date(2026, 11, 27)),
        ("Next Friday", NOW, BERLIN, date(2026, 11, 27)),
    ],
)
def test_next_friday_means_the_coming_friday(
    text: str, now: datetime, timezone: str, expected: date
) -> None:
    assert day_of(text, now=now, timezone=timezone) == expected


@pytest.mark.parametrize(
    ("text", "now", "timezone", "expected"),
    [
        ("friday", NOW, BERLIN, date(2026, 11, 27)),
        ("friday", LATE, TOKYO, date(2026, 11, 27)),
        ("monday", NOW, NEW_YORK, date(2026, 11, 30)),
        ("thursday", LATE, TOKYO, date(2026, 12, 3)),
    ],
)
def test_bare_weekday_means_its_next_occurrence(
    text: str, now: datetime, timezone: str, expected: date
) -> None:
    assert day_of(text, now=now, timezone=timezone) == expected


def test_weekday_named_on_that_very_day_means_next_week() -> None:
    # dateparser's reading; "today" is the way to ask for the current day.
    assert day_of("wednesday") == date(2026, 12, 2)


@pytest.mark.parametrize(
    ("text", "timezone", "locale"),
    [
        ("25 Nov", BERLIN, "en_US"),
        ("Nov 25", BERLIN, "en_US"),
        ("25 November", NEW_YORK, "en_GB"),
        ("November 25", NEW_YORK, "en"),
        ("25.11.", BERLIN, "de_DE"),
        ("25 nov", BERLIN, "fr_FR"),
    ],
)
def test_25_nov_typed_on_25_nov_is_today(text: str, timezone: str, locale: str) -> None:
    assert day_of(text, timezone=timezone, locale=locale) == date(2026, 11, 25)


def test_25_nov_typed_when_tokyo_is_already_on_26_nov_is_past() -> None:
    assert error_of("25 Nov", now=LATE, timezone=TOKYO).reason == "past"


def test_feb_29_typed_on_feb_29_is_today_not_the_next_leap_year() -> None:
    leap_day = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert day_of("29 Feb", now=leap_day) == date(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nov 26", date(2026, 11, 26)),
        ("1 Dec", date(2026, 12, 1)),
        ("Dec 31", date(2026, 12, 31)),
        ("Jan 5", date(2027, 1, 5)),
        ("3 March", date(2027, 3, 3)),
    ],
)
def test_day_and_month_without_year_mean_the_next_occurrence(text: str, expected: date) -> None:
    assert day_of(text) == expected


@pytest.mark.parametrize("text", ["24 Nov", "Nov 1", "1 July"])
def test_recent_day_without_year_is_past_not_next_year(text: str) -> None:
    # The nearest occurrence wins: a slip of a day must not become a booking 364 days out.
    assert error_of(text).reason == "past"


def test_dec_31_typed_on_new_years_day_is_past_not_the_coming_december() -> None:
    new_year = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    assert error_of("Dec 31", now=new_year).reason == "past"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", date(2026, 12, 1)),
        ("2026-11-25", date(2026, 11, 25)),
        ("25 Nov 2027", date(2027, 11, 25)),
        ("November 24, 2027", date(2027, 11, 24)),
    ],
)
def test_explicit_year_is_taken_literally(text: str, expected: date) -> None:
    assert day_of(text) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_US", date(2027, 1, 12)),
        ("en", date(2027, 1, 12)),
        ("en_GB", date(2026, 12, 1)),
        ("de_DE", date(2026, 12, 1)),
        ("de", date(2026, 12, 1)),
        ("fr_FR", date(2026, 12, 1)),
        ("es", date(2026, 12, 1)),
    ],
)
def test_slash_dates_follow_the_locale_date_order(locale: str, expected: date) -> None:
    assert day_of("1/12", locale=locale) == expected


@pytest.mark.parametrize("locale", ["de_DE", "en_US"])
def test_german_dotted_day_month_is_a_date_not_a_time(locale: str) -> None:
    assert day_of("1.12.", locale=locale) == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("mañana", "es", date(2026, 11, 26)),
        ("hoy", "es_ES", date(2026, 11, 25)),
        ("viernes", "es", date(2026, 11, 27)),
        ("morgen", "de_DE", date(2026, 11, 26)),
        ("übermorgen", "de_DE", date(2026, 11, 27)),
        ("Freitag", "de", date(2026, 11, 27)),
        ("demain", "fr_FR", date(2026, 11, 26)),
        ("aujourd'hui", "fr", date(2026, 11, 25)),
        ("vendredi", "fr_FR", date(2026, 11, 27)),
    ],
)
def test_words_in_the_users_language_are_understood(text: str, locale: str, expected: date) -> None:
    assert day_of(text, locale=locale) == expected


@pytest.mark.parametrize("locale", ["de_DE", "es", "fr_FR"])
def test_english_is_understood_whatever_the_users_language(locale: str) -> None:
    assert day_of("tomorrow", locale=locale) == date(2026, 11, 26)


@pytest.mark.parametrize("locale", ["xx", "", "not a locale", "C", "de__DE"])
def test_unknown_locale_falls_back_to_english(locale: str) -> None:
    assert day_of("tomorrow", locale=locale) == date(2026, 11, 26)


@pytest.mark.parametrize(
    ("text", "now", "timezone"),
    [
        ("yesterday", NOW, BERLIN),
        ("3 days ago", NOW, NEW_YORK),
        ("2026-11-24", NOW, BERLIN),
        ("2026-11-25", LATE, TOKYO),
        ("24 Nov 2026", NOW, BERLIN),
        ("last friday", NOW, BERLIN),
    ],
)
def test_days_before_the_local_today_are_past(text: str, now: datetime, timezone: str) -> None:
    assert error_of(text, now=now, timezone=timezone) == DateParseError("past", text)


def test_today_in_new_york_is_not_past_while_utc_is_already_tomorrow() -> None:
    assert day_of("2026-11-24", now=EARLY, timezone=NEW_YORK) == date(2026, 11, 24)


@pytest.mark.parametrize("text", ["asdf", "", "   ", "book me", "???", "\n\t"])
def test_garbage_is_unparseable(text: str) -> None:
    assert error_of(text) == DateParseError("unparseable", text.strip())


def test_surrounding_whitespace_is_ignored_and_not_echoed() -> None:
    assert day_of("  tomorrow \n") == date(2026, 11, 26)
    assert error_of("  yesterday ") == DateParseError("past", "yesterday")


def test_text_naming_its_own_zone_lands_on_the_users_day() -> None:
    assert day_of("2026-12-01T23:00:00Z", timezone=TOKYO) == date(2026, 12, 2)


def test_naive_now_is_taken_as_utc() -> None:
    naive_late = LATE.replace(tzinfo=None)
    assert day_of("today", now=naive_late, timezone=TOKYO) == date(2026, 11, 26)


def test_unknown_timezone_raises_rather_than_guessing_today() -> None:
    with pytest.raises(Exception, match="Mars/Olympus"):
        parse_day("today", now=NOW, timezone="Mars/Olympus", locale="en")


class _RecordingParser:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    def __call__(self, text: str, **_: Any) -> datetime | None:
        self.calls.append(text)
        if self.error is not None:
            raise self.error
        return None


def test_input_over_100_chars_is_unparseable_without_asking_dateparser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = _RecordingParser()
    monkeypatch.setattr("dateparser.parse", parser)
    too_long = "t" * (MAX_INPUT_CHARS + 1)
    assert error_of(too_long).reason == "unparseable"
    assert parser.calls == []
    error_of("t" * MAX_INPUT_CHARS)
    assert parser.calls == ["t" * MAX_INPUT_CHARS]


def test_100_chars_after_stripping_are_still_parsed() -> None:
    padded = "tomorrow".ljust(MAX_INPUT_CHARS) + "   "
    assert day_of(padded) == date(2026, 11, 26)


def test_dateparser_exceptions_become_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dateparser.parse", _RecordingParser(RuntimeError("boom")))
    assert error_of("tomorrow") == DateParseError("unparseable", "tomorrow")


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=MAX_INPUT_CHARS + 20))
def test_any_text_gives_a_result_or_a_reason_and_never_raises(text: str) -> None:
    result = parse_day(text, now=NOW, timezone=BERLIN, locale="de_DE")
    if isinstance(result, ParsedDate):
        assert result.day >= date(2026, 11, 25)
    else:
        assert result.reason in ("unparseable", "past")
        assert result.text == text.strip()


@settings(max_examples=30, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ),
    timezone=st.sampled_from([BERLIN, NEW_YORK, TOKYO, "Asia/Kathmandu", "Pacific/Kiritimati"]),
)
def test_today_is_always_the_local_calendar_day(now: datetime, timezone: str) -> None:
    assert day_of("today", now=now, timezone=timezone) == now.astimezone(ZoneInfo(timezone)).date()
