"""The worker's housekeeping: prune old de-duplication records at a configurable age.

`processed_updates` stops a platform's redelivery from being handled twice; Telegram redelivers
an unacknowledged update for up to 24 hours, so no setting may shorten that. `link_uses` makes a
deep link sign in only its first chat account; its row may go only once the link has expired.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.settings import Settings
from storage.uow import Units, UnitsLike

log = logging.getLogger(__name__)

REDELIVERY_WINDOW = timedelta(hours=24)
"""How long Telegram keeps redelivering an update: the floor for keeping processed updates."""


@dataclass(frozen=True)
class Pruned:
    processed_updates: int
    link_uses: int


class Housekeeping:
    def __init__(
        self,
        units: UnitsLike,
        *,
        processed_updates_keep: timedelta,
        link_uses_keep: timedelta,
        every: timedelta = timedelta(minutes=10),
    ) -> None:
        self.units = Units.of(units)
        self.processed_updates_keep = max(processed_updates_keep, REDELIVERY_WINDOW)
        self.link_uses_keep = max(link_uses_keep, timedelta(0))
        self.every = every
        self._next: datetime | None = None

    @classmethod
    def from_settings(cls, units: UnitsLike, settings: Settings) -> Housekeeping:
        return cls(
            units,
            processed_updates_keep=timedelta(hours=settings.processed_updates_keep_hours),
            link_uses_keep=timedelta(hours=settings.link_uses_keep_hours),
        )

    async def prune(self, now: datetime) -> Pruned:
        async with self.units() as uow:
            pruned = Pruned(
                await uow.housekeeping.prune_processed_updates(
                    before=now - self.processed_updates_keep
                ),
                await uow.housekeeping.prune_link_uses(expired_before=now - self.link_uses_keep),
            )
        if pruned.processed_updates or pruned.link_uses:
            log.info(
                "pruned %d processed updates and %d link uses",
                pruned.processed_updates,
                pruned.link_uses,
            )
        return pruned

    async def prune_if_due(self, now: datetime) -> Pruned | None:
        """Prune at most once per `every`; a failed prune is tried again on the next call."""
        if self._next is not None and now < self._next:
            return None
        pruned = await self.prune(now)
        self._next = now + self.every
        return pruned
