"""What each outbox row sends, checked against the session as it is *now* (it may have moved).

Each row's kind is a `storage.jobs.Job` (one recipient and one message, so a retry repeats
nothing else): reminders, the video room at session time, the "Schedule Later" nudge, the ST's
booking notice, both invite e-mails, the student's reminder e-mails, and after a cancellation the
other person's chat notice and both calendar CANCEL e-mails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from babel.dates import format_timedelta

from engine.booking import other_party
from engine.chat import messages as m
from engine.chat.formatting import format_datetime_long, normalize_locale, viewer_timezone
from engine.chat.views import CourseInfo, TeacherInfo, Viewer, calendar_event
from engine.followup.calendar import (
    CalendarEvent,
    google_calendar_url,
    ics,
    organizer_of,
    outlook_calendar_url,
)
from engine.followup.join import join_url
from engine.followup.manage import ensure_room, manage_data
from engine.followup.notify import (
    EmailContent,
    EmailError,
    EmailSender,
    Role,
    render_cancellation,
    render_confirmation,
    render_reminder,
)
from engine.followup.recipient import notice_order
from engine.followup.reminders import Outcome, Pacers, Retry, Sent, Skip, error_summary
from engine.followup.senders import ChatSender, OutButton, OutMessage, SendError
from engine.followup.st_notice import booking_text
from engine.followup.video import VideoProvider
from engine.links import ManageClaims, manage_link_expiry, sign_manage
from engine.settings import Settings
from storage.jobs import Job, JobKind
from storage.outbox import ClaimedJob
from storage.records import CourseRecord, IdentityRecord, SessionRecord, SessionStatus, UserRecord
from storage.uow import Units, UnitsLike

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Facts:
    session: SessionRecord
    course: CourseRecord
    student: UserRecord
    teacher: UserRecord | None
    identities: dict[int, list[IdentityRecord]]
    canceller: UserRecord | None = None  # who cancelled, when neither the student nor the ST
    booker: UserRecord | None = None  # who booked, when not the student (a coordinator)


class Dispatcher:
    """The worker's JobHandler: builds each message in its recipient's zone and locale."""

    def __init__(
        self,
        units: UnitsLike,
        settings: Settings,
        senders: Sequence[ChatSender],
        email: EmailSender | None,
        video: VideoProvider,
        pacers: Pacers | None = None,
        sign_in_link: Callable[[str], str] | None = None,
    ) -> None:
        """`pacers`: each platform's rate limits; `sign_in_link`: turns a signed payload into
        the URL that opens the chat signed in (a platform's identity, e.g. a Telegram deep
        link), for e-mails' "Manage" buttons; without one they lead to the dashboard."""
        self.units = Units.of(units)
        self.settings = settings
        self.senders = {sender.platform: sender for sender in senders}
        self.email = email
        self.video = video
        self.pacers = pacers or Pacers({})
        self.sign_in_link = sign_in_link

    async def __call__(self, job: ClaimedJob, now: datetime) -> Outcome:
        facts = await self._facts(job.session_id)
        if facts is None:
            return Skip("session no longer exists")
        try:
            what = Job.parse(job.kind)
        except ValueError:
            # Not a kind this release knows (a newer one wrote it): left for a worker that does.
            return Retry(None, "unknown job kind")
        match what.kind:
            case JobKind.CONFIRMATION_EMAIL:
                return await self._confirmation(facts, what.role)
            case JobKind.REMINDER_EMAIL:
                return await self._reminder_email(facts, what, now)
            case JobKind.CANCELLED_EMAIL:
                assert what.user_id is not None
                return await self._cancellation_email(facts, what.user_id, job.due_at, what.moved)
            case JobKind.CANCELLED_CHAT:
                assert what.user_id is not None
                return await self._cancellation_chat(facts, what.user_id, what.moved)
            case JobKind.NUDGE | JobKind.BOOKED | JobKind.ROOM | JobKind.REMINDER:
                return await self._to_role(facts, what, job, now)

    async def _to_role(self, facts: Facts, what: Job, job: ClaimedJob, now: datetime) -> Outcome:
        """The chat messages addressed to the session's student or ST."""
        recipient = facts.student if what.role == "student" else facts.teacher
        if recipient is None:
            return Skip("no recipient")
        if what.kind is JobKind.NUDGE:
            return await self._nudge(facts, recipient)
        if facts.session.status != SessionStatus.SCHEDULED.value:
            return Skip(f"session is {facts.session.status}")
        if what.kind is JobKind.BOOKED and recipient is facts.student:
            return await self._chat(facts, recipient, self._booked_for(facts, recipient))
        if what.kind is JobKind.BOOKED:
            text = booking_text(facts.session, facts.course, facts.student, recipient)
            return await self._chat(facts, recipient, OutMessage(text))
        start, end = facts.session.scheduled_start, facts.session.scheduled_end
        assert start is not None and end is not None
        if what.kind is JobKind.ROOM:
            if now >= end:
                return Skip("session already over")
            url = await ensure_room(self.units, facts.session.id, self.video)
            if url is None:
                return Skip("session no longer scheduled")
            return await self._chat(facts, recipient, self._starting(facts, recipient, url))
        assert what.before is not None  # JobKind.REMINDER
        if now >= start:
            log.info(
                "reminder %s for session %s skipped: already started", job.kind, job.session_id
            )
            return Skip("session already started")
        if self._superseded(what.before, start, now):
            log.info(
                "reminder %s for session %s skipped: a later one is due", job.kind, job.session_id
            )
            return Skip("a later reminder is already due")
        return await self._chat(facts, recipient, self._reminder(facts, recipient, now))

    def _superseded(self, before: timedelta, start: datetime, now: datetime) -> bool:
        """A late worker sends only the latest due reminder, not the 24 h one an hour before."""
        return any(
            timedelta(minutes=minutes) < before and now >= start - timedelta(minutes=minutes)
            for minutes in self.settings.reminder_offsets_minutes
        )

    # --- messages ---------------------------------------------------------------------------
    def _when(self, facts: Facts, user: UserRecord) -> str:
        assert facts.session.scheduled_start is not None
        return format_datetime_long(
            facts.session.scheduled_start,
            viewer_timezone(user.timezone),  # UTC when the platform's row has no zone
            normalize_locale(user.locale),
        )

    def _other(self, facts: Facts, user: UserRecord) -> str:
        return other_party(user.id, facts.student.id, facts.student, facts.teacher).name

    def _canceller(self, facts: Facts, user: UserRecord) -> str:
        """Who cancelled, by name: usually the other person, or whoever acted for them."""
        by = facts.session.cancelled_by
        for person in (facts.student, facts.teacher, facts.canceller):
            if person is not None and person.id == by:
                return person.name
        return self._other(facts, user)  # cancelled before who cancelled was kept

    def _reminder(self, facts: Facts, user: UserRecord, now: datetime) -> OutMessage:
        assert facts.session.scheduled_start is not None
        left = format_timedelta(
            facts.session.scheduled_start - now,
            add_direction=True,
            locale=normalize_locale(user.locale),
        )
        text = m.REMINDER.format(
            course=facts.course.title,
            name=self._other(facts, user),
            left=left,
            when=self._when(facts, user),
        )
        sid = facts.session.id
        row = [OutButton(m.JOIN, manage_data("j", sid))]
        if user.id == facts.student.id:
            row.append(OutButton(m.RESCHEDULE, manage_data("r", sid)))
        row.append(OutButton(m.CANCEL_SESSION, manage_data("c", sid)))
        return OutMessage(text, (tuple(row),))

    def _booked_for(self, facts: Facts, student: UserRecord) -> OutMessage:
        """The student's notice of a session a coordinator booked for them, with the same
        buttons as a reminder, so they can still move or cancel it themselves."""
        text = m.BOOKED_FOR_YOU.format(
            by=facts.booker.name if facts.booker else m.A_COORDINATOR,
            course=facts.course.title,
            name=self._other(facts, student),
            when=self._when(facts, student),
        )
        sid = facts.session.id
        row = (
            OutButton(m.JOIN, manage_data("j", sid)),
            OutButton(m.RESCHEDULE, manage_data("r", sid)),
            OutButton(m.CANCEL_SESSION, manage_data("c", sid)),
        )
        return OutMessage(text, (row,))

    def _starting(self, facts: Facts, user: UserRecord, url: str) -> OutMessage:
        text = m.STARTING.format(
            course=facts.course.title, name=self._other(facts, user), when=self._when(facts, user)
        )
        return OutMessage(text, ((OutButton(m.OPEN_ROOM, url=url),),))

    async def _nudge(self, facts: Facts, user: UserRecord) -> Outcome:
        if facts.session.status != SessionStatus.UNSCHEDULED.value:
            return Skip("already scheduled or cancelled")
        text = m.NUDGE.format(course=facts.course.title)
        button = OutButton(m.SCHEDULE_NOW, manage_data("n", facts.course.id))
        return await self._chat(facts, user, OutMessage(text, ((button,),)))

    async def _cancellation_chat(self, facts: Facts, user_id: int, moved: bool) -> Outcome:
        user = facts.student if user_id == facts.student.id else facts.teacher
        if user is None:
            return Skip("no recipient")
        text = (m.OTHER_MOVED if moved else m.OTHER_CANCELLED).format(
            who=self._canceller(facts, user),
            course=facts.course.title,
            when=self._when(facts, user),
        )
        reason = facts.session.cancel_reason
        if reason and not moved:
            text += "\n" + m.CANCEL_REASON.format(reason=reason)
        buttons: tuple[tuple[OutButton, ...], ...] = ()
        if user is facts.student and not moved and facts.session.cancelled_by != user.id:
            # The student lost a session they wanted: one press reopens the wizard.
            again = OutButton(m.BOOK_ANOTHER_TIME, data=manage_data("n", facts.course.id))
            buttons = ((again,),)
        return await self._chat(facts, user, OutMessage(text, buttons))

    # --- delivery ---------------------------------------------------------------------------
    async def _chat(self, facts: Facts, user: UserRecord, message: OutMessage) -> Outcome:
        """Once, to the person's one chat (engine/followup/recipient.py) among the platforms
        this worker can send on."""
        order = notice_order(facts.identities.get(user.id, []), user.notify_platform)
        chat = next((i for i in order if i.platform in self.senders), None)
        if chat is None or chat.chat_id is None:
            return Skip("no linked chat account")
        sender, chat_id = self.senders[chat.platform], chat.chat_id
        await self.pacers.wait(sender.platform, chat_id)
        try:
            await sender.send(chat_id, message)
        except SendError as error:
            if error.permanent:
                return Skip(f"{sender.platform}: {error_summary(error)}")
            if error.retry_after is not None:
                await self.pacers.pause(sender.platform, error.retry_after)
                return Retry(timedelta(seconds=error.retry_after), error_summary(error))
            return Retry(None, error_summary(error))
        return Sent()

    def _people(self, facts: Facts, role: Role) -> tuple[UserRecord, UserRecord] | None:
        """(recipient, the other person) for the student's or the ST's copy."""
        if facts.teacher is None:
            return None
        if role == "student":
            return facts.student, facts.teacher
        return facts.teacher, facts.student

    def _manage_url(self, facts: Facts, user: UserRecord) -> str:
        """ "Manage in Telegram": signs the reader in and shows /mysessions, until a day after
        the session ends (engine/links.py); the same link on every retry of the e-mail."""
        end = facts.session.scheduled_end
        assert end is not None
        claims = ManageClaims(user_id=user.id, expires_at=manage_link_expiry(end))
        if self.sign_in_link is None:
            return self.settings.dashboard_url
        return self.sign_in_link(sign_manage(claims, self.settings.link_secret))

    def _join_url(self, facts: Facts, user: UserRecord) -> str:
        """The reader's own join link (engine/followup/join.py), valid until a day after the
        session ends; derived from the session, so the same on every retry of the e-mail."""
        end = facts.session.scheduled_end
        assert end is not None
        settings = self.settings
        return join_url(
            settings.public_base_url, settings.link_secret, facts.session.id, user.id, end
        )

    async def _confirmation(self, facts: Facts, role: Role) -> Outcome:
        """Each person's "Session Booked!" e-mail with the invite (both are ATTENDEEs); their
        join link is the invite's LOCATION and URL and the calendar links' location."""
        booked, course = facts.session, facts.course
        people = self._people(facts, role)
        if self.email is None or people is None or not people[0].email:
            return Skip("no e-mail sender or address")
        recipient, other = people
        assert recipient.email is not None and booked.scheduled_start is not None
        if booked.status != SessionStatus.SCHEDULED.value:
            return Skip(f"session is {booked.status}")
        join = self._join_url(facts, recipient)
        event = replace(self._event(facts), location=join, url=join)
        content = render_confirmation(
            role=role,
            recipient_name=recipient.name,
            recipient_email=recipient.email,
            other_name=other.name,
            course=course.title,
            when=self._when(facts, recipient),
            minutes=course.session_minutes,
            note=booked.note,
            reminders=booked.reminders if role == "student" else True,
            google_url=google_calendar_url(event),
            outlook_url=outlook_calendar_url(event),
            office365_url=outlook_calendar_url(event, office365=True),
            manage_url=self._manage_url(facts, recipient),
            dashboard_url=self.settings.dashboard_url,
            join_url=join,
            ics=ics(event, stamp=booked.created_at),  # same bytes on every retry
        )
        # The student's key is the one older releases used, so an e-mail being retried across
        # an upgrade is still sent once.
        key = f"session-{booked.id}-confirmation-{booked.sequence}"
        if role == "teacher":
            key += f"-{recipient.id}"
        return await self._deliver(content, key)

    async def _reminder_email(self, facts: Facts, what: Job, now: datetime) -> Outcome:
        booked, student, teacher = facts.session, facts.student, facts.teacher
        if self.email is None or not student.email or teacher is None:
            return Skip("no e-mail sender or address")
        if booked.status != SessionStatus.SCHEDULED.value:
            return Skip(f"session is {booked.status}")
        start = booked.scheduled_start
        assert start is not None and what.before is not None
        if now >= start or self._superseded(what.before, start, now):
            return Skip("too late for this reminder")
        content = render_reminder(
            recipient_name=student.name,
            recipient_email=student.email,
            course=facts.course.title,
            teacher=teacher.name,
            when=self._when(facts, student),
            left=format_timedelta(
                start - now, add_direction=True, locale=normalize_locale(student.locale)
            ),
            cutoff_hours=self.settings.change_cutoff_minutes / 60,
            manage_url=self._manage_url(facts, student),
            join_url=self._join_url(facts, student),
        )
        label = what.format().removeprefix("email:")  # "before_24h": the key older releases used
        return await self._deliver(content, f"session-{booked.id}-{label}-{booked.sequence}")

    async def _cancellation_email(
        self, facts: Facts, user_id: int, due_at: datetime, moved: bool
    ) -> Outcome:
        """Each person's cancellation, written for them; the CANCEL is stamped with the moment
        of cancelling (`due_at` of the job only for sessions cancelled before that was kept)."""
        role: Role = "student" if user_id == facts.student.id else "teacher"
        people = self._people(facts, role)
        if self.email is None or people is None or people[0].id != user_id:
            return Skip("no e-mail sender or address")
        recipient, other = people
        if not recipient.email:
            return Skip("no e-mail sender or address")
        booked = facts.session
        event = self._event(facts)
        content = render_cancellation(
            role=role,
            recipient_name=recipient.name,
            recipient_email=recipient.email,
            other_name=other.name,
            cancelled_by_recipient=booked.cancelled_by == recipient.id,
            course=facts.course.title,
            when=self._when(facts, recipient),
            ics=ics(event, method="CANCEL", stamp=booked.cancelled_at or due_at),
            moved=moved,
            cancelled_by_name=self._canceller(facts, recipient),
            reason=None if moved else booked.cancel_reason,
        )
        key = f"session-{booked.id}-cancel-{booked.sequence}-{recipient.id}"
        return await self._deliver(content, key)

    async def _deliver(self, content: EmailContent, key: str) -> Outcome:
        """The idempotency key makes a retried job safe: the provider sends once per key."""
        assert self.email is not None
        try:
            await self.email.send(content, idempotency_key=key)
        except EmailError as error:
            if not error.retryable:
                return Skip(f"e-mail refused: {error_summary(error)}")
            after = timedelta(seconds=error.retry_after) if error.retry_after else None
            return Retry(after, error_summary(error))
        return Sent()

    def _event(self, facts: Facts) -> CalendarEvent:
        """The invite as the booking sent it, at the session's current SEQUENCE."""
        booked, course, teacher, student = facts.session, facts.course, facts.teacher, facts.student
        assert teacher is not None and booked.scheduled_start is not None
        event = calendar_event(
            CourseInfo(
                course.id, course.slug, course.title, course.session_count, course.session_minutes
            ),
            TeacherInfo(
                teacher.id, teacher.name, teacher.avatar, teacher.timezone, True, 0, teacher.email
            ),
            booked.scheduled_start,
            booked.id,
            booked.reminders,
            booked.note,
            Viewer(student.id, student.name, student.timezone, student.locale, student.email),
            organizer_of(self.settings.email_from),
        )
        return replace(event, sequence=booked.sequence)

    async def _facts(self, session_id: int) -> Facts | None:
        async with self.units() as uow:
            repo = uow.repo
            booked = await repo.session_by_id(session_id)
            if booked is None:
                return None
            course = await repo.course(booked.course_id)
            student = await repo.user(booked.student_id)
            teacher = await repo.user(booked.teacher_id) if booked.teacher_id else None
            assert course is not None and student is not None
            identities = {
                user.id: await repo.identities_of(user.id)
                for user in (student, teacher)
                if user is not None
            }
            by = booked.cancelled_by
            canceller = (
                await repo.user(by)
                if by is not None and by not in (student.id, booked.teacher_id)
                else None
            )
            made_by = booked.created_by
            booker = (
                await repo.user(made_by) if made_by is not None and made_by != student.id else None
            )
            return Facts(booked, course, student, teacher, identities, canceller, booker)
