"""Bookable slot arithmetic: availability rules in, free UTC slot starts out.

Everything after input normalisation runs on UTC instants, so the answer cannot depend on the
zone a caller happens to express `now` or the range in. Wall-clock rules touch time zones only
at window edges and, when a window straddles a DST change, per candidate.

Boundary rule used throughout (window edges and day bounds): a wall time stands for the first
instant at which the local clock reads that time or later. So an ambiguous wall time (fall-back)
means its first occurrence (fold=0), and a nonexistent one (spring-forward gap) means the
instant of the jump, e.g. New York 2026-03-08 02:30 -> 03:00 EDT (07:00Z). A window ending at
02:30 on that day therefore ends at the jump; one starting then opens at the jump.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DateOverride",
    "Interval",
    "SlotRules",
    "WeeklyRule",
    "day_bounds_utc",
    "days_with_slots",
    "free_slots",
    "slots_on_day",
]

_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
# Datetimes have microsecond resolution, so an open lower bound `a < s` is exactly `s >= a + 1us`;
# this lets every exclusion share one half-open representation.
_TICK = timedelta(microseconds=1)
_MIDNIGHT = time(0)


@dataclass(frozen=True)
class WeeklyRule:
    """A row of the `availability` table: a recurring wall-clock window in the ST's zone.

    end_time <= start_time means the window runs into the next day (Fri 22:00-02:00 ends Sat
    02:00); end_time == time(0) therefore means "until midnight", and start == end is 24 hours.
    """

    day_of_week: int  # 0 = Monday ... 6 = Sunday, as date.weekday()
    start_time: time
    end_time: time
    timezone: str  # IANA name


@dataclass(frozen=True)
class DateOverride:
    """A day off (both times None) or special hours replacing the weekly hours of one date.

    Same midnight/crossing rules as WeeklyRule. Only one time set counts as a day off: when in
    doubt we offer nothing rather than invent hours.
    """

    date: date  # local date in `timezone`
    timezone: str
    start_time: time | None = None
    end_time: time | None = None


@dataclass(frozen=True)
class Interval:
    """A booked session [start, end); aware, expected in UTC (other zones are converted)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class SlotRules:
    """Per-ST booking policy."""

    session_minutes: int
    buffer_minutes: int = 15
    min_notice_minutes: int = 120
    max_days_ahead: int = 60
    max_per_day: int | None = None  # sessions per ST-local day (None = unlimited)
    step_minutes: int = 30  # wall-clock spacing of candidate starts within a window


@dataclass(slots=True)
class _Window:
    # UTC span plus the walls (see below) that produced it: candidates are stepped in wall time.
    start: datetime
    end: datetime
    start_wall: datetime
    end_wall: datetime
    start_exists: bool


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    # ZoneInfo has its own cache, but the constructor path is slow enough to show up per call.
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def _utc(dt: datetime) -> datetime:
    # One shared tzinfo object keeps every later comparison on CPython's fast path.
    if dt.tzinfo is UTC:
        return dt
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {dt!r}")
    return dt.astimezone(UTC)


# Wall-clock times are carried as datetimes *labelled* UTC ("walls"): wall arithmetic and
# comparisons then stay on CPython's cheap same-tzinfo path, `wall - offset` is directly the UTC
# instant, and ZoneInfo.utcoffset() reads only a datetime's fields and fold, not its tzinfo.


def _offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    off = zone.utcoffset(wall)
    if off is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"no UTC offset in {zone} for {wall!r}")
    return off


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=UTC)


def _resolve(wall: datetime, wall_fold1: datetime, zone: ZoneInfo) -> tuple[datetime, bool]:
    """UTC instant the clock first reads >= `wall`, and whether `wall` itself exists.

    The caller passes the fold=1 twin because building it is the expensive part.
    """
    off0 = _offset(zone, wall)
    off1 = _offset(zone, wall_fold1)
    if off0 >= off1:
        # Unique, or ambiguous where fold=0 is the first occurrence.
        return wall - off0, True
    # In a gap fold=1 maps before the jump and fold=0 after it; bisect whole seconds for the
    # jump itself (tzdata transitions sit on whole seconds, the clock is monotone in between).
    before = wall - off1
    lo, hi = 0, int((off1 - off0) / _SECOND)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(before + mid * _SECOND, zone) >= wall:
            hi = mid
        else:
            lo = mid
    return before + hi * _SECOND, False


def _resolve_time(day: date, t: time, zone: ZoneInfo) -> tuple[datetime, bool]:
    return _resolve(
        datetime.combine(day, t, tzinfo=UTC),
        datetime.combine(day, t.replace(fold=1), tzinfo=UTC),
        zone,
    )


# A rule's times with their fold=1 twins, prepared once per call rather than once per day.
_Times = tuple[time, time, time, time]


def _prepare(start: time, end: time) -> _Times:
    start = start.replace(tzinfo=None, fold=0)
    end = end.replace(tzinfo=None, fold=0)
    return start, start.replace(fold=1), end, end.replace(fold=1)


def _make_window(day: date, times: _Times, zone: ZoneInfo) -> _Window | None:
    start, start1, end, end1 = times
    end_day = day if end > start else day + _DAY
    start_wall = datetime.combine(day, start, tzinfo=UTC)
    end_wall = datetime.combine(end_day, end, tzinfo=UTC)
    start_utc, exists = _resolve(start_wall, datetime.combine(day, start1, tzinfo=UTC), zone)
    end_utc, _ = _resolve(end_wall, datetime.combine(end_day, end1, tzinfo=UTC), zone)
    if end_utc <= start_utc:  # a window that lies wholly inside a DST gap
        return None
    return _Window(start_utc, end_utc, start_wall, end_wall, exists)


def _local_days(zone: ZoneInfo, lo: datetime, hi: datetime) -> list[date]:
    # A window is under 26 real hours, so ones starting two local days before `lo` can still reach
    # into the range; ones starting after `hi`'s local date cannot.
    first = (lo - 2 * _DAY).astimezone(zone).date()
    last = hi.astimezone(zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _covers(starts: list[datetime], ends: list[datetime], instant: datetime) -> bool:
    # Half-open, sorted, disjoint intervals.
    i = bisect_right(starts, instant) - 1
    return i >= 0 and instant < ends[i]


def _merge(spans: list[tuple[datetime, datetime]]) -> tuple[list[datetime], list[datetime]]:
    spans.sort(key=lambda span: span[0])  # keyed: much cheaper than comparing tuples
    starts: list[datetime] = []
    ends: list[datetime] = []
    for a, b in spans:
        if a >= b:
            continue
        if ends and a <= ends[-1]:
            if b > ends[-1]:
                ends[-1] = b
        else:
            starts.append(a)
            ends.append(b)
    return starts, ends


def _windows(
    rules: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    lo: datetime,
    hi: datetime,
) -> dict[str, list[_Window]]:
    """Windows per zone, overrides applied.

    An override is matched by the UTC span of its own local day rather than by zone name, so a
    day off entered in another zone (ST travelling) still removes the weekly windows that start
    inside that day; with a single zone this is exactly "windows that start on date d". A day off
    wins over special hours for the same day.
    """
    by_zone: dict[str, list[_Window]] = {}
    override_days: list[tuple[datetime, datetime]] = []
    off_days: list[tuple[datetime, datetime]] = []
    specials: list[tuple[str, _Window]] = []
    for o in overrides:
        zone = _zone(o.timezone)
        first = (lo - 3 * _DAY).astimezone(zone).date()
        if not first <= o.date <= (hi + _DAY).astimezone(zone).date():
            continue
        bounds = day_bounds_utc(o.date, o.timezone)
        override_days.append(bounds)
        if o.start_time is None or o.end_time is None:
            off_days.append(bounds)
        else:
            win = _make_window(o.date, _prepare(o.start_time, o.end_time), zone)
            if win is not None:
                specials.append((o.timezone, win))
    od_starts, od_ends = _merge(override_days)
    off_starts, off_ends = _merge(off_days)

    weekly: dict[str, dict[int, list[_Times]]] = {}
    for r in rules:
        weekly.setdefault(r.timezone, {}).setdefault(r.day_of_week, []).append(
            _prepare(r.start_time, r.end_time)
        )
    for tz_name, per_weekday in weekly.items():
        zone = _zone(tz_name)
        out = by_zone.setdefault(tz_name, [])
        for day in _local_days(zone, lo, hi):
            for times in per_weekday.get(day.weekday(), ()):
                win = _make_window(day, times, zone)
                if win is not None and not _covers(od_starts, od_ends, win.start):
                    out.append(win)
    for tz_name, win in specials:
        if not _covers(off_starts, off_ends, win.start):
            by_zone.setdefault(tz_name, []).append(win)
    return by_zone


def _merge_windows(wins: list[_Window]) -> list[_Window]:
    # Merging (same zone only) lets a session straddle two touching windows; the merged window
    # keeps the earlier window's start as the grid anchor.
    wins.sort(key=lambda w: w.start)
    merged: list[_Window] = []
    for w in wins:
        last = merged[-1] if merged else None
        if last is not None and w.start <= last.end:
            if w.end > last.end:
                last.end = w.end
                last.end_wall = w.end_wall
        else:
            merged.append(_Window(w.start, w.end, w.start_wall, w.end_wall, w.start_exists))
    return merged


def _exclusions(
    settings: SlotRules,
    st_busy: Sequence[Interval],
    student_busy: Sequence[Interval],
    st_timezone: str,
    lo: datetime,
    hi: datetime,
) -> tuple[list[datetime], list[datetime]]:
    """Every forbidden slot start as sorted, disjoint half-open spans."""
    session = timedelta(minutes=settings.session_minutes)
    buffer = timedelta(minutes=settings.buffer_minutes)
    # Conflict iff s < end + buffer and s + session + buffer > start, i.e. s in the open
    # interval (start - session - buffer, end + buffer): mirrors the DB exclusion constraint.
    st_lead = session + buffer - _TICK
    stu_lead = session - _TICK
    st = [(_utc(b.start), _utc(b.end)) for b in st_busy]
    spans = [(a - st_lead, b + buffer) for a, b in st]
    spans += [(_utc(b.start) - stu_lead, _utc(b.end)) for b in student_busy]
    # Busy lists may reach far beyond the range; only the relevant ones are worth sorting.
    spans = [span for span in spans if span[1] > lo and span[0] < hi]
    busy_starts = [a for a, _ in st]
    if settings.max_per_day is not None and busy_starts:
        busy_starts.sort()
        zone = _zone(st_timezone)
        first = lo.astimezone(zone).date()
        ndays = (hi.astimezone(zone).date() - first).days + 2
        edges = [_resolve_time(first + i * _DAY, _MIDNIGHT, zone)[0] for i in range(ndays)]
        for i in range(ndays - 1):
            a, b = edges[i], edges[i + 1]
            if bisect_left(busy_starts, b) - bisect_left(busy_starts, a) >= settings.max_per_day:
                spans.append((a, b))
    return _merge(spans)


def free_slots(
    rules: Sequence[WeeklyRule],
    overrides: Sequence[DateOverride],
    settings: SlotRules,
    st_busy: Sequence[Interval],
    student_busy: Sequence[Interval],
    now: datetime,
    range_start: datetime,
    range_end: datetime,
    st_timezone: str,
) -> list[datetime]:
    """Sorted, unique UTC starts a student may book in [range_start, range_end).

    max_days_ahead counts real 24-hour days from `now`; max_per_day counts st_busy starts per
    local date of `st_timezone`. Windows are merged per zone; zones are deduplicated at the end.
    """
    if settings.session_minutes <= 0 or settings.step_minutes <= 0:
        raise ValueError("session_minutes and step_minutes must be positive")
    if settings.buffer_minutes < 0:
        raise ValueError("buffer_minutes must not be negative")
    now_utc = _utc(now)
    lo = max(_utc(range_start), now_utc + timedelta(minutes=settings.min_notice_minutes))
    hi = min(_utc(range_end), now_utc + timedelta(days=settings.max_days_ahead))
    if lo >= hi or (settings.max_per_day is not None and settings.max_per_day <= 0):
        return []
    session = timedelta(minutes=settings.session_minutes)
    step = timedelta(minutes=settings.step_minutes)
    ex_starts, ex_ends = _exclusions(settings, st_busy, student_busy, st_timezone, lo, hi)
    by_zone = _windows(rules, overrides, lo, hi)

    slots: list[datetime] = []
    for tz_name, wins in by_zone.items():
        zone = _zone(tz_name)
        for w in _merge_windows(wins):
            if w.end - session < lo or w.start >= hi:
                continue
            if w.start_exists and w.start_wall - w.start == w.end_wall - w.end:
                _emit_fixed(w, session, step, lo, hi, ex_starts, ex_ends, slots)
            else:
                _emit_dst(w, zone, session, step, lo, hi, ex_starts, ex_ends, slots)
    if len(by_zone) > 1:
        return sorted(set(slots))
    return slots


def _emit_fixed(
    w: _Window,
    session: timedelta,
    step: timedelta,
    lo: datetime,
    hi: datetime,
    ex_starts: list[datetime],
    ex_ends: list[datetime],
    out: list[datetime],
) -> None:
    """Window with one UTC offset throughout: wall steps are UTC steps, so emit arithmetic
    runs between exclusions instead of testing each candidate."""
    # Same offset at both ends is taken to mean no transition inside: tzdata has no pair of
    # opposite transitions less than a day apart in the years this serves.
    base = w.start
    cur = max(base, lo)
    stop = min(hi, w.end - session + _TICK)  # s + session <= end
    i = bisect_right(ex_ends, cur)
    n = len(ex_starts)
    while cur < stop:
        if i < n and ex_starts[i] <= cur:
            cur = ex_ends[i]
            i += 1
            continue
        seg_end = min(stop, ex_starts[i]) if i < n else stop
        first = -((base - cur) // step)  # ceil((cur - base) / step)
        last = -((base - seg_end) // step)
        out.extend(base + k * step for k in range(first, last))
        cur = seg_end


def _emit_dst(
    w: _Window,
    zone: ZoneInfo,
    session: timedelta,
    step: timedelta,
    lo: datetime,
    hi: datetime,
    ex_starts: list[datetime],
    ex_ends: list[datetime],
    out: list[datetime],
) -> None:
    """Window straddling a transition: step in wall time, drop nonexistent walls, take
    ambiguous ones once (first occurrence), and keep only sessions that fit in real time."""
    latest = w.end - session
    wall = w.start_wall
    while wall < w.end_wall:
        off0 = _offset(zone, wall)
        if off0 >= _offset(zone, wall.replace(fold=1)):
            s = wall - off0
            if w.start <= s <= latest and lo <= s < hi and not _covers(ex_starts, ex_ends, s):
                out.append(s)
        wall += step


def day_bounds_utc(day: date, tz: str) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) in UTC; a missing midnight starts at the jump."""
    zone = _zone(tz)
    return _resolve_time(day, _MIDNIGHT, zone)[0], _resolve_time(day + _DAY, _MIDNIGHT, zone)[0]


def days_with_slots(slots: Iterable[datetime], viewer_tz: str) -> set[date]:
    """Viewer-local dates that have a slot, for greying out calendar days."""
    zone = _zone(viewer_tz)
    return {_utc(s).astimezone(zone).date() for s in slots}


def slots_on_day(slots: Iterable[datetime], day: date, viewer_tz: str) -> list[datetime]:
    """Slots on one viewer-local date; consistent with days_with_slots by construction."""
    zone = _zone(viewer_tz)
    return sorted(u for u in map(_utc, slots) if u.astimezone(zone).date() == day)
