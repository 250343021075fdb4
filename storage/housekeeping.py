"""Deleting de-duplication records that can no longer matter (the worker calls these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LinkUse, ProcessedUpdate


async def prune_processed_updates(session: AsyncSession, *, before: datetime) -> int:
    """Forget deliveries handled before `before`; the caller keeps the platform's redelivery
    window, or a late retry would be handled twice."""
    old = delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < before)
    return await _delete(session, old)


async def prune_link_uses(session: AsyncSession, *, expired_before: datetime) -> int:
    """Forget who opened links that expired before `expired_before`.

    A link still valid keeps its row whatever its age: without it a forwarded link would sign in
    the next account that opens it. Rows of unknown expiry (NULL, from before the column) stay.
    """
    expired = delete(LinkUse).where(
        LinkUse.expires_at.is_not(None), LinkUse.expires_at < expired_before
    )
    return await _delete(session, expired)


async def _delete(session: AsyncSession, statement: Delete) -> int:
    """Rows deleted (a DELETE's execute result is a CursorResult, which typing does not see)."""
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount
