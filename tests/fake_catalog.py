"""An in-memory `engine.chat.flow.Catalog`: a tiny campus, real slot math, the booking rules.

Booking mirrors `DbCatalog.book` plus the transaction in `storage/booking_tx.py`: enrolment, an
active ST, the slot still offered by the ST's hours (availability, notice, horizon, per-day
limit), the course's session_count (a "Schedule Later" placeholder is filled instead of counted
twice), the ST's calendar with buffer and the student's own calendar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from engine.booking import (
    Booked,
    BookingFailed,
    BookingRequest,
    NoSessionsLeft,
    NotEnrolled,
    Outcome,
    RefusalFacts,
    ScheduledLater,
    refusal,
)
from engine.chat.slots import Interval, SlotRules, WeeklyRule, free_slots
from engine.chat.views import CourseInfo, TeacherInfo, Viewer

STUDENT = 100  # the viewer of the property tests
OTHER_STUDENT = 101

SCHEDULED = "scheduled"
UNSCHEDULED = "unscheduled"
COMPLETED = "completed"
COUNTED = (SCHEDULED, UNSCHEDULED, COMPLETED)


@dataclass
class FakeST:
    info: TeacherInfo
    course_id: int
    rules: list[WeeklyRule]
    buffer_minutes: int = 15
    min_notice_minutes: int = 120
    max_per_day: int | None = None
    step_minutes: int = 30


@dataclass
class FakeSession:
    id: int
    course_id: int
    student_id: int
    status: str
    teacher_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    blocked_until: datetime | None = None  # end plus the ST's buffer
    platform: str = "test"


def _daily(
    tz: str, start: time, end: time, days: tuple[int, ...] = tuple(range(7))
) -> list[WeeklyRule]:
    return [WeeklyRule(day, start, end, tz) for day in days]


def _teacher(
    id: int, name: str, tz: str, *, active: bool = True, max_days_ahead: int = 60
) -> TeacherInfo:
    return TeacherInfo(id, name, None, tz, active, max_days_ahead)


@dataclass
class FakeCatalog:
    courses: dict[int, CourseInfo] = field(default_factory=dict)
    enrollments: set[tuple[int, int]] = field(default_factory=set)  # (student, course)
    sts: dict[tuple[int, int], FakeST] = field(default_factory=dict)  # (course, teacher)
    sessions: list[FakeSession] = field(default_factory=list)
    broken: bool = False  # the database is down: every booking fails with BookingFailed
    names: dict[int, str] = field(default_factory=dict)  # people other than the STs

    @classmethod
    def campus(cls) -> FakeCatalog:
        """Calculus (two active STs, one inactive), Chemistry (one session left), Physics (not
        enrolled) and History (enrolled, nobody teaches it); another student's booking on Ada's
        calendar (Friday 10:00 UTC) and a completed Chemistry session of the viewer's."""
        courses = [
            CourseInfo(1, "calculus-1", "Calculus I", 8, 60),
            CourseInfo(2, "organic-chemistry", "Organic Chemistry", 2, 45),
            CourseInfo(3, "physics", "Physics", 4, 60),
            CourseInfo(4, "history", "History", 3, 30),
        ]
        sts = [
            FakeST(_teacher(10, "Ada Lovelace", "UTC"), 1, _daily("UTC", time(9), time(17))),
            FakeST(
                _teacher(11, "Bob Brown", "America/New_York"),
                1,
                _daily("America/New_York", time(10), time(14), days=(0, 1, 2, 3, 4)),
                buffer_minutes=30,
                max_per_day=2,
            ),
            FakeST(
                _teacher(12, "Cy Inactive", "UTC", active=False),
                1,
                _daily("UTC", time(8), time(20)),
            ),
            FakeST(
                _teacher(13, "Dee Das", "Asia/Kolkata", max_days_ahead=10),
                2,
                _daily("Asia/Kolkata", time(18), time(1)),  # crosses midnight
                buffer_minutes=0,
                min_notice_minutes=60,
                step_minutes=15,
            ),
            FakeST(_teacher(14, "Eve Physics", "UTC"), 3, _daily("UTC", time(9), time(17))),
        ]
        catalog = cls(
            courses={c.id: c for c in courses},
            enrollments={
                (STUDENT, 1),
                (STUDENT, 2),
                (STUDENT, 4),
                (OTHER_STUDENT, 1),
                (OTHER_STUDENT, 2),
            },
            sts={(st.course_id, st.info.id): st for st in sts},
        )
        ada_friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
        catalog._add(1, OTHER_STUDENT, SCHEDULED, 10, ada_friday, timedelta(minutes=60), 15)
        catalog._add(2, STUDENT, COMPLETED)
        return catalog

    # --- helpers ---------------------------------------------------------------------------
    def _add(
        self,
        course_id: int,
        student_id: int,
        status: str,
        teacher_id: int | None = None,
        start: datetime | None = None,
        length: timedelta | None = None,
        buffer_minutes: int = 0,
        platform: str = "test",
    ) -> FakeSession:
        session = FakeSession(
            len(self.sessions) + 1, course_id, student_id, status, platform=platform
        )
        if start is not None and length is not None:
            self._schedule(session, teacher_id, start, start + length, buffer_minutes)
        self.sessions.append(session)
        return session

    @staticmethod
    def _schedule(
        session: FakeSession, teacher_id: int | None, start: datetime, end: datetime, buffer: int
    ) -> None:
        session.status = SCHEDULED
        session.teacher_id = teacher_id
        session.start, session.end = start, end
        session.blocked_until = end + timedelta(minutes=buffer)

    def scheduled(self) -> list[FakeSession]:
        return [s for s in self.sessions if s.status == SCHEDULED]

    def counted(self, student_id: int, course_id: int) -> int:
        return sum(
            s.student_id == student_id and s.course_id == course_id and s.status in COUNTED
            for s in self.sessions
        )

    def st_busy(self, teacher_id: int) -> list[Interval]:
        """The ST's sessions, and any the ST takes as a student elsewhere (both roles)."""
        return [
            _interval(s) for s in self.scheduled() if teacher_id in (s.teacher_id, s.student_id)
        ]

    def student_busy(self, student_id: int) -> list[Interval]:
        """The student's sessions, and (with the buffer) any the student teaches: an ST can be
        a student in another course, as the database's rule has it."""
        taking = [_interval(s) for s in self.scheduled() if s.student_id == student_id]
        teaching = [
            Interval(s.start, s.blocked_until)
            for s in self.scheduled()
            if s.teacher_id == student_id and s.start and s.blocked_until
        ]
        return taking + teaching

    def set_active(self, course_id: int, teacher_id: int, active: bool) -> None:
        st = self.sts[(course_id, teacher_id)]
        st.info = TeacherInfo(**{**st.info.__dict__, "is_active": active})

    # --- the Catalog port --------------------------------------------------------------------
    async def course(self, course_id: int) -> CourseInfo | None:
        return self.courses.get(course_id)

    async def course_by_slug(self, slug: str) -> CourseInfo | None:
        return next((c for c in self.courses.values() if c.slug == slug), None)

    async def enrolled_courses(self, student_id: int) -> list[CourseInfo]:
        mine = [c for c in self.courses.values() if (student_id, c.id) in self.enrollments]
        return sorted(mine, key=lambda c: c.title)

    async def is_enrolled(self, student_id: int, course_id: int) -> bool:
        return (student_id, course_id) in self.enrollments

    async def booked_session(self, student_id: int, teacher_id: int, start: datetime) -> int | None:
        for booked in self.sessions:
            if (booked.student_id, booked.teacher_id, booked.start, booked.status) == (
                student_id,
                teacher_id,
                start,
                SCHEDULED,
            ):
                return booked.id
        return None

    async def teaches(self, user_id: int, course_id: int) -> bool:
        return (course_id, user_id) in self.sts

    async def sessions_left(self, student_id: int, course_id: int) -> int:
        course = self.courses.get(course_id)
        return course.session_count - self.counted(student_id, course_id) if course else 0

    async def teachers(self, course_id: int) -> list[TeacherInfo]:
        found = [st.info for (c, _), st in self.sts.items() if c == course_id and st.info.is_active]
        return sorted(found, key=lambda t: (t.name, t.id))

    async def teacher(self, course_id: int, teacher_id: int) -> TeacherInfo | None:
        st = self.sts.get((course_id, teacher_id))
        return st.info if st else None

    async def first_free(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int | None,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> datetime | None:
        slots = await self.free_slots(course_id, teacher_id, student_id, start, end, now)
        return slots[0] if slots else None

    async def free_slots(
        self,
        course_id: int,
        teacher_id: int,
        student_id: int | None,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[datetime]:
        st = self.sts.get((course_id, teacher_id))
        course = self.courses.get(course_id)
        if st is None or course is None or not st.info.is_active:
            return []
        rules = SlotRules(
            session_minutes=course.session_minutes,
            buffer_minutes=st.buffer_minutes,
            min_notice_minutes=st.min_notice_minutes,
            max_days_ahead=st.info.max_days_ahead,
            max_per_day=st.max_per_day,
            step_minutes=st.step_minutes,
        )
        student_busy = self.student_busy(student_id) if student_id is not None else []
        return free_slots(
            st.rules,
            [],
            rules,
            self.st_busy(teacher_id),
            student_busy,
            now,
            start,
            end,
            st.info.timezone,
        )

    async def book(self, request: BookingRequest, now: datetime) -> Outcome:
        if self.broken:
            return BookingFailed()
        student, course_id = request.student_id, request.course_id
        st = self.sts.get((course_id, request.teacher_id))
        placeholder = next(
            (
                s
                for s in self.sessions
                if s.student_id == student and s.course_id == course_id and s.status == UNSCHEDULED
            ),
            None,
        )
        # The same facts as DbCatalog gathers, judged by the engine's one rule order.
        offered = await self.free_slots(
            course_id, request.teacher_id, None, request.start, request.start + _MINUTE, now
        )
        clash = Interval(request.start, request.end)
        refused = refusal(
            RefusalFacts(
                enrolled=(student, course_id) in self.enrollments,
                st_active=st is not None and st.info.is_active,
                sessions_left=placeholder is not None
                or self.counted(student, course_id) < self.courses[course_id].session_count,
                slot_free=request.start in offered,
                student_free=not any(
                    b.start < clash.end and clash.start < b.end for b in self.student_busy(student)
                ),
            )
        )
        if refused is not None:
            return refused
        assert st is not None
        if placeholder is None:
            placeholder = self._add(course_id, student, UNSCHEDULED, platform=request.platform)
        self._schedule(
            placeholder, request.teacher_id, request.start, request.end, st.buffer_minutes
        )
        return Booked(placeholder.id)

    async def schedule_later(
        self, student_id: int, course_id: int, platform: str, created_by: int | None = None
    ) -> ScheduledLater | NotEnrolled | NoSessionsLeft:
        if (student_id, course_id) not in self.enrollments:
            return NotEnrolled()
        for saved in self.sessions:
            if (saved.student_id, saved.course_id, saved.status) == (
                student_id,
                course_id,
                UNSCHEDULED,
            ):
                return ScheduledLater(saved.id, reused=True)
        if await self.sessions_left(student_id, course_id) <= 0:
            return NoSessionsLeft()
        return ScheduledLater(self._add(course_id, student_id, UNSCHEDULED, platform=platform).id)

    async def person(self, user_id: int) -> Viewer | None:
        name = self.names.get(user_id)
        return None if name is None else Viewer(user_id, name, "UTC", "en", None)


_MINUTE = timedelta(minutes=1)


def _interval(session: FakeSession) -> Interval:
    assert session.start is not None and session.end is not None
    return Interval(session.start, session.end)
