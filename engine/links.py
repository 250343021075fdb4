"""Signed, expiring payloads for sign-in links (Telegram: `t.me/<bot>?start=<payload>`).

The web platform's buttons open the bot with a payload naming the platform user, the course, an
optional pre-selected ST and the page the link came from. Telegram allows at most 64 characters
of `A-Za-z0-9_-`, so the claims are packed into a fixed binary layout, followed by an HMAC-SHA256
tag truncated to 16 bytes, and written as unpadded base64url:

    header  u8   version (low 7 bits) | 0x80 when a teacher id follows
    source  u8   code from `_SOURCE_CODES` (never renumber: old links carry the old codes)
    user    u64
    course  u64
    expires u32  epoch seconds, UTC
    teacher u64  only when the header says so
    tag     16 bytes of HMAC-SHA256(secret, domain + everything above)

That is at most 46 bytes, i.e. 62 characters. Without the secret nobody can mint a link that
names another user, and an old link stops working once it expires. The engine signs and checks
payloads only; turning one into a URL is the chat platform's business (`bots/telegram/links.py`).

"Manage in Telegram" links (in confirmation and reminder e-mails) open /mysessions instead of
the booking wizard. They name only the user, under a layout and HMAC domain of their own, so a
manage link never verifies as a booking link or the other way round:

    header  u8   2 (the manage-link version; booking links start with 1 or 0x81)
    user    u64
    expires u32  epoch seconds, UTC: `MANAGE_LINK_GRACE` after the session's end
    tag     16 bytes of HMAC-SHA256(secret, manage domain + everything above)

29 bytes, 39 characters. A manage link signs its holder in like a booking link does, so it
lives only as long as it is useful: until a day after the session it was sent for ends.

Join links (`<PUBLIC_BASE_URL>/join/<token>`, in e-mails and calendar invites) let one person
into one session's video room (engine/followup/join.py). Again a layout and HMAC domain of their
own, so a join token never signs anybody in and no other token opens a room:

    header  u8   3 (the join-link version)
    session u64
    user    u64  whose copy: the page shows times in their zone, and they must still be in it
    expires u32  epoch seconds, UTC: `JOIN_LINK_GRACE` after the session's end
    tag     16 bytes of HMAC-SHA256(secret, join domain + everything above)

37 bytes, 50 characters. It must work until the session ends; it lasts a day longer so that a
late click reads "this session has ended" rather than a bare 404, and not longer, so an old
forwarded e-mail leads nowhere. Like the manage link's, the expiry is derived from the session,
so every retry of an e-mail carries the same token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "JOIN_LINK_GRACE",
    "MANAGE_LINK_GRACE",
    "MAX_PAYLOAD_LENGTH",
    "SOURCES",
    "JoinClaims",
    "LinkClaims",
    "LinkError",
    "ManageClaims",
    "join_link_expiry",
    "manage_link_expiry",
    "sign",
    "sign_join",
    "sign_manage",
    "verify",
    "verify_any",
    "verify_join",
    "verify_manage",
]

# The spec's incoming pages (course detail, student dashboard, ST profile, ST directory, course
# content), plus CLI for links minted by the command-line tools.
SOURCES: tuple[str, ...] = ("CDET", "SDSH", "STPR", "STDR", "CCNT", "CLI")

# Wire codes: append new sources, never reuse or renumber a code.
_SOURCE_CODES: dict[str, int] = {
    "CDET": 1,
    "SDSH": 2,
    "STPR": 3,
    "STDR": 4,
    "CCNT": 5,
    "CLI": 6,
}
_SOURCES_BY_CODE: dict[int, str] = {code: name for name, code in _SOURCE_CODES.items()}

MAX_PAYLOAD_LENGTH = 64  # Telegram's limit for the start parameter
_PAYLOAD_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_VERSION = 1
_HAS_TEACHER = 0x80
_HEAD = struct.Struct(">BBQQI")  # header, source, user, course, expires
_TEACHER = struct.Struct(">Q")
_TAG_LENGTH = 16
# Domain separation: a tag made for this purpose is never valid for another use of the secret.
_DOMAIN = b"bookbot/deep-link/v1\x00"

_MANAGE_VERSION = 2
_MANAGE = struct.Struct(">BQI")  # header, user, expires
_MANAGE_DOMAIN = b"bookbot/manage-link/v1\x00"
MANAGE_LINK_GRACE = timedelta(days=1)
"""How long after its session ends an e-mail's "Manage in Telegram" link still works."""

_JOIN_VERSION = 3
_JOIN = struct.Struct(">BQQI")  # header, session, user, expires
_JOIN_DOMAIN = b"bookbot/join-link/v1\x00"
JOIN_LINK_GRACE = timedelta(days=1)
"""How long after its session ends a join link still answers ("this session has ended")."""

_MAX_U64 = 2**64 - 1
_MAX_U32 = 2**32 - 1


# "used": already opened from another chat account (links are bearer tokens: one account each)
LinkFailure = Literal["malformed", "bad_signature", "expired", "used", "linked_elsewhere"]


class LinkError(Exception):
    """A payload that must not be honoured; `reason` says why, for logs and the user's reply."""

    def __init__(self, reason: LinkFailure) -> None:
        super().__init__(reason)
        self.reason: LinkFailure = reason


@dataclass(frozen=True)
class LinkClaims:
    """What a deep link asserts; checked on construction so a bad value never gets signed.

    `expires_at` must be aware; it is stored in UTC and truncated to whole seconds, which is
    exactly what the payload carries, so `verify(sign(c)) == c`.
    """

    user_id: int
    course_id: int
    teacher_id: int | None
    source: str
    expires_at: datetime

    def __post_init__(self) -> None:
        for name, value in (("user_id", self.user_id), ("course_id", self.course_id)):
            _check_u64(name, value)
        if self.teacher_id is not None:
            _check_u64("teacher_id", self.teacher_id)
        if self.source not in _SOURCE_CODES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")
        object.__setattr__(self, "expires_at", _expiry(self.expires_at))


@dataclass(frozen=True)
class ManageClaims:
    """A "Manage in Telegram" link: sign in as `user_id` and show /mysessions.

    `expires_at` is normalised like `LinkClaims.expires_at`, so `verify_manage(sign_manage(c))`
    gives `c` back.
    """

    user_id: int
    expires_at: datetime

    def __post_init__(self) -> None:
        _check_u64("user_id", self.user_id)
        object.__setattr__(self, "expires_at", _expiry(self.expires_at))


@dataclass(frozen=True)
class JoinClaims:
    """A join link: `user_id`'s way into the video room of session `session_id`.

    `expires_at` is normalised like `LinkClaims.expires_at`, so `verify_join(sign_join(c))`
    gives `c` back.
    """

    session_id: int
    user_id: int
    expires_at: datetime

    def __post_init__(self) -> None:
        _check_u64("session_id", self.session_id)
        _check_u64("user_id", self.user_id)
        object.__setattr__(self, "expires_at", _expiry(self.expires_at))


def join_link_expiry(session_end: datetime) -> datetime:
    """When the join link for a session ending at `session_end` stops working (see above why
    a day later), derived from the session so retried e-mails carry the same token."""
    return session_end + JOIN_LINK_GRACE


def manage_link_expiry(session_end: datetime) -> datetime:
    """When the manage link of an e-mail about a session ending at `session_end` expires.

    Derived from the session, not from the sending time, so a retried e-mail carries the very
    same link (and the same bytes, which the provider's idempotency check compares).
    """
    return session_end + MANAGE_LINK_GRACE


def _expiry(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware")
    expires = value.astimezone(UTC).replace(microsecond=0)
    if not 0 <= int(expires.timestamp()) <= _MAX_U32:
        raise ValueError("expires_at must lie between 1970 and 2106")
    return expires


def _check_u64(name: str, value: int) -> None:
    # bool is an int, but a True user id is certainly a bug.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{name} must be an integer in 0..2**64-1, not {value!r}")


def _key(secret: str) -> bytes:
    if not secret:
        raise ValueError("the link secret must not be empty")
    return secret.encode("utf-8")


def _tag(key: bytes, body: bytes, domain: bytes = _DOMAIN) -> bytes:
    return hmac.new(key, domain + body, hashlib.sha256).digest()[:_TAG_LENGTH]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(claims: LinkClaims, secret: str) -> str:
    """Pack and sign the claims into a start payload that fits Telegram's 64 characters."""
    key = _key(secret)
    header = _VERSION | (_HAS_TEACHER if claims.teacher_id is not None else 0)
    body = _HEAD.pack(
        header,
        _SOURCE_CODES[claims.source],
        claims.user_id,
        claims.course_id,
        int(claims.expires_at.timestamp()),
    )
    if claims.teacher_id is not None:
        body += _TEACHER.pack(claims.teacher_id)
    payload = _b64encode(body + _tag(key, body))
    assert len(payload) <= MAX_PAYLOAD_LENGTH, "layout outgrew Telegram's start parameter"
    assert _PAYLOAD_RE.fullmatch(payload)
    return payload


def _decode(payload: str) -> bytes:
    """Strict base64url: exactly one byte string per payload, so no character is ignorable."""
    if not isinstance(payload, str) or not _PAYLOAD_RE.fullmatch(payload):
        raise LinkError("malformed")
    if len(payload) % 4 == 1:
        raise LinkError("malformed")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("malformed") from None
    # The last character may carry unused low bits that decoding drops; a payload differing only
    # there would otherwise verify too. Only the canonical spelling is accepted.
    if _b64encode(raw) != payload:
        raise LinkError("malformed")
    return raw


def verify(payload: str, secret: str, now: datetime) -> LinkClaims:
    """Return the claims of a genuine, unexpired payload; raise `LinkError` for anything else.

    Checked in this order: shape (malformed), tag (bad_signature), expiry (expired). The link is
    valid strictly before `expires_at`.
    """
    key = _key(secret)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    raw = _decode(payload)
    if len(raw) < _HEAD.size + _TAG_LENGTH:
        raise LinkError("malformed")
    body, tag = raw[:-_TAG_LENGTH], raw[-_TAG_LENGTH:]
    header = body[0]
    has_teacher = bool(header & _HAS_TEACHER)
    expected_size = _HEAD.size + (_TEACHER.size if has_teacher else 0)
    if header & ~_HAS_TEACHER != _VERSION or len(body) != expected_size:
        raise LinkError("malformed")
    if not hmac.compare_digest(tag, _tag(key, body)):
        raise LinkError("bad_signature")

    _, source_code, user_id, course_id, expires = _HEAD.unpack_from(body)
    teacher_id: int | None = _TEACHER.unpack_from(body, _HEAD.size)[0] if has_teacher else None
    source = _SOURCES_BY_CODE.get(source_code)
    if source is None:  # signed with our key, but by a newer release that knows more sources
        raise LinkError("malformed")
    claims = LinkClaims(
        user_id=user_id,
        course_id=course_id,
        teacher_id=teacher_id,
        source=source,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    if now >= claims.expires_at:
        raise LinkError("expired")
    return claims


def sign_manage(claims: ManageClaims, secret: str) -> str:
    """Pack and sign a manage link's claims (39 characters)."""
    key = _key(secret)
    body = _MANAGE.pack(_MANAGE_VERSION, claims.user_id, int(claims.expires_at.timestamp()))
    payload = _b64encode(body + _tag(key, body, _MANAGE_DOMAIN))
    assert len(payload) <= MAX_PAYLOAD_LENGTH and _PAYLOAD_RE.fullmatch(payload)
    return payload


def verify_manage(payload: str, secret: str, now: datetime) -> ManageClaims:
    """The claims of a genuine, unexpired manage payload; `LinkError` otherwise, checked in the
    same order as `verify` (malformed, bad_signature, expired)."""
    _, user_id, expires = _verify_fixed(
        payload, secret, now, _MANAGE_VERSION, _MANAGE, _MANAGE_DOMAIN
    )
    return ManageClaims(user_id=user_id, expires_at=datetime.fromtimestamp(expires, UTC))


def _verify_fixed(
    payload: str, secret: str, now: datetime, version: int, layout: struct.Struct, domain: bytes
) -> tuple[int, ...]:
    """The fields of a genuine, unexpired token of a fixed layout whose first field is its
    version and last its expiry (manage and join links), checked in `verify`'s order."""
    key = _key(secret)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    raw = _decode(payload)
    if len(raw) != layout.size + _TAG_LENGTH or raw[0] != version:
        raise LinkError("malformed")
    body, tag = raw[:-_TAG_LENGTH], raw[-_TAG_LENGTH:]
    if not hmac.compare_digest(tag, _tag(key, body, domain)):
        raise LinkError("bad_signature")
    fields: tuple[int, ...] = layout.unpack(body)
    if now >= datetime.fromtimestamp(fields[-1], UTC):
        raise LinkError("expired")
    return fields


def sign_join(claims: JoinClaims, secret: str) -> str:
    """Pack and sign a join link's claims (50 characters, URL-safe as they are)."""
    key = _key(secret)
    expires = int(claims.expires_at.timestamp())
    body = _JOIN.pack(_JOIN_VERSION, claims.session_id, claims.user_id, expires)
    payload = _b64encode(body + _tag(key, body, _JOIN_DOMAIN))
    assert len(payload) <= MAX_PAYLOAD_LENGTH and _PAYLOAD_RE.fullmatch(payload)
    return payload


def verify_join(payload: str, secret: str, now: datetime) -> JoinClaims:
    """The claims of a genuine, unexpired join token; `LinkError` otherwise, checked in the
    same order as `verify` (malformed, bad_signature, expired)."""
    _, session_id, user_id, expires = _verify_fixed(
        payload, secret, now, _JOIN_VERSION, _JOIN, _JOIN_DOMAIN
    )
    return JoinClaims(session_id, user_id, datetime.fromtimestamp(expires, UTC))


def verify_any(payload: str, secret: str, now: datetime) -> LinkClaims | ManageClaims:
    """A /start payload of either kind, told apart by its first byte (the version)."""
    if _decode(payload)[:1] == bytes([_MANAGE_VERSION]):
        return verify_manage(payload, secret, now)
    return verify(payload, secret, now)
