"""The unit of work: one transaction and the repositories that act inside it.

Engine services hold `Units` (what opens units of work) instead of a session factory, pass
plain values, and never see a session or write SQL (cosmicpython's pattern). A unit commits when
its `async with` block ends normally and rolls back when the block raises.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import housekeeping, outbox
from storage.booking_tx import BookingRequest, BookingRow, DayBounds, TxResult, book_in_session
from storage.outbox import ClaimedJob
from storage.repositories import Repo


class Outbox:
    """The outbox operations of one unit of work (claims, outcomes with their fence)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim_due(self, *, now: datetime, limit: int, lease: timedelta) -> list[ClaimedJob]:
        return await outbox.claim_due(self._session, now=now, limit=limit, lease=lease)

    async def mark_sent(self, job_id: int, *, now: datetime, attempt: int | None = None) -> bool:
        return await outbox.mark_sent(self._session, job_id, now=now, attempt=attempt)

    async def mark_skipped(self, job_id: int, *, reason: str, attempt: int | None = None) -> bool:
        return await outbox.mark_skipped(self._session, job_id, reason=reason, attempt=attempt)

    async def mark_failed(self, job_id: int, *, error: str, attempt: int | None = None) -> bool:
        return await outbox.mark_failed(self._session, job_id, error=error, attempt=attempt)

    async def retry_later(
        self, job_id: int, *, at: datetime, error: str, attempt: int | None = None
    ) -> bool:
        return await outbox.retry_later(self._session, job_id, at=at, error=error, attempt=attempt)

    async def release(self, job_id: int, *, attempt: int) -> bool:
        return await outbox.release(self._session, job_id, attempt=attempt)


class Housekeeper:
    """Pruning of the tables that only grow (processed updates, link uses)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def prune_processed_updates(self, *, before: datetime) -> int:
        return await housekeeping.prune_processed_updates(self._session, before=before)

    async def prune_link_uses(self, *, expired_before: datetime) -> int:
        return await housekeeping.prune_link_uses(self._session, expired_before=expired_before)


class UnitOfWork:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession] | None,
        session: AsyncSession | None = None,
    ) -> None:
        self._factory = factory
        self._session = session
        self._owns = session is None  # a unit over a caller's transaction leaves it to them

    @classmethod
    def over(cls, session: AsyncSession) -> UnitOfWork:
        """A unit inside a transaction the caller already opened (and commits)."""
        return cls(None, session)

    @property
    def session(self) -> AsyncSession:
        assert self._session is not None, "use the unit of work in an `async with` block"
        return self._session

    @property
    def repo(self) -> Repo:
        return Repo(self.session)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.session)

    @property
    def housekeeping(self) -> Housekeeper:
        return Housekeeper(self.session)

    async def __aenter__(self) -> UnitOfWork:
        if self._owns:
            assert self._factory is not None
            self._session = self._factory()
            await self._session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._owns:
            return
        session = self.session
        try:
            if exc_type is None:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
            self._session = None

    async def book(
        self,
        request: BookingRequest,
        day_bounds: DayBounds,
        *,
        reminder_offsets: list[timedelta],
        now: datetime,
    ) -> TxResult:
        """The booking transaction in a savepoint of this unit: a refusal keeps the rest."""
        row = BookingRow(request, day_bounds, reminder_offsets=reminder_offsets, now=now)
        return await book_in_session(self.session, row)


class Units:
    """Opens units of work over one database: what engine services are given."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.factory)

    @classmethod
    def of(cls, source: UnitsLike) -> Units:
        """Front ends and tests may hand over the session factory they built."""
        return source if isinstance(source, Units) else cls(source)


UnitsLike = Units | async_sessionmaker[AsyncSession]
"""What engine services accept: units of work, or the session factory to open them with."""
