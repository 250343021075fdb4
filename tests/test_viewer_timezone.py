"""The viewer's time zone: the one the chat client shows the person (Slack's `users.info` tz),
else the user's own row, else UTC (the platform's database may hold no zone for a user)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import flow
from engine.chat.formatting import viewer_timezone
from engine.chat.screens import Screen
from storage.models import User
from tests.chat import Chat, plain
from tests.factories import make_world

Factory = async_sessionmaker[AsyncSession]


@pytest.mark.parametrize(
    ("own", "profile", "shown"),
    [
        ("Europe/Berlin", "Asia/Tokyo", "Europe/Berlin"),  # the first candidate wins
        (None, "Asia/Tokyo", "Asia/Tokyo"),  # NULL in the platform's users table
        ("", "Asia/Tokyo", "Asia/Tokyo"),
        ("  ", "Asia/Tokyo", "Asia/Tokyo"),
        ("Mars/Olympus_Mons", "Asia/Tokyo", "Asia/Tokyo"),  # not a zone zoneinfo knows
        ("", None, "UTC"),
        (None, "", "UTC"),
        ("", "../../etc/passwd", "UTC"),
    ],
)
def test_the_viewer_zone_is_the_first_that_names_a_zone_else_utc(
    own: str | None, profile: str | None, shown: str
) -> None:
    assert viewer_timezone(own, profile) == shown


@dataclass
class ProfileChat(Chat):
    """A chat on a platform whose profile gives the person's zone (Slack's `user.tz`)."""

    profile_timezone: str | None = None

    async def send(self, event: flow.Event, update_id: str | None = None) -> Screen | None:
        screen = await self.service.handle(
            platform=self.platform,
            chat_id=self.chat_id,
            user_id=self.user_id,
            event=event,
            update_id=update_id,
            profile_timezone=self.profile_timezone,
        )
        if screen is not None and not screen.unchanged:
            self.screens.append(screen)
        return screen


async def time_step(db: Factory, user_zone: str, profile_zone: str | None) -> Screen:
    """Sam (with `user_zone` in the users table) picks Ada and Friday 27 November."""
    world = await make_world(db)
    async with db() as session, session.begin():
        await session.execute(
            update(User).where(User.id == world.student.id).values(timezone=user_zone)
        )
    chat = ProfileChat(db, world.student.id, profile_timezone=profile_zone)
    await chat.start(course_id=world.course.id, teacher_id=world.teachers[0].id)
    screen = await chat.press("27")
    assert screen.step == "choose_time"
    return screen


def zone_note(screen: Screen) -> list[str]:
    return [line for line in screen.lines if line.startswith("Times shown in")]


async def test_a_user_without_a_zone_sees_times_in_the_platform_profiles_zone(
    db: Factory,
) -> None:
    screen = await time_step(db, "", "Asia/Tokyo")
    assert zone_note(screen) == ["Times shown in Asia/Tokyo (JST)"]
    labels = [plain(b.label) for b in screen.all_buttons()]
    assert "6:00 PM" in labels and "9:00 AM" not in labels  # Ada's 09:00 UTC is 18:00 there


async def test_the_zone_the_chat_client_shows_wins_over_the_users_row(db: Factory) -> None:
    """Slack shows every timestamp in the person's Slack zone; the wizard's times match it."""
    screen = await time_step(db, "Europe/London", "Asia/Tokyo")
    assert zone_note(screen) == ["Times shown in Asia/Tokyo (JST)"]


async def test_without_a_profile_zone_the_users_own_zone_is_used(db: Factory) -> None:
    screen = await time_step(db, "Europe/London", None)
    assert zone_note(screen) == ["Times shown in Europe/London (GMT)"]


async def test_a_user_without_a_zone_and_no_profile_zone_sees_utc(db: Factory) -> None:
    screen = await time_step(db, "", None)
    assert zone_note(screen) == ["Times shown in UTC (UTC)"]
