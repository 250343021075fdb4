"""Outbox job kinds: typed in the code, the same text in `reminder_jobs.kind` as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.jobs import Job, JobKind

# Every kind with the text older releases wrote for it: rows already queued must keep working.
STORED = {
    "student:before_24h": Job.reminder("student", timedelta(hours=24)),
    "teacher:before_1h": Job.reminder("teacher", timedelta(hours=1)),
    "teacher:before_90m": Job.reminder("teacher", timedelta(minutes=90)),
    "email:before_24h": Job.reminder_email(timedelta(hours=24)),
    "email:before_45m": Job.reminder_email(timedelta(minutes=45)),
    "student:start": Job.room("student"),
    "teacher:start": Job.room("teacher"),
    "student:nudge": Job.nudge(),
    "teacher:booked": Job.booked(),
    "student:booked": Job.booked("student"),
    "email:confirmation": Job.confirmation_email("student"),
    "email:confirmation:teacher": Job.confirmation_email("teacher"),
    "cancelled:chat:7": Job.cancelled_chat(7),
    "cancelled:chat:7:moved": Job.cancelled_chat(7, moved=True),
    "cancelled:email:12": Job.cancelled_email(12),
    "cancelled:email:12:moved": Job.cancelled_email(12, moved=True),
}


def test_every_job_kind_has_an_example_here() -> None:
    assert {job.kind for job in STORED.values()} == set(JobKind)


@pytest.mark.parametrize(("text", "job"), STORED.items(), ids=list(STORED))
def test_each_stored_kind_parses_to_its_job_and_formats_back_to_the_same_text(
    text: str, job: Job
) -> None:
    assert Job.parse(text) == job
    assert job.format() == text
    assert Job.parse(job.format()) == job


@pytest.mark.parametrize(
    "text",
    [
        "",
        "student",
        "student:before_60m",  # written as before_1h, never as minutes
        "student:before_0h",
        "student:before_24",
        "teacher:nudge",
        "teacher:booked:x",
        "email:start",
        "email:confirmation:student",
        "cancelled:chat:007",
        "cancelled:chat:x",
        "cancelled:sms:1",
        "cancelled:email:1:later",
        "cancelled:chat:1:moved:moved",
        "student:before_24h:extra",
    ],
)
def test_text_no_release_wrote_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Job.parse(text)


def test_a_job_refuses_parameters_its_kind_does_not_take() -> None:
    with pytest.raises(ValueError):
        Job(JobKind.NUDGE, "teacher")  # nudges go to the student
    with pytest.raises(ValueError):
        Job(JobKind.REMINDER, "student")  # a reminder needs its offset
    with pytest.raises(ValueError):
        Job.reminder("student", timedelta(seconds=90))  # labels are whole minutes
    with pytest.raises(ValueError):
        Job(JobKind.ROOM, "student", user_id=3)
    with pytest.raises(ValueError):
        Job(JobKind.CANCELLED_CHAT)  # a cancellation names its recipient
