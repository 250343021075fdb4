"""The reminder outbox: claim due jobs under a lease, then record each job's outcome.

Claiming is one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`: on
PostgreSQL concurrent workers skip each other's rows instead of queueing behind them; on SQLite
(no FOR UPDATE, which SQLAlchemy leaves out there) writers are serialised by BEGIN IMMEDIATE, so
the same statement is just as safe. The lease (`locked_until`) is logical, not a held lock: the
claim commits at once, and a crashed worker's jobs become claimable again when it runs out.

Every claim raises `attempts`, which makes it the claim's fencing token: a completion carrying
`attempt=` applies only while no other worker has re-claimed the job since.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ReminderJob

JOBS = cast(Table, ReminderJob.__table__)

ERROR_MAX_CHARS = 2000
"""`last_error` keeps the start of an error: enough to diagnose, never a megabyte of HTML."""


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    session_id: int
    kind: str
    due_at: datetime
    attempts: int  # including this claim: also the claim's fencing token


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs, oldest first; commit soon so the row locks are short."""
    due = (
        select(JOBS.c.id)
        .where(
            JOBS.c.status == JobStatus.PENDING.value,
            JOBS.c.due_at <= now,
            or_(JOBS.c.locked_until.is_(None), JOBS.c.locked_until < now),
        )
        .order_by(JOBS.c.due_at, JOBS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(JOBS)
        .where(JOBS.c.id.in_(due))
        .values(locked_until=now + lease, attempts=JOBS.c.attempts + 1)
        .returning(JOBS.c.id, JOBS.c.session_id, JOBS.c.kind, JOBS.c.due_at, JOBS.c.attempts)
    )
    rows = (await session.execute(claim)).all()
    jobs = [ClaimedJob(*row) for row in rows]
    return sorted(jobs, key=lambda job: (job.due_at, job.id))  # RETURNING has no order


def _held(job_id: int, attempt: int | None) -> ColumnElement[bool]:
    """Still pending and, given the claim's attempt number, not re-claimed by anyone since."""
    held = and_(JOBS.c.id == job_id, JOBS.c.status == JobStatus.PENDING.value)
    return held if attempt is None else and_(held, JOBS.c.attempts == attempt)


async def _complete(session: AsyncSession, job_id: int, attempt: int | None, **values: Any) -> bool:
    statement = (
        update(JOBS)
        .where(_held(job_id, attempt))
        .values(locked_until=None, **values)
        .returning(JOBS.c.id)
    )
    return (await session.execute(statement)).first() is not None


async def mark_sent(
    session: AsyncSession, job_id: int, *, now: datetime, attempt: int | None = None
) -> bool:
    """The reminder went out. False: the job was cancelled, finished or re-claimed meanwhile."""
    return await _complete(session, job_id, attempt, status=JobStatus.SENT.value, sent_at=now)


async def mark_skipped(
    session: AsyncSession, job_id: int, *, reason: str, attempt: int | None = None
) -> bool:
    """Nothing to send (session cancelled, reminders off, no chat linked): done, not failed."""
    return await _complete(
        session,
        job_id,
        attempt,
        status=JobStatus.SKIPPED.value,
        last_error=reason[:ERROR_MAX_CHARS],
    )


async def retry_later(
    session: AsyncSession,
    job_id: int,
    *,
    at: datetime,
    error: str,
    attempt: int | None = None,
) -> bool:
    """Back to the queue at `at`, lease released so that any worker may take it then."""
    return await _complete(session, job_id, attempt, due_at=at, last_error=error[:ERROR_MAX_CHARS])


async def mark_failed(
    session: AsyncSession, job_id: int, *, error: str, attempt: int | None = None
) -> bool:
    """Given up after too many attempts; stays in the table for someone to look at."""
    return await _complete(
        session, job_id, attempt, status=JobStatus.FAILED.value, last_error=error[:ERROR_MAX_CHARS]
    )


async def release(session: AsyncSession, job_id: int, *, attempt: int) -> bool:
    """Hand back an untried claimed job now rather than at lease expiry.

    The claim still counts as an attempt: lowering `attempts` again would let a later claim reuse
    this claim's number, and a stale worker holding it could then complete someone else's claim.
    """
    return await _complete(session, job_id, attempt)


async def cancel_pending(session: AsyncSession, session_id: int) -> int:
    """Cancel a session's unsent reminders (cancel, reschedule); returns how many there were."""
    statement = (
        update(JOBS)
        .where(JOBS.c.session_id == session_id, JOBS.c.status == JobStatus.PENDING.value)
        .values(status=JobStatus.CANCELLED.value, locked_until=None)
        .returning(JOBS.c.id)
    )
    return len((await session.execute(statement)).all())


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """Rows per status, every status present (0 when none): the outbox's size for /metrics."""
    statement = select(JOBS.c.status, func.count()).group_by(JOBS.c.status)
    counts = {status.value: 0 for status in JobStatus}
    counts.update({str(status): int(n) for status, n in (await session.execute(statement)).all()})
    return counts
