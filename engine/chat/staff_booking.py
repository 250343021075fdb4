"""What a coordinator chooses before the wizard books for a student: the course and the student.

The choices are the engine's, so every front end offers the same ones (Slack draws them as a
static select and an `external_select` that searches as the coordinator types). Each read checks
the role again: a forged request from someone else gets nothing. The wizard itself is the
student's own (`flow.Start(student_id=…)`), with every spec rule and message unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.chat import flow
from storage.uow import Units, UnitsLike

MAX_STUDENT_OPTIONS = 20  # enough to pick from; Slack allows 100 per options answer
MAX_QUERY = 64


@dataclass(frozen=True)
class Option:
    """One choice: `value` comes back from the platform and is parsed again, never trusted."""

    value: str
    label: str


class StaffBooking:
    def __init__(self, units: UnitsLike) -> None:
        self.units = Units.of(units)

    async def is_coordinator(self, user_id: int) -> bool:
        async with self.units() as uow:
            user = await uow.repo.user(user_id)
            return user is not None and user.is_coordinator

    async def courses(self, user_id: int) -> list[Option]:
        """Every course, for a coordinator; nothing for anyone else."""
        async with self.units() as uow:
            user = await uow.repo.user(user_id)
            if user is None or not user.is_coordinator:
                return []
            return [Option(str(c.id), c.title) for c in await uow.repo.all_courses()]

    async def course_for(self, user_id: int, text: str) -> Option | None:
        """The course a coordinator named after `/book` (its slug or its title, any case)."""
        wanted = text.strip().casefold()
        async with self.units() as uow:
            user = await uow.repo.user(user_id)
            if user is None or not user.is_coordinator or not wanted:
                return None
            for course in await uow.repo.all_courses():
                if wanted in (course.slug.casefold(), course.title.casefold()):
                    return Option(str(course.id), course.title)
        return None

    async def students(self, user_id: int, query: str) -> list[Option]:
        """Enrolled students whose name or e-mail contains `query`; the e-mail tells apart two
        people of the same name. Nothing for anyone but a coordinator."""
        wanted = query.strip()[:MAX_QUERY]
        async with self.units() as uow:
            user = await uow.repo.user(user_id)
            if user is None or not user.is_coordinator or not wanted:
                return []
            found = await uow.repo.search_students(wanted, MAX_STUDENT_OPTIONS)
        return [Option(str(s.id), f"{s.name} ({s.email})" if s.email else s.name) for s in found]


def start_for(course_value: str | None, student_value: str | None) -> flow.Start | None:
    """The wizard's first event from the two chosen values; None for anything malformed.

    Whether the student is enrolled, and whether the presser is a coordinator, the wizard
    decides (its messages are the spec's): this only parses.
    """
    if not course_value or not student_value:
        return None
    if not (course_value.isascii() and course_value.isdigit()):
        return None
    if not (student_value.isascii() and student_value.isdigit()):
        return None
    if len(course_value) > 9 or len(student_value) > 9:  # PostgreSQL int4
        return None
    return flow.Start(course_id=int(course_value), student_id=int(student_value), source="chat")
