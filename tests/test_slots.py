"""Slot math: hand-checked tables for the tricky calendars, then properties against brute force."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.chat.slots import (
    DateOverride,
    Interval,
    SlotRules,
    WeeklyRule,
    day_bounds_utc,
    days_with_slots,
    free_slots,
    slots_on_day,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"


def utc(text: str) -> datetime:
    """'2026-03-08 06:30' read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def at(tz: str, text: str, fold: int = 0) -> datetime:
    """'2026-03-08 06:30' read as a wall time in `tz`."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)


def walls(slots: Sequence[datetime], tz: str) -> list[str]:
    return [s.astimezone(ZoneInfo(tz)).strftime("%a %H:%M") for s in slots]


def compute(
    rules: Sequence[WeeklyRule],
    start: datetime,
    end: datetime,
    *,
    session: int = 60,
    step: int = 30,
    buffer: int = 0,
    notice: int = 0,
    ahead: int = 400,
    max_per_day: int | None = None,
    overrides: Sequence[DateOverride] = (),
    st_busy: Sequence[Interval] = (),
    student_busy: Sequence[Interval] = (),
    now: datetime | None = None,
    st_tz: str | None = None,
) -> list[datetime]:
    """free_slots with permissive defaults, so each test states only the rule it is about."""
    return free_slots(
        rules,
        overrides,
        SlotRules(session, buffer, notice, ahead, max_per_day, step),
        st_busy,
        student_busy,
        now if now is not None else start - timedelta(days=1),
        start,
        end,
        st_tz if st_tz is not None else rules[0].timezone,
    )


def rule(dow: int, start: str, end: str, tz: str) -> WeeklyRule:
    return WeeklyRule(dow, time.fromisoformat(start), time.fromisoformat(end), tz)


# --- hand-checked tables ----------------------------------------------------------------------


@dataclass(frozen=True)
class DstCase:
    tz: str
    day: str
    start: str
    end: str
    session: int
    expected_utc: list[str]
    expected_local: list[str] = field(default_factory=list)


DST_CASES = {
    # 02:00 EST jumps to 03:00 EDT: 02:00 and 02:30 do not exist, 03:30 would end after 04:00.
    "new_york_spring_forward_skips_the_missing_hour": DstCase(
        NEW_YORK, "2026-03-08", "01:00", "04:00", 60,
        ["2026-03-08 06:00", "2026-03-08 06:30", "2026-03-08 07:00"],
        ["01:00-0500", "01:30-0500", "03:00-0400"],
    ),
    # 02:00 EDT falls back to 01:00 EST: 01:00 and 01:30 are offered once, as EDT.
    "new_york_fall_back_offers_the_repeated_hour_once": DstCase(
        NEW_YORK, "2026-11-01", "01:00", "04:00", 60,
        ["2026-11-01 05:00", "2026-11-01 05:30", "2026-11-01 07:00", "2026-11-01 07:30",
         "2026-11-01 08:00"],
        ["01:00-0400", "01:30-0400", "02:00-0500", "02:30-0500", "03:00-0500"],
    ),
    "berlin_spring_forward_skips_the_missing_hour": DstCase(
        BERLIN, "2026-03-29", "01:00", "04:00", 60,
        ["2026-03-29 00:00", "2026-03-29 00:30", "2026-03-29 01:00"],
        ["01:00+0100", "01:30+0100", "03:00+0200"],
    ),
    "berlin_fall_back_offers_the_repeated_hour_once": DstCase(
        BERLIN, "2026-10-25", "01:00", "04:00", 60,
        ["2026-10-24 23:00", "2026-10-24 23:30", "2026-10-25 00:00", "2026-10-25 00:30",
         "2026-10-25 02:00"],
        ["01:00+0200", "01:30+0200", "02:00+0200", "02:30+0200", "03:00+0100"],
    ),
    # Lord Howe moves only 30 minutes: 02:00 LHDT -> 01:30 LHST, so 01:30 repeats.
    "lord_howe_half_hour_fall_back_offers_01_30_once": DstCase(
        LORD_HOWE, "2026-04-05", "01:00", "04:00", 30,
        ["2026-04-04 14:00", "2026-04-04 14:30", "2026-04-04 15:30", "2026-04-04 16:00",
         "2026-04-04 16:30", "2026-04-04 17:00"],
        ["01:00+1100", "01:30+1100", "02:00+1030", "02:30+1030", "03:00+1030", "03:30+1030"],
    ),
    # 02:00 LHST -> 02:30 LHDT: only 02:00 is missing from a 30-minute grid.
    "lord_howe_half_hour_spring_forward_skips_02_00": DstCase(
        LORD_HOWE, "2026-10-04", "01:00", "04:00", 30,
        ["2026-10-03 14:30", "2026-10-03 15:00", "2026-10-03 15:30", "2026-10-03 16:00",
         "2026-10-03 16:30"],
        ["01:00+1030", "01:30+1030", "02:30+1100", "03:00+1100", "03:30+1100"],
    ),
    # Window edges on DST wall times: a missing end means the jump, an ambiguous one the first.
    "window_ending_inside_the_gap_ends_at_the_jump": DstCase(
        NEW_YORK, "2026-03-08", "00:00", "02:30", 60,
        ["2026-03-08 05:00", "2026-03-08 05:30", "2026-03-08 06:00"],
    ),
    "window_starting_inside_the_gap_opens_at_the_jump": DstCase(
        NEW_YORK, "2026-03-08", "02:30", "05:00", 60,
        ["2026-03-08 07:00", "2026-03-08 07:30", "2026-03-08 08:00"],
    ),
    "window_ending_at_an_ambiguous_time_ends_at_its_first_occurrence": DstCase(
        NEW_YORK, "2026-11-01", "00:00", "01:30", 30,
        ["2026-11-01 04:00", "2026-11-01 04:30", "2026-11-01 05:00"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", DST_CASES.values(), ids=DST_CASES.keys())
def test_slots_shift_with_dst_transitions(case: DstCase) -> None:
    day = date.fromisoformat(case.day)
    got = compute(
        [rule(day.weekday(), case.start, case.end, case.tz)],
        utc(f"{day - timedelta(days=1)} 00:00"),
        utc(f"{day + timedelta(days=1)} 23:00"),
        session=case.session,
    )
    assert got == [utc(s) for s in case.expected_utc]
    if case.expected_local:
        assert [s.astimezone(ZoneInfo(case.tz)).strftime("%H:%M%z") for s in got] == (
            case.expected_local
        )


def test_slots_in_a_plain_berlin_week_are_summer_time_utc() -> None:
    rules = [rule(d, "09:00", "12:00", BERLIN) for d in (MON, TUE, WED, THU, FRI)]
    got = compute(rules, at(BERLIN, "2026-06-15 00:00"), at(BERLIN, "2026-06-22 00:00"), step=60)
    assert len(got) == 15
    assert got[:3] == [utc("2026-06-15 07:00"), utc("2026-06-15 08:00"), utc("2026-06-15 09:00")]
    assert got[-1] == utc("2026-06-19 09:00")
    assert all(s.tzinfo is UTC for s in got)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Asia/Kolkata", ["2026-06-15 03:30", "2026-06-15 04:00", "2026-06-15 04:30"]),
        ("Asia/Kathmandu", ["2026-06-15 03:15", "2026-06-15 03:45", "2026-06-15 04:15"]),
    ],
    ids=["kolkata_is_plus_05_30", "kathmandu_is_plus_05_45"],
)
def test_slots_in_fractional_offset_zones_land_on_the_right_utc_minute(
    tz: str, expected: list[str]
) -> None:
    got = compute([rule(MON, "09:00", "11:00", tz)], utc("2026-06-14 00:00"), utc("2026-06-16"))
    assert got == [utc(s) for s in expected]


def test_slots_of_availability_ending_at_midnight_stop_at_23_00_for_an_hour() -> None:
    got = compute([rule(MON, "18:00", "00:00", BERLIN)], utc("2026-06-14"), utc("2026-06-17"))
    assert walls(got, BERLIN)[0] == "Mon 18:00"
    assert walls(got, BERLIN)[-1] == "Mon 23:00"
    assert len(got) == 11


def test_slots_of_availability_crossing_midnight_continue_into_saturday() -> None:
    got = compute(
        [rule(FRI, "22:00", "02:00", BERLIN)], utc("2026-06-18"), utc("2026-06-21"), step=60
    )
    assert walls(got, BERLIN) == ["Fri 22:00", "Fri 23:00", "Sat 00:00", "Sat 01:00"]


def test_slots_of_a_tokyo_monday_are_a_los_angeles_sunday() -> None:
    got = compute([rule(MON, "09:00", "10:00", "Asia/Tokyo")], utc("2026-06-13"), utc("2026-06-20"))
    assert got == [utc("2026-06-15 00:00")]
    la = "America/Los_Angeles"
    assert days_with_slots(got, la) == {date(2026, 6, 14)}
    assert days_with_slots(got, "Asia/Tokyo") == {date(2026, 6, 15)}
    assert slots_on_day(got, date(2026, 6, 14), la) == got
    assert slots_on_day(got, date(2026, 6, 15), la) == []
    assert walls(got, la) == ["Sun 17:00"]


BOOKING = Interval(at(BERLIN, "2026-06-15 10:00"), at(BERLIN, "2026-06-15 11:00"))
MONDAY_8_TO_14 = [rule(MON, "08:00", "14:00", BERLIN)]
MONDAY = (at(BERLIN, "2026-06-15 00:00"), at(BERLIN, "2026-06-16 00:00"))
QUARTERS = [f"Mon {h:02}:{m:02}" for h in range(8, 14) for m in (0, 15, 30, 45)][:-3]


def test_slots_keep_the_st_buffer_around_a_booking() -> None:
    # Conflict iff s < 11:15 and s + 75min > 10:00, i.e. starts 09:00 .. 11:00 are blocked.
    got = compute(MONDAY_8_TO_14, *MONDAY, step=15, buffer=15, st_busy=[BOOKING])
    blocked = [f"Mon {h:02}:{m:02}" for h in (9, 10) for m in (0, 15, 30, 45)] + ["Mon 11:00"]
    assert walls(got, BERLIN) == [w for w in QUARTERS if w not in blocked]
    assert "Mon 08:45" in walls(got, BERLIN)
    assert "Mon 11:15" in walls(got, BERLIN)


def test_slots_avoid_the_students_own_sessions_without_a_buffer() -> None:
    got = compute(MONDAY_8_TO_14, *MONDAY, step=15, buffer=15, student_busy=[BOOKING])
    blocked = ["Mon 09:15", "Mon 09:30", "Mon 09:45"] + [f"Mon 10:{m:02}" for m in (0, 15, 30, 45)]
    assert walls(got, BERLIN) == [w for w in QUARTERS if w not in blocked]


@pytest.mark.parametrize(
    ("now", "first"),
    [("2026-06-15 08:00", "Mon 10:00"), ("2026-06-15 08:01", "Mon 10:30")],
    ids=["notice_boundary_is_inclusive", "one_minute_later_skips_to_the_next_step"],
)
def test_slots_respect_minimum_notice(now: str, first: str) -> None:
    got = compute(MONDAY_8_TO_14, *MONDAY, notice=120, now=at(BERLIN, now))
    assert walls(got, BERLIN)[0] == first


def test_slots_stop_before_max_days_ahead() -> None:
    daily = [rule(d, "09:00", "10:00", BERLIN) for d in range(7)]
    now = at(BERLIN, "2026-06-15 09:00")
    got = compute(daily, now, now + timedelta(days=7), ahead=2, now=now)
    # Wed 09:00 is exactly now + 2 days and therefore excluded.
    assert walls(got, BERLIN) == ["Mon 09:00", "Tue 09:00"]


def test_slots_skip_st_local_days_that_reached_max_per_day() -> None:
    tokyo = "Asia/Tokyo"
    daily = [rule(d, "09:00", "18:00", tokyo) for d in range(7)]
    busy = [
        # Tue 00:30 JST is still Monday in UTC: counting must use the ST's zone.
        Interval(at(tokyo, "2026-06-16 00:30"), at(tokyo, "2026-06-16 01:30")),
        Interval(at(tokyo, "2026-06-16 20:00"), at(tokyo, "2026-06-16 21:00")),
        Interval(at(tokyo, "2026-06-17 12:00"), at(tokyo, "2026-06-17 13:00")),
    ]
    got = compute(
        daily, at(tokyo, "2026-06-15"), at(tokyo, "2026-06-18"), step=60, max_per_day=2,
        st_busy=busy,
    )  # fmt: skip
    days = [w.split()[0] for w in walls(got, tokyo)]
    assert days.count("Mon") == 9
    assert days.count("Tue") == 0
    assert days.count("Wed") == 8  # one session left room for another, minus its own hour


def test_slots_vanish_on_a_day_off_but_a_crossing_window_from_the_day_before_stays() -> None:
    rules = [rule(TUE, "22:00", "02:00", BERLIN), rule(WED, "09:00", "12:00", BERLIN)]
    off = [DateOverride(date(2026, 6, 17), BERLIN)]
    got = compute(rules, utc("2026-06-15"), utc("2026-06-19"), step=60, overrides=off)
    assert walls(got, BERLIN) == ["Tue 22:00", "Tue 23:00", "Wed 00:00", "Wed 01:00"]


def test_slots_follow_special_hours_instead_of_the_weekly_rule_for_that_date_only() -> None:
    rules = [rule(THU, "09:00", "12:00", BERLIN)]
    special = [DateOverride(date(2026, 6, 18), BERLIN, time(13), time(15))]
    got = compute(rules, utc("2026-06-15"), utc("2026-06-26"), step=60, overrides=special)
    assert [s.astimezone(ZoneInfo(BERLIN)).strftime("%d %H:%M") for s in got] == [
        "18 13:00", "18 14:00", "25 09:00", "25 10:00", "25 11:00",
    ]  # fmt: skip


def test_slots_on_a_day_off_ignore_special_hours_for_the_same_date() -> None:
    rules = [rule(THU, "09:00", "12:00", BERLIN)]
    both = [
        DateOverride(date(2026, 6, 18), BERLIN, time(13), time(15)),
        DateOverride(date(2026, 6, 18), BERLIN),
    ]
    assert compute(rules, utc("2026-06-15"), utc("2026-06-19"), overrides=both) == []


def test_slots_on_a_day_off_entered_in_another_zone_cover_that_zones_day() -> None:
    # New York's Wednesday runs from Wed 06:00 to Thu 06:00 in Berlin; Thu 05:00 starts inside it.
    rules = [
        rule(WED, "09:00", "10:00", BERLIN),
        rule(THU, "05:00", "06:00", BERLIN),
        rule(THU, "06:00", "08:00", BERLIN),
    ]
    off = [DateOverride(date(2026, 6, 17), NEW_YORK)]
    got = compute(rules, utc("2026-06-15"), utc("2026-06-19"), overrides=off)
    assert walls(got, BERLIN) == ["Thu 06:00", "Thu 06:30", "Thu 07:00"]


def test_slots_of_overlapping_and_touching_windows_are_merged_without_duplicates() -> None:
    rules = [
        rule(MON, "09:00", "12:00", BERLIN),
        rule(MON, "09:00", "12:00", BERLIN),
        rule(MON, "12:00", "13:00", BERLIN),
        # The same UTC span again from London: other zones are deduplicated, not merged.
        rule(MON, "08:00", "11:00", "Europe/London"),
    ]
    got = compute(rules, utc("2026-06-14"), utc("2026-06-16"))
    assert walls(got, BERLIN) == [f"Mon {h:02}:{m:02}" for h in range(9, 12) for m in (0, 30)] + [
        "Mon 12:00"
    ]


@pytest.mark.parametrize(
    ("day", "tz", "bounds"),
    [
        ("2026-03-29", BERLIN, ("2026-03-28 23:00", "2026-03-29 22:00")),
        ("2026-11-01", NEW_YORK, ("2026-11-01 04:00", "2026-11-02 05:00")),
        ("2026-03-08", "America/Havana", ("2026-03-08 05:00", "2026-03-09 04:00")),
        ("2026-04-04", "America/Santiago", ("2026-04-04 03:00", "2026-04-05 04:00")),
    ],
    ids=["berlin_day_has_23_hours", "new_york_day_has_25_hours",
         "havana_day_without_midnight_starts_at_the_jump",
         "santiago_day_ending_in_a_repeated_hour_lasts_25_hours"],
)  # fmt: skip
def test_day_bounds_are_real_local_midnights(day: str, tz: str, bounds: tuple[str, str]) -> None:
    assert day_bounds_utc(date.fromisoformat(day), tz) == (utc(bounds[0]), utc(bounds[1]))


def test_slots_reject_naive_datetimes() -> None:
    naive = datetime(2026, 6, 15)
    with pytest.raises(ValueError, match="naive"):
        compute(MONDAY_8_TO_14, naive, naive + timedelta(days=1), now=MONDAY[0])


# --- properties against an independent brute force ------------------------------------------

US_DST = [date(2026, 3, 8), date(2026, 11, 1)]
SUMMER = date(2026, 6, 15)
# Each zone with the local dates of its 2026 clock changes (plain zones get an ordinary Monday).
ZONE_DAYS = {
    BERLIN: [date(2026, 3, 29), date(2026, 10, 25)],
    NEW_YORK: US_DST,
    "America/Los_Angeles": US_DST,
    "America/St_Johns": US_DST,
    "America/Havana": US_DST,  # at midnight: 00:00 does not exist / happens twice
    "America/Santiago": [date(2026, 4, 5), date(2026, 9, 6)],  # at 24:00 Saturday
    LORD_HOWE: [date(2026, 4, 5), date(2026, 10, 4)],
    "Pacific/Chatham": [date(2026, 4, 5), date(2026, 9, 27)],  # +12:45 / +13:45
    "Asia/Kolkata": [SUMMER],
    "Asia/Kathmandu": [SUMMER],
    "Asia/Tokyo": [SUMMER],
    "UTC": [SUMMER],
}
ZONES = list(ZONE_DAYS)


@dataclass(frozen=True)
class Scenario:
    tz: str
    rules: list[WeeklyRule]
    overrides: list[DateOverride]
    settings: SlotRules
    st_busy: list[Interval]
    student_busy: list[Interval]
    now: datetime
    start: datetime
    end: datetime

    def run(self, shift_tz: str | None = None) -> list[datetime]:
        def view(dt: datetime) -> datetime:
            return dt if shift_tz is None else dt.astimezone(ZoneInfo(shift_tz))

        return free_slots(
            self.rules,
            self.overrides,
            self.settings,
            [Interval(view(b.start), view(b.end)) for b in self.st_busy],
            [Interval(view(b.start), view(b.end)) for b in self.student_busy],
            view(self.now),
            view(self.start),
            view(self.end),
            self.tz,
        )


def _busy(origin: datetime, days: int) -> st.SearchStrategy[list[Interval]]:
    one = st.tuples(
        st.integers(-24 * 12, (days + 1) * 24 * 12), st.sampled_from([15, 30, 60, 90, 120])
    ).map(
        lambda t: Interval(origin + timedelta(minutes=5 * t[0]),
                           origin + timedelta(minutes=5 * t[0] + t[1]))
    )  # fmt: skip
    return st.lists(one, max_size=12)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    tz = draw(st.sampled_from(ZONES))
    dst_day = draw(st.sampled_from([*ZONE_DAYS[tz], SUMMER]))
    # Lean towards the small hours of transition days, where the interesting cases live.
    hour = st.one_of(st.integers(0, 4), st.integers(20, 23), st.integers(0, 23)).map(time)
    weekday = st.one_of(st.sampled_from([(dst_day.weekday() + n) % 7 for n in (-1, 0)]),
                        st.integers(0, 6))  # fmt: skip
    rules = draw(
        st.lists(st.builds(WeeklyRule, weekday, hour, hour, st.just(tz)), min_size=1, max_size=6)
    )
    anchor = dst_day + timedelta(days=draw(st.integers(-2, 1)))
    days = draw(st.integers(1, 5))
    start = datetime.combine(anchor, time(0), tzinfo=UTC) + timedelta(
        hours=draw(st.integers(0, 23))
    )
    end = start + timedelta(days=days)
    override = st.builds(
        DateOverride,
        st.integers(-1, days + 1).map(lambda n: anchor + timedelta(days=n)),
        st.just(tz),
        st.none() | hour,
        hour,
    )
    overrides = draw(st.lists(override, max_size=3))
    rules_settings = SlotRules(
        session_minutes=draw(st.sampled_from([30, 45, 60, 90])),
        buffer_minutes=draw(st.sampled_from([0, 10, 15])),
        min_notice_minutes=draw(st.sampled_from([0, 120])),
        max_days_ahead=draw(st.sampled_from([1, 3, 60, 60])),
        max_per_day=draw(st.sampled_from([None, 1, 2, 3])),
        step_minutes=draw(st.sampled_from([15, 30, 60])),
    )
    now = start - timedelta(minutes=draw(st.integers(-6 * 60, 24 * 60)))
    origin = start - timedelta(days=1)
    return Scenario(
        tz, rules, overrides, rules_settings, draw(_busy(origin, days)), draw(_busy(origin, days)),
        now, start, end,
    )  # fmt: skip


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """First instant whose wall clock reads `wall` or later, by scanning minutes."""
    while True:
        u = wall.replace(tzinfo=zone).astimezone(UTC)
        if u.astimezone(zone).replace(tzinfo=None) == wall:
            return u
        wall += timedelta(minutes=1)


def _brute_windows(sc: Scenario) -> list[tuple[datetime, datetime, datetime, datetime]]:
    """(start UTC, end UTC, start wall, end wall) per window, straight from the definitions."""
    zone = ZoneInfo(sc.tz)
    first = sc.start.astimezone(zone).date() - timedelta(days=2)
    out = []
    for n in range((sc.end.astimezone(zone).date() - first).days + 2):
        d = first + timedelta(days=n)
        todays = [o for o in sc.overrides if o.date == d]
        if any(o.start_time is None or o.end_time is None for o in todays):
            spans = []
        elif todays:
            spans = [(o.start_time, o.end_time) for o in todays]
        else:
            spans = [(r.start_time, r.end_time) for r in sc.rules if r.day_of_week == d.weekday()]
        for a, b in spans:
            assert a is not None and b is not None
            sw = datetime.combine(d, a)
            ew = datetime.combine(d if b > a else d + timedelta(days=1), b)
            ws, we = _instant(sw, zone), _instant(ew, zone)
            if ws < we:
                out.append((ws, we, sw, ew))
    return out


def _allowed(sc: Scenario, s: datetime) -> bool:
    """Every exclusion rule, checked one by one."""
    cfg = sc.settings
    session, buffer = timedelta(minutes=cfg.session_minutes), timedelta(minutes=cfg.buffer_minutes)
    if not (max(sc.start, sc.now + timedelta(minutes=cfg.min_notice_minutes)) <= s < sc.end):
        return False
    if s >= sc.now + timedelta(days=cfg.max_days_ahead):
        return False
    if any(s < b.end + buffer and s + session + buffer > b.start for b in sc.st_busy):
        return False
    if any(s < b.end and s + session > b.start for b in sc.student_busy):
        return False
    if cfg.max_per_day is not None:
        zone = ZoneInfo(sc.tz)
        day = s.astimezone(zone).date()
        if sum(b.start.astimezone(zone).date() == day for b in sc.st_busy) >= cfg.max_per_day:
            return False
    return True


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_slots_are_sorted_unique_utc_and_clear_of_every_booking(sc: Scenario) -> None:
    got = sc.run()
    assert all(s.tzinfo is UTC for s in got)
    assert got == sorted(set(got))
    assert all(_allowed(sc, s) for s in got)


@PROPERTY
@given(scenarios())
def test_slots_lie_inside_availability_and_match_a_brute_force_enumeration(sc: Scenario) -> None:
    zone = ZoneInfo(sc.tz)
    session = timedelta(minutes=sc.settings.session_minutes)
    step = timedelta(minutes=sc.settings.step_minutes)
    windows = _brute_windows(sc)
    got = sc.run()

    # Every slot fits in the union of windows (touching windows may share a session).
    union: list[list[datetime]] = []
    for ws, we, _, _ in sorted(windows):
        if union and ws <= union[-1][1]:
            union[-1][1] = max(union[-1][1], we)
        else:
            union.append([ws, we])
    for s in got:
        assert any(ws <= s and s + session <= we for ws, we in union), s

    # Every grid time that exists, fits one window and passes the exclusions is offered.
    expected = set()
    for ws, we, sw, ew in windows:
        wall = sw
        while wall < ew:
            s = wall.replace(tzinfo=zone).astimezone(UTC)
            exists = s.astimezone(zone).replace(tzinfo=None) == wall
            if exists and ws <= s and s + session <= we and _allowed(sc, s):
                expected.add(s)
            wall += step
    assert expected <= set(got)


@PROPERTY
@given(scenarios())
def test_slots_start_on_existing_first_occurrence_wall_times_of_the_grid(sc: Scenario) -> None:
    zone = ZoneInfo(sc.tz)
    for s in sc.run():
        wall = s.astimezone(zone).replace(tzinfo=None)
        # fold=0 maps back to s: the wall exists and s is its first occurrence.
        assert wall.replace(tzinfo=zone).astimezone(UTC) == s
        # Rules start on the hour and steps divide an hour, so every wall is on the step grid.
        assert (wall.hour * 60 + wall.minute) % sc.settings.step_minutes == 0
        assert wall.second == wall.microsecond == 0


@PROPERTY
@given(scenarios(), st.sampled_from(ZONES))
def test_slots_do_not_depend_on_the_zone_inputs_are_expressed_in(sc: Scenario, viewer: str) -> None:
    assert sc.run(shift_tz=viewer) == sc.run()


@PROPERTY
@given(scenarios(), st.sampled_from(ZONES))
def test_slots_grouped_by_viewer_day_partition_the_slots(sc: Scenario, viewer: str) -> None:
    got = sc.run()
    days = days_with_slots(got, viewer)
    regrouped = sorted(s for d in days for s in slots_on_day(got, d, viewer))
    assert regrouped == got
    for d in days:
        lo, hi = day_bounds_utc(d, viewer)
        assert all(lo <= s < hi for s in slots_on_day(got, d, viewer))
