"""Repositories: the only place that reads and writes tables (apart from the booking transaction).

Methods are narrow and named for the question the engine asks, so the engine never builds queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import JSON as JSON_TYPE
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

from storage.jobs import Job
from storage.models import (
    ACTIVE_STATUSES,
    COUNTED_STATUSES,
    AnalyticsEvent,
    Availability,
    AvailabilityOverride,
    ChatIdentity,
    Conversation,
    Course,
    Enrollment,
    LinkUse,
    ProcessedUpdate,
    ReminderJob,
    Session,
    SessionStatus,
    StudentTeacher,
    User,
)
from storage.outbox import cancel_pending
from storage.records import (
    ConversationRecord,
    CourseRecord,
    DayOverride,
    IdentityRecord,
    SessionRecord,
    SessionWithPeople,
    STRecord,
    TeacherCard,
    UserRecord,
    WeeklyHours,
    record,
)

# --- the chat's hot path: Core statements built once, so the compiled cache serves them ------
_CONV = cast(Table, Conversation.__table__)
_USERS = cast(Table, User.__table__)
_IDS = cast(Table, ChatIdentity.__table__)
_OTHER_IDS = _IDS.alias("other_ids")
_DONE = cast(Table, ProcessedUpdate.__table__)
_EVENTS = cast(Table, AnalyticsEvent.__table__)
_USER_COLUMNS = [c.name for c in fields(UserRecord)]
OPEN_CONVERSATION = (
    select(
        _CONV.c.id,
        _CONV.c.state,
        _CONV.c.version,
        _CONV.c.user_id.label("owner"),
        *(_USERS.c[name].label(f"u_{name}") for name in _USER_COLUMNS),
        _IDS.c.platform.label("linked"),
        _IDS.c.last_used_at,
        # The newest use of any of the person's chats: this one must not stay behind it.
        select(func.max(_OTHER_IDS.c.last_used_at))
        .where(_OTHER_IDS.c.user_id == _USERS.c.id)
        .scalar_subquery()
        .label("latest"),
    )
    .select_from(
        _CONV.join(_USERS, _USERS.c.id == bindparam("user_id")).outerjoin(
            _IDS,
            and_(
                _IDS.c.platform == _CONV.c.platform,
                _IDS.c.chat_id == _CONV.c.chat_id,
                _IDS.c.user_id == _USERS.c.id,
            ),
        )
    )
    .where(_CONV.c.platform == bindparam("platform"), _CONV.c.chat_id == bindparam("chat_id"))
    .with_for_update(of=_CONV)
)
SAVE_CONVERSATION = (
    update(_CONV)
    .where(_CONV.c.id == bindparam("p_id"))
    .values(
        state=bindparam("p_state"),
        version=bindparam("p_version"),
        user_id=bindparam("p_owner"),
        updated_at=func.now(),
    )
)
TOUCH_IDENTITY = (
    update(_IDS)
    .where(
        _IDS.c.platform == bindparam("p_platform"),
        _IDS.c.chat_id == bindparam("p_chat_id"),
        _IDS.c.user_id == bindparam("p_user_id"),
    )
    .values(last_used_at=bindparam("p_at"))
)
MARK_PROCESSED = {
    "postgresql": pg_insert(_DONE).on_conflict_do_nothing().returning(_DONE.c.update_id),
    "sqlite": sqlite_insert(_DONE).on_conflict_do_nothing().returning(_DONE.c.update_id),
}
ADD_EVENTS = insert(_EVENTS)
# PostgreSQL: the new state and the event's analytics rows in one statement (a data-modifying
# CTE), one round trip fewer on every chat event; the JSON travels as text and is cast back.
SAVE_WITH_EVENTS = (
    insert(_EVENTS)
    .from_select(
        ["name", "user_id", "platform", "data"],
        select(
            func.unnest(bindparam("p_names", type_=ARRAY(String))),
            bindparam("p_owner", type_=Integer),
            bindparam("p_platform", type_=String),
            sql_cast(func.unnest(bindparam("p_datas", type_=ARRAY(String))), JSON_TYPE),
        ),
    )
    .add_cte(SAVE_CONVERSATION.cte("saved"), nest_here=False)
)
_SESSIONS = cast(Table, Session.__table__)
_ACTIVE = _SESSIONS.c.status.in_(ACTIVE_STATUSES)
_IDS_PARAM: BindParameter[list[int]] = bindparam("p_ids", expanding=True)
WEEKLY_HOURS = select(cast(Table, Availability.__table__)).where(
    Availability.__table__.c.user_id.in_(_IDS_PARAM)
)
_OVERRIDES = cast(Table, AvailabilityOverride.__table__)
DAY_OVERRIDES = select(_OVERRIDES).where(
    _OVERRIDES.c.user_id.in_(_IDS_PARAM),
    _OVERRIDES.c.date.between(bindparam("p_first"), bindparam("p_last")),
)
# Busy time in both roles, one round trip each: teaching (up to the buffer it was booked with)
# and attending as a student.
TEACHERS_BUSY = union_all(
    select(_SESSIONS.c.teacher_id, _SESSIONS.c.scheduled_start, _SESSIONS.c.blocked_until).where(
        _SESSIONS.c.teacher_id.in_(_IDS_PARAM),
        _ACTIVE,
        _SESSIONS.c.scheduled_start < bindparam("p_end"),
        _SESSIONS.c.blocked_until > bindparam("p_start"),
    ),
    select(_SESSIONS.c.student_id, _SESSIONS.c.scheduled_start, _SESSIONS.c.scheduled_end).where(
        _SESSIONS.c.student_id.in_(_IDS_PARAM),
        _ACTIVE,
        _SESSIONS.c.scheduled_start < bindparam("p_end"),
        _SESSIONS.c.scheduled_end > bindparam("p_start"),
    ),
)
STUDENT_BUSY = union_all(
    select(_SESSIONS.c.scheduled_start, _SESSIONS.c.scheduled_end).where(
        _SESSIONS.c.student_id == bindparam("p_person"),
        _ACTIVE,
        _SESSIONS.c.scheduled_start < bindparam("p_end"),
        _SESSIONS.c.scheduled_end > bindparam("p_start"),
    ),
    select(_SESSIONS.c.scheduled_start, _SESSIONS.c.blocked_until).where(
        _SESSIONS.c.teacher_id == bindparam("p_person"),
        _ACTIVE,
        _SESSIONS.c.scheduled_start < bindparam("p_end"),
        _SESSIONS.c.blocked_until > bindparam("p_start"),
    ),
)
TOUCH_EVERY = timedelta(minutes=1)
""""Last used" only needs to order a person's chats: one write a minute is precise enough."""


class Repo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _core(self, statement: Executable, params: Any) -> CursorResult[Any]:
        """A Core statement on the session's connection, in its transaction: the hot path
        skips the ORM's execution layer, which costs more than the statement itself."""
        connection = await self.session.connection()
        return await connection.execute(statement, params)

    # --- users, courses, enrollments -------------------------------------------------------
    async def user(self, user_id: int) -> UserRecord | None:
        found = await self.session.get(User, user_id)
        return record(UserRecord, found) if found else None

    async def course(self, course_id: int) -> CourseRecord | None:
        found = await self.session.get(Course, course_id)
        return record(CourseRecord, found) if found else None

    async def course_by_slug(self, slug: str) -> CourseRecord | None:
        found = await self.session.scalar(select(Course).where(Course.slug == slug))
        return record(CourseRecord, found) if found else None

    async def is_enrolled(self, student_id: int, course_id: int) -> bool:
        found = await self.session.scalar(
            select(Enrollment.id).where(
                Enrollment.student_id == student_id, Enrollment.course_id == course_id
            )
        )
        return found is not None

    async def enrolled_courses(self, student_id: int) -> list[CourseRecord]:
        rows = await self.session.scalars(
            select(Course)
            .join(Enrollment, Enrollment.course_id == Course.id)
            .where(Enrollment.student_id == student_id)
            .order_by(Course.title)
        )
        return [record(CourseRecord, row) for row in rows]

    async def all_courses(self) -> list[CourseRecord]:
        rows = await self.session.scalars(select(Course).order_by(Course.title))
        return [record(CourseRecord, row) for row in rows]

    async def search_students(self, text: str, limit: int) -> list[UserRecord]:
        """People enrolled in at least one course whose name or e-mail contains `text`
        (any case; `%` and `_` match themselves)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        enrolled = select(Enrollment.id).where(Enrollment.student_id == User.id).exists()
        rows = await self.session.scalars(
            select(User)
            .where(
                enrolled,
                or_(
                    User.name.ilike(pattern, escape="\\"),
                    User.email.ilike(pattern, escape="\\"),
                ),
            )
            .order_by(User.name, User.id)
            .limit(limit)
        )
        return [record(UserRecord, row) for row in rows]

    async def counted_sessions(
        self, student_id: int, course_id: int, *, include_unscheduled: bool = True
    ) -> int:
        """Sessions using up the course's `session_count`; a "Schedule Later" one can be left
        out, because booking fills it in instead of taking a new one."""
        statuses = [
            s
            for s in COUNTED_STATUSES
            if include_unscheduled or s != SessionStatus.UNSCHEDULED.value
        ]
        count = await self.session.scalar(
            select(func.count(Session.id)).where(
                Session.student_id == student_id,
                Session.course_id == course_id,
                Session.status.in_(statuses),
            )
        )
        return int(count or 0)

    # --- student-teachers and their calendars ----------------------------------------------
    async def active_teachers(self, course_id: int) -> list[TeacherCard]:
        rows = await self.session.execute(
            select(StudentTeacher, User)
            .join(User, User.id == StudentTeacher.user_id)
            .where(StudentTeacher.course_id == course_id, StudentTeacher.is_active.is_(True))
            .order_by(User.name, User.id)
        )
        return [_card(st, user) for st, user in rows]

    async def teacher(self, course_id: int, teacher_id: int) -> TeacherCard | None:
        row = (
            await self.session.execute(
                select(StudentTeacher, User)
                .join(User, User.id == StudentTeacher.user_id)
                .where(StudentTeacher.course_id == course_id, StudentTeacher.user_id == teacher_id)
            )
        ).first()
        return _card(row[0], row[1]) if row else None

    async def availability(self, teacher_ids: Sequence[int]) -> list[WeeklyHours]:
        rows = await self._core(WEEKLY_HOURS, {"p_ids": list(teacher_ids)})
        return [record(WeeklyHours, row) for row in rows]

    async def overrides(
        self, teacher_ids: Sequence[int], first: date, last: date
    ) -> list[DayOverride]:
        params = {"p_ids": list(teacher_ids), "p_first": first, "p_last": last}
        return [record(DayOverride, row) for row in await self._core(DAY_OVERRIDES, params)]

    async def set_day_overrides(
        self,
        user_id: int,
        days: Sequence[date],
        timezone: str,
        start: time | None = None,
        end: time | None = None,
    ) -> None:
        """Replace the overrides of these dates: a day off (no times) or special hours."""
        await self.session.execute(
            delete(AvailabilityOverride).where(
                AvailabilityOverride.user_id == user_id, AvailabilityOverride.date.in_(days)
            )
        )
        self.session.add_all(
            AvailabilityOverride(
                user_id=user_id, date=day, timezone=timezone, start_time=start, end_time=end
            )
            for day in days
        )
        await self.session.flush()

    async def teaching_between(
        self, teacher_id: int, start: datetime, end: datetime
    ) -> list[SessionRecord]:
        """The ST's scheduled sessions starting in [start, end), in time order."""
        rows = await self.session.scalars(
            select(Session)
            .where(
                Session.teacher_id == teacher_id,
                Session.status == SessionStatus.SCHEDULED,
                Session.scheduled_start >= start,
                Session.scheduled_start < end,
            )
            .order_by(Session.scheduled_start)
        )
        return [record(SessionRecord, row) for row in rows]

    async def teacher_busy(
        self, teacher_ids: Sequence[int], start: datetime, end: datetime
    ) -> list[tuple[int, datetime, datetime]]:
        """The STs' active sessions overlapping [start, end) as (teacher, start, blocked until),
        the buffer each was booked with included; and sessions they attend as students."""
        params = {"p_ids": list(teacher_ids), "p_start": start, "p_end": end}
        rows = cast(
            Iterable[tuple[int | None, datetime | None, datetime | None]],
            await self._core(TEACHERS_BUSY, params),
        )
        return [(t, s, e) for t, s, e in rows if t is not None and s and e]

    async def student_busy(
        self, student_id: int, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """The student's active sessions, including any they teach (with the buffer)."""
        params = {"p_person": student_id, "p_start": start, "p_end": end}
        rows = cast(
            Iterable[tuple[datetime | None, datetime | None]],
            await self._core(STUDENT_BUSY, params),
        )
        return [(s, e) for s, e in rows if s and e]

    # --- the student's sessions --------------------------------------------------------------
    async def upcoming_sessions(self, user_id: int, now: datetime) -> list[SessionRecord]:
        """The person's upcoming sessions in either role, and their "Schedule Later" ones."""
        rows = await self.session.scalars(
            select(Session)
            .where(
                or_(
                    and_(
                        or_(Session.student_id == user_id, Session.teacher_id == user_id),
                        Session.status == SessionStatus.SCHEDULED,
                        Session.scheduled_end > now,
                    ),
                    and_(
                        Session.student_id == user_id,
                        Session.status == SessionStatus.UNSCHEDULED,
                    ),
                ),
            )
            .order_by(Session.scheduled_start.is_(None), Session.scheduled_start, Session.id)
        )
        return [record(SessionRecord, row) for row in rows]

    async def upcoming_with_people(
        self, user_id: int, now: datetime
    ) -> list[tuple[SessionRecord, CourseRecord, UserRecord, UserRecord | None]]:
        """Upcoming and "Schedule Later" sessions with their course, student and ST (the ST is
        None for a saved session), for /mysessions; who "the other person" is, the engine says."""
        sessions = await self.upcoming_sessions(user_id, now)
        courses = {
            c.id: record(CourseRecord, c)
            for c in await self._by_ids(Course, {s.course_id for s in sessions})
        }
        ids = {s.student_id for s in sessions} | {s.teacher_id for s in sessions if s.teacher_id}
        people = {u.id: record(UserRecord, u) for u in await self._by_ids(User, ids)}
        return [
            (
                s,
                courses[s.course_id],
                people[s.student_id],
                people.get(s.teacher_id) if s.teacher_id else None,
            )
            for s in sessions
        ]

    async def _by_ids(self, model: type[Course] | type[User], ids: set[int]) -> list[Any]:
        if not ids:
            return []
        return list(await self.session.scalars(select(model).where(model.id.in_(ids))))

    async def scheduled_starting_between(
        self, start: datetime, end: datetime
    ) -> list[SessionWithPeople]:
        """Every scheduled session across campus starting in [start, end), with its course and
        both people, in time order: one query however many there are (a coordinator's day)."""
        return await self._with_people(
            Session.status == SessionStatus.SCHEDULED,
            Session.scheduled_start >= start,
            Session.scheduled_start < end,
        )

    async def session_with_people(self, session_id: int) -> SessionWithPeople | None:
        """One session in any status with its course and both people; None when it has no ST
        (a "Schedule Later" one) or does not exist."""
        found = await self._with_people(Session.id == session_id)
        return found[0] if found else None

    async def _with_people(self, *where: Any) -> list[SessionWithPeople]:
        student, teacher = aliased(User), aliased(User)
        rows = await self.session.execute(
            select(Session, Course, student, teacher)
            .join(Course, Course.id == Session.course_id)
            .join(student, student.id == Session.student_id)
            .join(teacher, teacher.id == Session.teacher_id)
            .where(*where)
            .order_by(Session.scheduled_start, Session.id)
            .execution_options(populate_existing=True)
        )
        return [
            SessionWithPeople(
                record(SessionRecord, booked),
                record(CourseRecord, course),
                record(UserRecord, learner),
                record(UserRecord, st),
            )
            for booked, course, learner, st in rows
        ]

    async def session_by_id(self, session_id: int) -> SessionRecord | None:
        found = await self.session.get(Session, session_id, populate_existing=True)
        return record(SessionRecord, found) if found else None

    async def session_for_update(self, session_id: int) -> SessionRecord | None:
        """Row-locked, so a cancel, a reschedule and a Join never interleave on one session."""
        found = await self.session.scalar(
            select(Session)
            .where(Session.id == session_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return record(SessionRecord, found) if found else None

    async def set_video_url(self, session_id: int, url: str) -> None:
        """The room both people join; written once, under the session's row lock."""
        found = await self.session.get(Session, session_id)
        assert found is not None
        found.video_url = url
        await self.session.flush()

    async def cancel_session(
        self, session_id: int, *, by: int, at: datetime, reason: str | None = None
    ) -> None:
        """Free the slot (constraints ignore cancelled rows) and drop its pending reminders.

        `at`, `by` and `reason` are kept: the calendar CANCEL is stamped with `at` on every
        retry, and each person's notice and e-mail say who cancelled and why.
        """
        booked = await self.session.get(Session, session_id)
        assert booked is not None
        booked.status = SessionStatus.CANCELLED.value
        booked.sequence += 1
        booked.cancelled_at = at
        booked.cancelled_by = by
        booked.cancel_reason = reason
        await cancel_pending(self.session, booked.id)
        await self.session.flush()

    def add_job(self, session_id: int, job: Job, due_at: datetime) -> None:
        self.session.add(ReminderJob(session_id=session_id, kind=job.format(), due_at=due_at))

    async def saved_session(self, student_id: int, course_id: int) -> int | None:
        """The student's oldest "Schedule Later" session of this course, if one exists."""
        found: int | None = await self.session.scalar(
            select(Session.id)
            .where(
                Session.student_id == student_id,
                Session.course_id == course_id,
                Session.status == SessionStatus.UNSCHEDULED,
            )
            .order_by(Session.id)
            .limit(1)
        )
        return found

    async def scheduled_session_at(
        self, student_id: int, teacher_id: int, start: datetime
    ) -> int | None:
        found: int | None = await self.session.scalar(
            select(Session.id).where(
                Session.student_id == student_id,
                Session.teacher_id == teacher_id,
                Session.scheduled_start == start,
                Session.status == SessionStatus.SCHEDULED,
            )
        )
        return found

    async def user_id_by_email(self, email: str) -> int | None:
        """The platform user with this address (case-insensitive), for matching a chat account
        by the e-mail its platform has verified."""
        found: int | None = await self.session.scalar(
            select(User.id).where(func.lower(User.email) == email.strip().lower())
        )
        return found

    async def teaches_any(self, user_id: int) -> bool:
        """Whether the user is an ST of any course (who may set time off)."""
        found = await self.session.scalar(
            select(StudentTeacher.id).where(StudentTeacher.user_id == user_id).limit(1)
        )
        return found is not None

    async def teaches(self, user_id: int, course_id: int) -> bool:
        """Whether the user is one of the course's STs (active or not)."""
        found = await self.session.scalar(
            select(StudentTeacher.id).where(
                StudentTeacher.user_id == user_id, StudentTeacher.course_id == course_id
            )
        )
        return found is not None

    async def add_unscheduled_session(
        self, *, course_id: int, student_id: int, created_via: str, created_by: int | None = None
    ) -> int:
        """A "Schedule Later" session (its id); `created_by` defaults to the student."""
        row = Session(
            course_id=course_id,
            student_id=student_id,
            status=SessionStatus.UNSCHEDULED.value,
            reminders=True,
            created_via=created_via,
            created_by=student_id if created_by is None else created_by,
        )
        self.session.add(row)
        await self.session.flush()
        return row.id

    async def lock_user(self, user_id: int) -> None:
        """Serialise a student's count-limited writes (PostgreSQL row lock; SQLite is serial)."""
        await self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    # --- chat identities -----------------------------------------------------------------
    async def identity(self, platform: str, external_id: str) -> IdentityRecord | None:
        found = await self._identity(platform, external_id)
        return record(IdentityRecord, found) if found else None

    async def _identity(self, platform: str, external_id: str) -> ChatIdentity | None:
        return await self.session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.platform == platform, ChatIdentity.external_id == external_id
            )
        )

    async def link_identity(
        self, platform: str, external_id: str, user_id: int, chat_id: str | None = None
    ) -> IdentityRecord:
        """Link a chat account, or refresh its chat id when it is already this user's.

        An account linked to another user is never moved here (that would let a forwarded or
        planted link sign someone into a stranger's account): callers check `identity` first
        and unlinking is a deliberate step of its own.
        """
        found = await self._identity(platform, external_id)
        if found is None:
            found = ChatIdentity(
                platform=platform, external_id=external_id, user_id=user_id, chat_id=chat_id
            )
            self.session.add(found)
        elif found.user_id != user_id:
            raise ValueError("chat account is linked to another user")
        else:
            found.chat_id = chat_id or found.chat_id
        await self.session.flush()
        return record(IdentityRecord, found)

    async def unlink_chat(self, platform: str, chat_id: str, user_id: int) -> bool:
        """Remove this chat's link to this user; False when there was none (already unlinked)."""
        found = await self.session.scalar(
            select(ChatIdentity).where(
                ChatIdentity.platform == platform,
                ChatIdentity.chat_id == chat_id,
                ChatIdentity.user_id == user_id,
            )
        )
        if found is None:
            return False
        await self.session.delete(found)
        await self.session.flush()
        return True

    async def claim_link(
        self, digest: str, platform: str, external_id: str, expires_at: datetime
    ) -> bool:
        """True when this chat account is the first (or the same) to open the link.

        `expires_at` is the link's own expiry: the record is kept at least that long.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(
                    LinkUse(
                        digest=digest,
                        platform=platform,
                        external_id=external_id,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            first = (
                await self.session.execute(
                    select(LinkUse.platform, LinkUse.external_id).where(LinkUse.digest == digest)
                )
            ).first()
            return first is not None and tuple(first) == (platform, external_id)
        return True

    async def identities_of(self, user_id: int) -> list[IdentityRecord]:
        """The person's chat accounts, earliest linked first, each with when it was last used."""
        rows = await self.session.scalars(
            select(ChatIdentity)
            .where(ChatIdentity.user_id == user_id)
            .order_by(ChatIdentity.linked_at, ChatIdentity.id)
        )
        return [record(IdentityRecord, row) for row in rows]

    async def touch_identity(self, platform: str, chat_id: str, user_id: int, at: datetime) -> None:
        """Note that this chat account was just used (one UPDATE; none when it is not linked)."""
        params = {"p_platform": platform, "p_chat_id": chat_id, "p_user_id": user_id, "p_at": at}
        await self._core(TOUCH_IDENTITY, params)

    async def set_notify_platform(self, user_id: int, platform: str | None) -> None:
        """Where the person's notices go (None: back to the platform used last)."""
        await self.session.execute(
            update(User).where(User.id == user_id).values(notify_platform=platform)
        )

    # --- conversations and de-duplication ----------------------------------------------------
    async def open_conversation(
        self, platform: str, chat_id: str, user_id: int, now: datetime
    ) -> tuple[ConversationRecord, UserRecord]:
        """The chat's conversation (created the first time), locked until the transaction
        ends, with the user, in one statement; notes the chat as just used (at most once a
        minute, which is all "where notices go" needs). LookupError for an unknown user."""
        params = {"platform": platform, "chat_id": chat_id, "user_id": user_id}
        row = (await self._core(OPEN_CONVERSATION, params)).first()
        if row is None:
            await self.conversation_for_update(platform, chat_id)  # creates it, race-safe
            row = (await self._core(OPEN_CONVERSATION, params)).first()
            if row is None:
                raise LookupError(f"no user {user_id}")
        user = UserRecord(**{name: row._mapping[f"u_{name}"] for name in _USER_COLUMNS})
        conversation = ConversationRecord(
            row.id, platform, chat_id, row.owner, row.state or {}, row.version
        )
        if row.linked is not None and (
            row.last_used_at is None
            or now - row.last_used_at >= TOUCH_EVERY
            or (row.latest is not None and row.last_used_at < row.latest)
        ):
            await self.touch_identity(platform, chat_id, user_id, now)
        return conversation, user

    async def conversation_for_update(self, platform: str, chat_id: str) -> ConversationRecord:
        """Load (or create) the chat's conversation row, locked until the transaction ends."""
        query = (
            select(Conversation)
            .where(Conversation.platform == platform, Conversation.chat_id == chat_id)
            .with_for_update()
        )
        found = await self.session.scalar(query)
        if found is not None:
            return record(ConversationRecord, found)
        try:
            async with self.session.begin_nested():
                self.session.add(
                    Conversation(platform=platform, chat_id=chat_id, state={}, version=0)
                )
        except IntegrityError:
            pass  # another worker created it first; its row is what we lock below
        found = await self.session.scalar(query.execution_options(populate_existing=True))
        assert found is not None
        return record(ConversationRecord, found)

    async def save_conversation(
        self, conversation_id: int, state: dict[str, object], version: int, user_id: int
    ) -> None:
        """The wizard's new state, under the lock `conversation_for_update` took."""
        await self._core(
            SAVE_CONVERSATION,
            {
                "p_id": conversation_id,
                "p_state": state,
                "p_version": version,
                "p_owner": user_id,
            },
        )

    async def save_with_events(
        self,
        conversation_id: int,
        state: dict[str, object],
        version: int,
        user_id: int,
        events: Sequence[tuple[str, dict[str, Any]]],
        platform: str,
    ) -> None:
        """`save_conversation` and `add_events` together: one statement on PostgreSQL."""
        if self.session.get_bind().dialect.name != "postgresql" or not events:
            await self.save_conversation(conversation_id, state, version, user_id)
            await self.add_events(events, user_id=user_id, platform=platform)
            return
        await self._core(
            SAVE_WITH_EVENTS,
            {
                "p_id": conversation_id,
                "p_state": state,
                "p_version": version,
                "p_owner": user_id,
                "p_platform": platform,
                "p_names": [name for name, _ in events],
                "p_datas": [json.dumps(data) for _, data in events],
            },
        )

    async def add_events(
        self, events: Sequence[tuple[str, dict[str, Any]]], *, user_id: int, platform: str
    ) -> None:
        """An event's analytics rows, in one round trip."""
        if events:
            await self._core(
                ADD_EVENTS,
                [
                    {"name": name, "data": data, "user_id": user_id, "platform": platform}
                    for name, data in events
                ],
            )

    async def conversation_version(self, platform: str, chat_id: str) -> int | None:
        found: int | None = await self.session.scalar(
            select(Conversation.version).where(
                Conversation.platform == platform, Conversation.chat_id == chat_id
            )
        )
        return found

    async def chat_messages(self, platform: str, chat_id: str) -> tuple[str | None, list[str]]:
        """The chat's live message and its companions, as the platform spells message ids."""
        row = (
            await self.session.execute(
                select(Conversation.message_id, Conversation.extra_message_ids).where(
                    Conversation.platform == platform, Conversation.chat_id == chat_id
                )
            )
        ).first()
        return (row[0], [str(extra) for extra in row[1] or []]) if row else (None, [])

    async def remember_messages(
        self, platform: str, chat_id: str, message_id: str | None, extra: list[str]
    ) -> None:
        locked = await self.conversation_for_update(platform, chat_id)
        found = await self.session.get(Conversation, locked.id)
        assert found is not None
        found.message_id = message_id
        found.extra_message_ids = extra

    async def mark_processed(self, platform: str, update_id: str) -> bool:
        """Record a delivery; False when it was already handled (a retry or a replay). One
        statement (ON CONFLICT DO NOTHING), so a duplicate costs no savepoint."""
        statement = MARK_PROCESSED[self.session.get_bind().dialect.name]
        done = await self.session.scalar(statement, {"platform": platform, "update_id": update_id})
        return done is not None

    # --- analytics -------------------------------------------------------------------------
    async def events(self, name: str | None = None) -> list[AnalyticsEvent]:
        query = select(AnalyticsEvent).order_by(AnalyticsEvent.id)
        if name is not None:
            query = query.where(AnalyticsEvent.name == name)
        return list(await self.session.scalars(query))


def _card(st: StudentTeacher, user: User) -> TeacherCard:
    return TeacherCard(record(STRecord, st), record(UserRecord, user))
