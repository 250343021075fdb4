"""What an outbox row is for: a typed job kind and its text form in `reminder_jobs.kind`.

One recipient and one message per row, so a retry repeats nothing else. The text forms are the
ones older releases wrote (rows already queued keep working, no data migration):

    student:before_24h, teacher:before_90m   chat reminder before the session
    email:before_24h                         the student's reminder e-mail
    student:start, teacher:start             the video room at session time
    student:nudge                            "Schedule Later": pick a time
    teacher:booked                           the ST's chat notice of a new booking
    student:booked                           the student's, when a coordinator booked for them
    email:confirmation                       the student's invite e-mail
    email:confirmation:teacher               the ST's invite e-mail
    cancelled:chat:<user>[:moved]            the other person's chat notice of a cancellation
    cancelled:email:<user>[:moved]           each person's calendar CANCEL e-mail
                                             (":moved": a reschedule released the time)
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

__all__ = ["Job", "JobKind", "Role"]

Role = Literal["student", "teacher"]
"""Whose copy a per-person message is."""

ROLES: tuple[Role, ...] = ("student", "teacher")


class JobKind(enum.Enum):
    REMINDER = "reminder"
    REMINDER_EMAIL = "reminder_email"
    ROOM = "room"
    NUDGE = "nudge"
    BOOKED = "booked"
    CONFIRMATION_EMAIL = "confirmation_email"
    CANCELLED_CHAT = "cancelled_chat"
    CANCELLED_EMAIL = "cancelled_email"


# The roles each kind may be sent to; the text form leaves out what is implied.
_ROLES: dict[JobKind, tuple[Role, ...]] = {
    JobKind.REMINDER: ROLES,
    JobKind.REMINDER_EMAIL: ("student",),
    JobKind.ROOM: ROLES,
    JobKind.NUDGE: ("student",),
    JobKind.BOOKED: ROLES,  # the student's copy only when someone else booked for them
    JobKind.CONFIRMATION_EMAIL: ROLES,
    JobKind.CANCELLED_CHAT: ROLES,  # the role is not stored: the row names the user
    JobKind.CANCELLED_EMAIL: ROLES,
}
_BEFORE = (JobKind.REMINDER, JobKind.REMINDER_EMAIL)
_CANCELLED = (JobKind.CANCELLED_CHAT, JobKind.CANCELLED_EMAIL)
_LABEL = re.compile(r"before_([1-9][0-9]{0,5})([hm])")
_USER = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class Job:
    """One outbox message: its kind and what the kind needs (whose, how long before, whom)."""

    kind: JobKind
    role: Role = "student"
    before: timedelta | None = None  # REMINDER, REMINDER_EMAIL: this long before the start
    user_id: int | None = None  # CANCELLED_*: the recipient
    moved: bool = False  # CANCELLED_*: released by a reschedule, not cancelled

    def __post_init__(self) -> None:
        if self.role not in _ROLES[self.kind]:
            raise ValueError(f"{self.kind.name} is not sent to the {self.role}")
        if (self.before is not None) != (self.kind in _BEFORE):
            raise ValueError(f"{self.kind.name}: `before` is for reminders only, and required")
        if self.before is not None and (
            self.before <= timedelta(0) or self.before % timedelta(minutes=1)
        ):
            raise ValueError("a reminder comes a positive whole number of minutes before")
        cancelled = self.kind in _CANCELLED
        if (self.user_id is not None) != cancelled or (self.moved and not cancelled):
            raise ValueError(f"{self.kind.name}: `user_id` and `moved` are for cancellations")
        if cancelled and self.role != "student":
            raise ValueError("a cancellation names its recipient by user id, not by role")

    # --- constructors, named for the message ---------------------------------------------
    @classmethod
    def reminder(cls, role: Role, before: timedelta) -> Job:
        return cls(JobKind.REMINDER, role, before=before)

    @classmethod
    def reminder_email(cls, before: timedelta) -> Job:
        return cls(JobKind.REMINDER_EMAIL, before=before)

    @classmethod
    def room(cls, role: Role) -> Job:
        return cls(JobKind.ROOM, role)

    @classmethod
    def confirmation_email(cls, role: Role) -> Job:
        return cls(JobKind.CONFIRMATION_EMAIL, role)

    @classmethod
    def cancelled_chat(cls, user_id: int, *, moved: bool = False) -> Job:
        return cls(JobKind.CANCELLED_CHAT, user_id=user_id, moved=moved)

    @classmethod
    def cancelled_email(cls, user_id: int, *, moved: bool = False) -> Job:
        return cls(JobKind.CANCELLED_EMAIL, user_id=user_id, moved=moved)

    @classmethod
    def nudge(cls) -> Job:
        return cls(JobKind.NUDGE)

    @classmethod
    def booked(cls, role: Role = "teacher") -> Job:
        return cls(JobKind.BOOKED, role)

    # --- text form -------------------------------------------------------------------------
    def format(self) -> str:
        """The text stored in `reminder_jobs.kind` (unique per session)."""
        kind = self.kind
        if kind is JobKind.REMINDER:
            return f"{self.role}:{_label(self.before)}"
        if kind is JobKind.REMINDER_EMAIL:
            return f"email:{_label(self.before)}"
        if kind is JobKind.ROOM:
            return f"{self.role}:start"
        if kind is JobKind.NUDGE:
            return "student:nudge"
        if kind is JobKind.BOOKED:
            return f"{self.role}:booked"
        if kind is JobKind.CONFIRMATION_EMAIL:
            return "email:confirmation" + (":teacher" if self.role == "teacher" else "")
        channel = "chat" if kind is JobKind.CANCELLED_CHAT else "email"
        return f"cancelled:{channel}:{self.user_id}" + (":moved" if self.moved else "")

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> Job:
        """The job a stored kind stands for; ValueError for text no release ever wrote."""
        job = cls._parse(text)
        if job.format() != text:  # "before_60m", "cancelled:chat:007": not what we write
            raise ValueError(f"unknown job kind {text!r}")
        return job

    @classmethod
    def _parse(cls, text: str) -> Job:
        match text.split(":"):
            case ["email", "confirmation"]:
                return cls.confirmation_email("student")
            case ["email", "confirmation", "teacher"]:
                return cls.confirmation_email("teacher")
            case ["email", label]:
                return cls.reminder_email(_offset(label, text))
            case ["student", "nudge"]:
                return cls.nudge()
            case [("student" | "teacher") as role, "booked"]:
                return cls.booked(role)
            case [("student" | "teacher") as role, "start"]:
                return cls.room(role)
            case [("student" | "teacher") as role, label]:
                return cls.reminder(role, _offset(label, text))
            case ["cancelled", ("chat" | "email") as channel, user, *rest] if _USER.fullmatch(user):
                make = cls.cancelled_chat if channel == "chat" else cls.cancelled_email
                if rest in ([], ["moved"]):
                    return make(int(user), moved=bool(rest))
        raise ValueError(f"unknown job kind {text!r}")


def _label(before: timedelta | None) -> str:
    """24 h -> "before_24h", 90 min -> "before_90m" (the labels older releases wrote)."""
    assert before is not None
    minutes = before // timedelta(minutes=1)
    return f"before_{minutes // 60}h" if minutes % 60 == 0 else f"before_{minutes}m"


def _offset(label: str, text: str) -> timedelta:
    found = _LABEL.fullmatch(label)
    if found is None:
        raise ValueError(f"unknown job kind {text!r}")
    amount = int(found[1])
    return timedelta(hours=amount) if found[2] == "h" else timedelta(minutes=amount)
