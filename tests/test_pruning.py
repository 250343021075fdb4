"""The worker prunes old de-duplication rows: processed updates after at least a day, a deep
link's first-use record only once the link has expired. Also: the pool size comes from settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from engine.accounts import Accounts
from engine.followup.housekeeping import Housekeeping
from engine.links import LinkClaims, LinkError, sign
from engine.settings import Settings
from storage.models import LinkUse, ProcessedUpdate
from tests.channels import eml
from tests.factories import NOW, make_world
from tests.test_reminders import Clock

Factory = async_sessionmaker[AsyncSession]
SECRET = "test-link-secret-with-at-least-32-bytes!"


async def processed_ids(db: Factory) -> set[str]:
    async with db() as session:
        return set(await session.scalars(select(ProcessedUpdate.update_id)))


async def link_digests(db: Factory) -> set[str]:
    async with db() as session:
        return set(await session.scalars(select(LinkUse.digest)))


async def add_processed(db: Factory, **ages: timedelta) -> None:
    async with db() as session, session.begin():
        for update_id, age in ages.items():
            session.add(
                ProcessedUpdate(platform="telegram", update_id=update_id, processed_at=NOW - age)
            )


async def test_processed_updates_older_than_the_configured_age_are_pruned(pg: Factory) -> None:
    await add_processed(
        pg, old=timedelta(hours=73), day=timedelta(hours=30), new=timedelta(hours=1)
    )
    housekeeping = Housekeeping(
        pg, processed_updates_keep=timedelta(hours=72), link_uses_keep=timedelta(0)
    )
    pruned = await housekeeping.prune(NOW)
    assert pruned.processed_updates == 1
    assert await processed_ids(pg) == {"day", "new"}


async def test_processed_updates_are_kept_a_day_however_short_the_setting(pg: Factory) -> None:
    await add_processed(pg, day=timedelta(hours=25), hour=timedelta(hours=23))
    housekeeping = Housekeeping(
        pg, processed_updates_keep=timedelta(minutes=5), link_uses_keep=timedelta(0)
    )
    await housekeeping.prune(NOW)
    assert await processed_ids(pg) == {"hour"}  # Telegram may still redeliver it
    with pytest.raises(ValidationError):
        Settings(processed_updates_keep_hours=1)


async def test_link_uses_go_only_after_their_link_expired(pg: Factory) -> None:
    async with pg() as session, session.begin():
        session.add_all(
            [
                LinkUse(
                    digest="expired",
                    platform="telegram",
                    external_id="1",
                    used_at=NOW - timedelta(days=5),
                    expires_at=NOW - timedelta(days=2),
                ),
                LinkUse(
                    digest="old-but-valid",
                    platform="telegram",
                    external_id="2",
                    used_at=NOW - timedelta(days=60),
                    expires_at=NOW + timedelta(days=1),
                ),
                LinkUse(
                    digest="just-expired",
                    platform="telegram",
                    external_id="3",
                    used_at=NOW - timedelta(days=5),
                    expires_at=NOW - timedelta(hours=1),
                ),
                LinkUse(
                    digest="unknown-expiry",
                    platform="telegram",
                    external_id="4",
                    used_at=NOW - timedelta(days=400),
                ),
            ]
        )
    housekeeping = Housekeeping(
        pg, processed_updates_keep=timedelta(days=2), link_uses_keep=timedelta(hours=24)
    )
    pruned = await housekeeping.prune(NOW)
    assert pruned.link_uses == 1
    assert await link_digests(pg) == {"old-but-valid", "just-expired", "unknown-expiry"}


async def test_a_forwarded_long_lived_link_stays_refused_after_the_worker_prunes(
    pg: Factory,
) -> None:
    world = await make_world(pg)
    settings = Settings(link_secret=SECRET, link_uses_keep_hours=0)
    expires = NOW + timedelta(days=30)
    link = sign(
        LinkClaims(world.student.id, world.course.id, None, "CDET", expires),
        SECRET,
    )
    accounts = Accounts(pg, settings)
    await accounts.link_from_payload("telegram", "7001", "7001", link, NOW)
    async with pg() as session:
        (stored,) = await session.scalars(select(LinkUse.expires_at))
    assert stored == expires

    later = NOW + timedelta(days=10)
    await Housekeeping.from_settings(pg, settings).prune(later)
    with pytest.raises(LinkError) as refused:
        await accounts.link_from_payload("telegram", "7002", "7002", link, later)
    assert refused.value.reason == "used"

    await Housekeeping.from_settings(pg, settings).prune(expires + timedelta(seconds=1))
    assert await link_digests(pg) == set()


async def test_the_running_worker_prunes_with_the_ages_from_settings(
    pg: Factory, tmp_path: Path
) -> None:
    await add_processed(pg, old=timedelta(hours=50), new=timedelta(hours=10))
    settings = Settings(processed_updates_keep_hours=48)
    worker = build_worker(settings, pg, [], Clock(NOW), email=eml(tmp_path, settings))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(stop))
    try:
        for _ in range(100):
            if await processed_ids(pg) == {"new"}:
                break
            await asyncio.sleep(0.05)
        assert await processed_ids(pg) == {"new"}
    finally:
        stop.set()
        await running


def test_the_pool_size_of_every_command_comes_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bots import cli
    from engine.settings import get_settings

    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "2")
    get_settings.cache_clear()
    try:
        engine = cli.open_engine("postgresql://nobody@127.0.0.1:1/none")
        assert engine.sync_engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.sync_engine.pool._max_overflow == 2  # type: ignore[attr-defined]
    finally:
        get_settings.cache_clear()
