"""The flow's Catalog port over the database: repositories plus the pure slot math.

One instance lives for one incoming event, inside that event's transaction, so it may cache;
what every event reads and rarely changes (courses, ST cards, the STs' calendars, a student's
own sessions) it reads through the process's `CatalogCache` for a few seconds
(engine/chat/calendar_cache.py says why that is safe). The booking itself reads afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from engine.booking import (
    Booked,
    BookingRequest,
    NoSessionsLeft,
    NotEnrolled,
    Outcome,
    RefusalFacts,
    ScheduledLater,
    SlotTaken,
    STUnavailable,
    book_session,
    refusal,
)
from engine.chat.calendar_cache import DEFAULT_TTL, DIRECTORY_TTL, Shelf
from engine.chat.slots import DateOverride, Interval, SlotRules, WeeklyRule, free_slots
from engine.chat.views import CourseInfo, TeacherInfo, Viewer
from storage.jobs import Job
from storage.records import CourseRecord, TeacherCard
from storage.uow import UnitOfWork

# Busy intervals and overrides are read with this margin so that day limits, buffers and
# windows crossing midnight near the edges of the asked range see everything they depend on.
MARGIN = timedelta(days=2)
# The first read of calendars covers this much before "now" (a month view starts on the 1st)
# and this much past the furthest ST horizon, so later asks in the same event are answered
# from memory.
LOOK_BACK = timedelta(days=40)


@dataclass
class _Calendars:
    """Everything slot math needs for a set of STs over one window, read in four queries
    whatever the number of STs: a screen of 20 ST cards costs what a screen of 2 does."""

    teacher_ids: frozenset[int]
    student_id: int | None
    low: datetime
    high: datetime
    rules: dict[int, list[WeeklyRule]] = field(default_factory=dict)
    overrides: dict[int, list[DateOverride]] = field(default_factory=dict)
    busy: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    student_busy: list[Interval] = field(default_factory=list)

    def covers(
        self, teacher_id: int, student_id: int | None, low: datetime, high: datetime
    ) -> bool:
        return (
            teacher_id in self.teacher_ids
            and (student_id is None or student_id == self.student_id)
            and self.low <= low
            and high <= self.high
        )


@dataclass(frozen=True)
class _StudentBusy:
    low: datetime
    high: datetime
    busy: list[Interval]


class CatalogCache:
    """One per process (the ConversationService's): shelves the catalogs of all events share."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        directory_ttl: float = DIRECTORY_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.courses: Shelf[int, CourseRecord | None] = Shelf(directory_ttl, clock)
        self.teachers: Shelf[int, list[TeacherCard]] = Shelf(directory_ttl, clock)
        self.cards: Shelf[tuple[int, int], TeacherCard | None] = Shelf(directory_ttl, clock)
        self.calendars: Shelf[int, _Calendars] = Shelf(ttl, clock)  # the STs', by course
        # An ST's first free slot, whoever the student, by (course, ST, days looked ahead):
        # a screen of 50 ST cards then costs 50 lookups, not 50 runs of the slot math.
        self.firsts: Shelf[tuple[int, int, int], tuple[datetime, datetime | None]] = Shelf(
            ttl, clock
        )  # value: (the window's end it was found for, the first slot or None)
        self.students: Shelf[int, _StudentBusy] = Shelf(ttl, clock)

    def booked(self, course_id: int, request: BookingRequest, blocked_until: datetime) -> None:
        """This process just booked: add the session to the shelves rather than drop them, so
        the next screens of every chat stay served from memory and already show it taken."""
        found, calendars = self.calendars.get(course_id)
        if found and calendars is not None:
            for person, until in (
                (request.teacher_id, blocked_until),
                (request.student_id, request.end),
            ):
                if person in calendars.teacher_ids:  # an ST who is also this student elsewhere
                    calendars.busy.setdefault(person, []).append((request.start, until))
        found, mine = self.students.get(request.student_id)
        if found and mine is not None:
            mine.busy.append(Interval(request.start, request.end))
        self.firsts.clear()  # the slot may have been someone's first

    def taken(self, course_id: int, teacher_id: int, start: datetime, until: datetime) -> None:
        """A booking here found the ST's slot taken elsewhere: mark it busy on the shelf."""
        found, calendars = self.calendars.get(course_id)
        if found and calendars is not None and teacher_id in calendars.teacher_ids:
            calendars.busy.setdefault(teacher_id, []).append((start, until))
        self.firsts.clear()

    def changed(self, course_id: int | None = None, student_id: int | None = None) -> None:
        """This process wrote something: forget what it may have changed (everything, when the
        writer cannot say what)."""
        self.firsts.clear()
        if course_id is None:
            for shelf in (self.courses, self.teachers, self.cards, self.calendars):
                shelf.clear()
        else:
            self.calendars.drop(course_id)
        if student_id is None:
            self.students.clear()
        else:
            self.students.drop(student_id)


def course_info(course: CourseRecord) -> CourseInfo:
    return CourseInfo(
        course.id, course.slug, course.title, course.session_count, course.session_minutes
    )


def teacher_info(card: TeacherCard) -> TeacherInfo:
    return TeacherInfo(
        id=card.user.id,
        name=card.user.name,
        avatar=card.user.avatar,
        timezone=card.user.timezone,
        is_active=card.st.is_active,
        max_days_ahead=card.st.max_days_ahead,
        email=card.user.email,
    )


class DbCatalog:
    def __init__(
        self,
        uow: UnitOfWork,
        reminder_offsets: list[timedelta],
        now: datetime,
        nudge_after: timedelta = timedelta(hours=24),
        shared: CatalogCache | None = None,
    ) -> None:
        self.uow = uow
        self.repo = uow.repo
        self.reminder_offsets = reminder_offsets
        self.now = now
        self.nudge_after = nudge_after
        # None: every read goes to the database (tests of one event, the booking itself).
        self.shared = shared
        self._cards: dict[tuple[int, int], TeacherCard | None] = {}
        self._courses: dict[int, CourseRecord | None] = {}
        self._teachers: dict[int, list[TeacherInfo]] = {}
        self._calendars: _Calendars | None = None

    async def _course(self, course_id: int) -> CourseRecord | None:
        """Each course read once per event, however many screens parts ask for it."""
        if course_id not in self._courses:
            found, course = (
                (False, None) if self.shared is None else self.shared.courses.get(course_id)
            )
            if not found:
                course = await self.repo.course(course_id)
                if self.shared is not None:
                    self.shared.courses.put(course_id, course)
            self._courses[course_id] = course
        return self._courses[course_id]

    async def course(self, course_id: int) -> CourseInfo | None:
        course = await self._course(course_id)
        return course_info(course) if course else None

    async def course_by_slug(self, slug: str) -> CourseInfo | None:
        course = await self.repo.course_by_slug(slug)
        return course_info(course) if course else None

    async def enrolled_courses(self, student_id: int) -> list[CourseInfo]:
        return [course_info(c) for c in await self.repo.enrolled_courses(student_id)]

    async def is_enrolled(self, student_id: int, course_id: int) -> bool:
        return await self.repo.is_enrolled(student_id, course_id)

    async def booked_session(self, student_id: int, teacher_id: int, start: datetime) -> int | None:
        return await self.repo.scheduled_session_at(student_id, teacher_id, start)

    async def teaches(self, user_id: int, course_id: int) -> bool:
        return await self.repo.teaches(user_id, course_id)

    async def sessions_left(self, student_id: int, course_id: int) -> int:
        """Sessions the student can still book: saved "Schedule Later" ones included."""
        return await self._left(student_id, course_id, include_unscheduled=False)

    async def _left(self, student_id: int, course_id: int, *, include_unscheduled: bool) -> int:
        course = await self._course(course_id)
        if course is None:
            return 0
        used = await self.repo.counted_sessions(
            student_id, course_id, include_unscheduled=include_unscheduled
        )
        return course.session_count - used

    async def teachers(self, course_id: int) -> list[TeacherInfo]:
        if course_id not in self._teachers:
            found, shared = (
                (False, None) if self.shared is None else self.shared.teachers.get(course_id)
            )
            cards = shared if found and shared is not None else None
            if cards is None:
                cards = await self.repo.active_teachers(course_id)
                if self.shared is not None:
                    self.shared.teachers.put(course_id, cards)
            for card in cards:
                self._cards[(course_id, card.user.id)] = card
            self._teachers[course_id] = [teacher_info(card) for card in cards]
        return self._teachers[course_id]

    async def _card(self, course_id: int, teacher_id: int) -> TeacherCard | None:
        key = (course_id, teacher_id)
        if key not in self._cards:
            found, card = (False, None) if self.shared is None else self.shared.cards.get(key)
            if not found:
                card = await self.repo.teacher(course_id, teacher_id)
                if self.shared is not None:
                    self.shared.cards.put(key, card)
            self._cards[key] = card
        return self._cards[key]

    async def teacher(self, course_id: int, teacher_id: int) -> TeacherInfo | None:
        card = await self._card(course_id, teacher_id)
        return teacher_info(card) if card else None

    async def _calendars_for(
        self, course_id: int, teacher_id: int, student_id: int | None, low: datetime, high: datetime
    ) -> _Calendars:
        """The calendars of every ST of the course this event has seen, read together."""
        known = self._calendars
        if known is not None and known.covers(teacher_id, student_id, low, high):
            return known
        if known is None and self.shared is not None:
            shared = self._shared_calendars(course_id, teacher_id, student_id, low, high)
            if shared is not None:
                return shared
            await self.teachers(course_id)  # all of them: the shelf serves every ST's screen
        ids = {t for (c, t), card in self._cards.items() if c == course_id and card is not None}
        ids.add(teacher_id)
        horizon = max(
            (card.st.max_days_ahead for card in self._cards.values() if card is not None),
            default=0,
        )
        low = min(low, self.now - LOOK_BACK)
        high = max(high, self.now + timedelta(days=horizon) + LOOK_BACK)
        if known is not None:  # widen rather than forget what was read
            ids |= known.teacher_ids
            low, high = min(low, known.low), max(high, known.high)
        calendars = _Calendars(frozenset(ids), student_id, low, high)
        for a in await self.repo.availability(sorted(ids)):
            calendars.rules.setdefault(a.user_id, []).append(
                WeeklyRule(a.day_of_week, a.start_time, a.end_time, a.timezone)
            )
        for o in await self.repo.overrides(sorted(ids), low.date(), high.date()):
            calendars.overrides.setdefault(o.user_id, []).append(
                DateOverride(o.date, o.timezone, o.start_time, o.end_time)
            )
        for teacher, start, blocked_until in await self.repo.teacher_busy(sorted(ids), low, high):
            calendars.busy.setdefault(teacher, []).append((start, blocked_until))
        if self.shared is not None:  # the STs' part, for every student's next event
            self.shared.calendars.put(course_id, replace(calendars, student_id=None))
        if student_id is not None:
            calendars.student_busy = [
                Interval(s, e) for s, e in await self.repo.student_busy(student_id, low, high)
            ]
            if self.shared is not None:
                entry = _StudentBusy(low, high, calendars.student_busy)
                self.shared.students.put(student_id, entry)
        self._calendars = calendars
        return calendars

    def _shared_calendars(
        self, course_id: int, teacher_id: int, student_id: int | None, low: datetime, high: datetime
    ) -> _Calendars | None:
        """The course's STs' calendars and the student's sessions from the process's shelves,
        when both cover the window asked for."""
        assert self.shared is not None
        found, calendars = self.shared.calendars.get(course_id)
        if not found or calendars is None or not calendars.covers(teacher_id, None, low, high):
            return None
        if student_id is None:
            self._calendars = calendars
            return calendars
        found, mine = self.shared.students.get(student_id)
        if (
            not found
            or mine is None
            or not (mine.low <= calendars.low and calendars.high <= mine.high)
        ):
            return None
        self._calendars = replace(calendars, student_id=student_id, student_busy=mine.busy)
        return self._calendars

    async def free_slots(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int | None,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[datetime]:
        """Free slot starts; without a student, the student's own calendar is not consulted."""
        card = await self._card(course_id, teacher_id)
        course = await self._course(course_id)
        if card is None or course is None or not card.st.is_active:
            return []
        calendars = await self._calendars_for(
            course_id, teacher_id, student_id, start - MARGIN, end + MARGIN
        )
        # Busy time ends at each session's own blocked_until (its course's buffer); slots.py
        # adds this course's buffer, so take it off here to land exactly on blocked_until.
        buffer = timedelta(minutes=card.st.buffer_minutes)
        busy = calendars.busy.get(teacher_id, [])
        st_busy = [Interval(s, max(s, e - buffer)) for s, e in busy]
        student_busy = calendars.student_busy if student_id is not None else []
        overrides = calendars.overrides.get(teacher_id, [])
        settings = SlotRules(
            session_minutes=course.session_minutes,
            buffer_minutes=card.st.buffer_minutes,
            min_notice_minutes=card.st.min_notice_minutes,
            max_days_ahead=card.st.max_days_ahead,
            max_per_day=card.st.max_per_day,
            step_minutes=card.st.step_minutes,
        )
        return free_slots(
            calendars.rules.get(teacher_id, []),
            overrides,
            settings,
            st_busy,
            student_busy,
            now,
            start,
            end,
            card.user.timezone,
        )

    async def first_free(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int | None,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> datetime | None:
        """The ST's first free slot in the window for this student: the ST's own first (kept on
        the shelf for a few seconds), unless the student is busy then, when the slot math runs
        with the student's calendar."""
        if self.shared is None:
            slots = await self.free_slots(course_id, teacher_id, student_id, start, end, now)
            return slots[0] if slots else None
        card = await self._card(course_id, teacher_id)
        notice = timedelta(minutes=card.st.min_notice_minutes) if card else timedelta(0)
        key = (course_id, teacher_id, round((end - start).total_seconds() / 3600))
        found, kept = self.shared.firsts.get(key)
        first: datetime | None = None
        # Usable only for the window asked: a slot before its end and still far enough ahead,
        # or "none" found for a window at least as long.
        usable = (
            found
            and kept is not None
            and (
                (kept[1] is not None and now + notice <= kept[1] < end)
                or (kept[1] is None and end <= kept[0])
            )
        )
        if usable and kept is not None:
            first = kept[1]
        else:
            slots = await self.free_slots(course_id, teacher_id, None, start, end, now)
            first = slots[0] if slots else None
            self.shared.firsts.put(key, (end, first))
        if first is None or student_id is None:
            return first
        course = await self._course(course_id)
        assert course is not None
        length = timedelta(minutes=course.session_minutes)
        calendars = await self._calendars_for(
            course_id, teacher_id, student_id, start - MARGIN, end + MARGIN
        )
        if any(b.start < first + length and first < b.end for b in calendars.student_busy):
            slots = await self.free_slots(course_id, teacher_id, student_id, start, end, now)
            return slots[0] if slots else None
        return first

    async def book(self, request: BookingRequest, now: datetime) -> Outcome:
        """Judge the booking on fresh reads first, by the engine's one rule order; the
        transaction then checks the calendars again under lock, as the concurrency backstop.

        Time passes on the confirm step, so the ST's hours, notice, horizon and per-day limit
        are checked here (the lock cannot see them). A reschedule's own old session is released
        inside the transaction, so the student's calendar is left to it then.
        """
        # Everything afresh: what this event read through the shelves may be seconds old.
        shared, self.shared = self.shared, None
        self._cards.clear()
        self._courses.clear()
        self._calendars = None
        outcome: Outcome | None = None
        card: TeacherCard | None = None
        try:
            card = await self._card(request.course_id, request.teacher_id)
            if card is not None and card.st.is_active and await self._offered(request, now):
                # The ST's hours, notice, horizon, day limit and calendar were just read afresh;
                # the transaction checks enrolment, sessions left and both calendars again under
                # the locks and says which rule refused, in the same order: reading the
                # student's side first as well would only cost the many who race for a slot.
                outcome = await book_session(
                    self.uow, request, reminder_offsets=self.reminder_offsets, now=now
                )
            else:
                outcome = await self._book(request, now)
            return outcome
        finally:
            self.shared = shared
            if shared is not None and card is not None:
                blocked_until = request.end + timedelta(minutes=card.st.buffer_minutes)
                if isinstance(outcome, Booked) and request.replaces is None:
                    shared.booked(request.course_id, request, blocked_until)
                elif isinstance(outcome, STUnavailable):
                    shared.changed()  # the ST's card on the shelf is out of date: forget all
                elif isinstance(outcome, SlotTaken):
                    # Someone took it: every later screen of this process hides it at once,
                    # without reading the course's calendars again (a race has many losers).
                    shared.taken(
                        request.course_id, request.teacher_id, request.start, blocked_until
                    )
                else:  # refused otherwise, moved, or failed: read afresh next time
                    shared.changed(request.course_id, request.student_id)

    async def _offered(self, request: BookingRequest, now: datetime) -> bool:
        """The start is one the ST's hours, days off, notice, horizon, day limit and calendar
        allow (the student's calendar aside)."""
        offered = await self.free_slots(
            request.course_id,
            request.teacher_id,
            None,
            request.start,
            request.start + timedelta(minutes=1),
            now,
        )
        return request.start in offered

    async def _book(self, request: BookingRequest, now: datetime) -> Outcome:
        card = await self._card(request.course_id, request.teacher_id)
        slot_free = await self._offered(request, now)
        student_free = True
        if request.replaces is None and slot_free:  # it decides only when the slot is free
            busy = await self.repo.student_busy(request.student_id, request.start, request.end)
            student_free = not busy
        refused = refusal(
            RefusalFacts(
                enrolled=await self.repo.is_enrolled(request.student_id, request.course_id),
                st_active=card is not None and card.st.is_active,
                sessions_left=request.replaces is not None
                or await self._left(
                    request.student_id, request.course_id, include_unscheduled=False
                )
                > 0,
                slot_free=slot_free,
                student_free=student_free,
            )
        )
        if refused is not None:
            return refused
        return await book_session(
            self.uow, request, reminder_offsets=self.reminder_offsets, now=now
        )

    async def schedule_later(
        self, student_id: int, course_id: int, platform: str, created_by: int | None = None
    ) -> ScheduledLater | NotEnrolled | NoSessionsLeft:
        await self.repo.lock_user(student_id)
        if not await self.repo.is_enrolled(student_id, course_id):
            return NotEnrolled()
        saved = await self.repo.saved_session(student_id, course_id)
        if saved is not None:
            return ScheduledLater(saved, reused=True)  # one saved session per course is enough
        if await self._left(student_id, course_id, include_unscheduled=True) <= 0:
            return NoSessionsLeft()
        saved_id = await self.repo.add_unscheduled_session(
            course_id=course_id, student_id=student_id, created_via=platform, created_by=created_by
        )
        self.repo.add_job(saved_id, Job.nudge(), self.now + self.nudge_after)
        return ScheduledLater(saved_id)

    async def person(self, user_id: int) -> Viewer | None:
        user = await self.repo.user(user_id)
        if user is None:
            return None
        return Viewer(user.id, user.name, user.timezone or "UTC", user.locale, user.email)
