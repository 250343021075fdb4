"""Chat accounts linked to platform users, and the chat messages a bot keeps per chat."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from engine.links import LinkClaims, LinkError, ManageClaims, sign, verify_any
from engine.settings import Settings
from storage.uow import Units, UnitsLike


class AlreadyLinked(LinkError):
    """The chat account already belongs to another platform user; it is not moved silently."""

    def __init__(self, linked_to: str) -> None:
        super().__init__("linked_elsewhere")
        self.linked_to = linked_to


class Accounts:
    def __init__(self, units: UnitsLike, settings: Settings) -> None:
        self.units = Units.of(units)
        self.settings = settings

    async def user_for(self, platform: str, external_id: str) -> int | None:
        async with self.units() as uow:
            found = await uow.repo.identity(platform, external_id)
            return found.user_id if found else None

    async def link_from_payload(
        self, platform: str, external_id: str, chat_id: str, payload: str, now: datetime
    ) -> LinkClaims | ManageClaims:
        """Verify a deep-link payload and link this chat account to the user it names.

        Booking links (LinkClaims) and e-mails' "Manage in Telegram" links (ManageClaims) link
        alike; the caller opens the wizard or /mysessions.

        Raises LinkError; a signed link naming a user or course that no longer exists is
        "malformed" too. A link is a bearer token, so it links only the first chat account that
        opens it ("used" for any other): a forwarded link cannot sign someone else in.
        """
        claims = verify_any(payload, self.settings.link_secret, now)
        digest = hashlib.sha256(payload.encode()).hexdigest()
        async with self.units() as uow:
            repo = uow.repo
            if await repo.user(claims.user_id) is None or (
                isinstance(claims, LinkClaims) and await repo.course(claims.course_id) is None
            ):
                raise LinkError("malformed")
            linked = await repo.identity(platform, external_id)
            if linked is not None and linked.user_id != claims.user_id:
                # Checked before the link is claimed, so its owner can still open it after
                # a deliberate /unlink.
                owner = await repo.user(linked.user_id)
                raise AlreadyLinked(owner.name if owner else f"user {linked.user_id}")
            if not await repo.claim_link(digest, platform, external_id, claims.expires_at):
                raise LinkError("used")
            await repo.link_identity(platform, external_id, claims.user_id, chat_id)
        return claims

    async def link_by_email(
        self, platform: str, external_id: str, chat_id: str, verified_email: str
    ) -> int | None:
        """Match a chat account to the platform user with the address its platform verified
        (Slack), and remember the match; None when nobody has that address. An account already
        linked keeps its user: it is never moved silently."""
        async with self.units() as uow:
            repo = uow.repo
            linked = await repo.identity(platform, external_id)
            if linked is not None:
                return linked.user_id
            user_id = await repo.user_id_by_email(verified_email)
            if user_id is not None:
                await repo.link_identity(platform, external_id, user_id, chat_id)
            return user_id

    async def newer_than(self, platform: str, chat_id: str, nonce: int) -> bool:
        """Whether the conversation moved past this screen's nonce: a slower process must not
        draw an older screen over a newer one."""
        async with self.units() as uow:
            version = await uow.repo.conversation_version(platform, chat_id)
        return version is not None and version > nonce

    async def messages(self, platform: str, chat_id: str) -> tuple[str | None, list[str]]:
        """The chat's live wizard message and its companions; ids are text on every platform
        (a Slack `ts` is not a number), each front end converts its own."""
        async with self.units() as uow:
            return await uow.repo.chat_messages(platform, chat_id)

    async def remember_messages(
        self, platform: str, chat_id: str, message_id: str | None, extra: list[str]
    ) -> None:
        async with self.units() as uow:
            await uow.repo.remember_messages(platform, chat_id, message_id, extra)

    async def mint_payload(
        self,
        user_id: int,
        course_slug: str,
        teacher_id: int | None,
        source: str,
        now: datetime,
    ) -> str:
        """A signed start payload for local use (`bookbot link`), like the web platform's; the
        chat platform turns it into its own link (Telegram: a t.me deep link)."""
        async with self.units() as uow:
            repo = uow.repo
            course = await repo.course_by_slug(course_slug)
            if course is None:
                raise LookupError(f"no course {course_slug!r}")
            if await repo.user(user_id) is None:
                raise LookupError(f"no user {user_id}")
        claims = LinkClaims(
            user_id=user_id,
            course_id=course.id,
            teacher_id=teacher_id,
            source=source,
            expires_at=now + timedelta(hours=self.settings.link_ttl_hours),
        )
        return sign(claims, self.settings.link_secret)
