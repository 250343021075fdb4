"""Deep-link payloads: what the bot honours, and everything it must refuse."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.telegram.links import deep_link
from engine import links
from engine.links import SOURCES, LinkClaims, LinkError, sign, verify

SECRET = "s3cret-for-tests"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
MAX_U64 = 2**64 - 1
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
PAYLOAD_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def claims(**changes: object) -> LinkClaims:
    values: dict[str, object] = {
        "user_id": 1234,
        "course_id": 56,
        "teacher_id": 78,
        "source": "CDET",
        "expires_at": NOW + timedelta(days=7),
    }
    values.update(changes)
    return LinkClaims(**values)  # type: ignore[arg-type]


def reason(payload: str, secret: str = SECRET, now: datetime = NOW) -> str:
    with pytest.raises(LinkError) as caught:
        verify(payload, secret, now)
    return caught.value.reason


def test_a_signed_payload_verifies_to_the_same_claims() -> None:
    original = claims()
    assert verify(sign(original, SECRET), SECRET, NOW) == original


def test_a_payload_without_a_teacher_verifies_with_teacher_none() -> None:
    original = claims(teacher_id=None, source="SDSH")
    assert verify(sign(original, SECRET), SECRET, NOW) == original


def test_every_source_round_trips() -> None:
    assert "CLI" in SOURCES
    for source in SOURCES:
        assert verify(sign(claims(source=source), SECRET), SECRET, NOW).source == source


def test_the_largest_ids_and_latest_expiry_still_fit_in_64_telegram_characters() -> None:
    biggest = claims(
        user_id=MAX_U64,
        course_id=MAX_U64,
        teacher_id=MAX_U64,
        expires_at=datetime.fromtimestamp(2**32 - 1, UTC),
    )
    payload = sign(biggest, SECRET)
    assert len(payload) <= 64
    assert PAYLOAD_RE.fullmatch(payload)
    assert verify(payload, SECRET, NOW) == biggest


def test_the_payload_is_deterministic_for_the_same_claims_and_secret() -> None:
    assert sign(claims(), SECRET) == sign(claims(), SECRET)


def test_changing_any_single_character_is_rejected_as_bad_signature_or_malformed() -> None:
    for teacher in (78, None):
        payload = sign(claims(teacher_id=teacher), SECRET)
        for index, original in enumerate(payload):
            for replacement in ALPHABET:
                if replacement == original:
                    continue
                tampered = payload[:index] + replacement + payload[index + 1 :]
                assert reason(tampered) in ("bad_signature", "malformed"), (index, replacement)


def test_a_different_claim_under_the_original_tag_is_a_bad_signature() -> None:
    # Forge user 1 -> 2 by rewriting the body bytes and keeping the old tag.
    raw = bytearray(base64.urlsafe_b64decode(sign(claims(user_id=1), SECRET) + "=="))
    raw[2 + 7] ^= 0x03  # last byte of the big-endian user id
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert reason(forged) == "bad_signature"


def test_a_payload_signed_with_another_secret_is_a_bad_signature() -> None:
    assert reason(sign(claims(), "another secret")) == "bad_signature"


def test_dropping_or_adding_characters_is_rejected() -> None:
    payload = sign(claims(), SECRET)
    assert reason(payload[:-1]) in ("bad_signature", "malformed")
    assert reason(payload[1:]) in ("bad_signature", "malformed")
    assert reason(payload + "A") in ("bad_signature", "malformed")


def test_a_payload_at_or_past_its_expiry_is_expired() -> None:
    payload = sign(claims(expires_at=NOW), SECRET)
    assert reason(payload, now=NOW) == "expired"
    assert reason(payload, now=NOW + timedelta(seconds=1)) == "expired"
    assert verify(payload, SECRET, NOW - timedelta(seconds=1)).expires_at == NOW


def test_an_expired_forgery_is_reported_as_bad_signature_not_expired() -> None:
    payload = sign(claims(expires_at=NOW - timedelta(days=1)), "another secret")
    assert reason(payload) == "bad_signature"


def test_now_may_be_given_in_any_timezone() -> None:
    payload = sign(claims(expires_at=NOW), SECRET)
    tokyo = timezone(timedelta(hours=9))
    assert reason(payload, now=NOW.astimezone(tokyo)) == "expired"
    assert verify(payload, SECRET, (NOW - timedelta(seconds=1)).astimezone(tokyo))


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "A",
        "AAAA",
        "not a payload",
        "abc+def/",
        "abc=",
        "x" * 65,
        "A" * 200,
        "ü" * 10,
        "Zm9v\n",
    ],
)
def test_garbage_oversize_padding_and_foreign_characters_are_malformed(payload: str) -> None:
    assert reason(payload) == "malformed"


def test_padding_on_a_genuine_payload_is_malformed() -> None:
    payload = sign(claims(teacher_id=None), SECRET)  # 38 bytes: base64 would add "=="
    assert len(payload) % 4 != 0
    assert reason(payload + "=" * (-len(payload) % 4)) == "malformed"


def test_a_non_canonical_last_character_is_malformed_even_though_it_decodes_the_same() -> None:
    payload = sign(claims(), SECRET)  # 46 bytes: the last character carries 4 unused bits
    assert len(payload) % 4 == 2
    last = ALPHABET.index(payload[-1])
    sibling = payload[:-1] + ALPHABET[last | 1]
    assert sibling != payload
    assert base64.urlsafe_b64decode(sibling + "==") == base64.urlsafe_b64decode(payload + "==")
    assert reason(sibling) == "malformed"


def test_a_well_signed_body_of_an_unknown_version_is_malformed() -> None:
    raw = bytearray(base64.urlsafe_b64decode(sign(claims(teacher_id=None), SECRET) + "=="))
    raw[0] = 2
    assert reason(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()) == "malformed"


def test_claims_reject_values_the_payload_cannot_carry() -> None:
    with pytest.raises(ValueError):
        claims(user_id=-1)
    with pytest.raises(ValueError):
        claims(course_id=MAX_U64 + 1)
    with pytest.raises(ValueError):
        claims(teacher_id=True)
    with pytest.raises(ValueError):
        claims(source="CHAT")
    with pytest.raises(ValueError):
        claims(expires_at=datetime(2026, 3, 10, 9, 0))
    with pytest.raises(ValueError):
        claims(expires_at=datetime(2107, 1, 1, tzinfo=UTC))


def test_claims_keep_expiry_in_utc_truncated_to_the_second_as_the_payload_does() -> None:
    berlin = timezone(timedelta(hours=1))
    given_at = datetime(2026, 3, 10, 10, 0, 0, 999_999, tzinfo=berlin)
    made = claims(expires_at=given_at)
    assert made.expires_at == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    assert made.expires_at.tzinfo is UTC
    assert verify(sign(made, SECRET), SECRET, NOW - timedelta(hours=1)) == made


def test_an_empty_secret_or_naive_now_is_a_programming_error_not_a_link_error() -> None:
    with pytest.raises(ValueError):
        sign(claims(), "")
    with pytest.raises(ValueError):
        verify(sign(claims(), SECRET), "", NOW)
    with pytest.raises(ValueError):
        verify(sign(claims(), SECRET), SECRET, datetime(2026, 3, 10, 9, 0))


def test_deep_link_builds_the_telegram_start_url() -> None:
    payload = sign(claims(), SECRET)
    assert deep_link("bookbot_tutor_bot", payload) == (
        f"https://t.me/bookbot_tutor_bot?start={payload}"
    )
    assert deep_link("@bookbot_tutor_bot", payload) == (
        f"https://t.me/bookbot_tutor_bot?start={payload}"
    )


def test_deep_link_builds_the_same_url_as_python_telegram_bot() -> None:
    from telegram.helpers import create_deep_linked_url

    payload = sign(claims(), SECRET)
    with_ptb = create_deep_linked_url("bookbot_tutor_bot", payload)
    assert deep_link("bookbot_tutor_bot", payload) == with_ptb


@pytest.mark.parametrize(
    ("bot", "payload"),
    [
        ("bot", "abc"),
        ("book bot", "abc"),
        ("bookbot", ""),
        ("bookbot", "a=b"),
        ("bookbot", "x" * 65),
    ],
)
def test_deep_link_refuses_what_telegram_would_not_open(bot: str, payload: str) -> None:
    with pytest.raises(ValueError):
        deep_link(bot, payload)


@given(
    user_id=st.integers(0, MAX_U64),
    course_id=st.integers(0, MAX_U64),
    teacher_id=st.none() | st.integers(0, MAX_U64),
    source=st.sampled_from(SOURCES),
    expires=st.integers(0, 2**32 - 1),
    remaining=st.integers(1, 10**6),
)
def test_any_claims_round_trip_and_fit_telegram(
    user_id: int,
    course_id: int,
    teacher_id: int | None,
    source: str,
    expires: int,
    remaining: int,
) -> None:
    original = LinkClaims(
        user_id=user_id,
        course_id=course_id,
        teacher_id=teacher_id,
        source=source,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    payload = sign(original, SECRET)
    assert PAYLOAD_RE.fullmatch(payload)
    now = original.expires_at - timedelta(seconds=remaining)
    assert verify(payload, SECRET, now) == original
    assert reason(payload, now=original.expires_at) == "expired"


# --- "Manage in Telegram" links (e-mails) ---------------------------------------------------


def manage(user_id: int = 1234, expires_at: datetime = NOW + timedelta(days=2)) -> str:
    return links.sign_manage(links.ManageClaims(user_id, expires_at), SECRET)


def test_a_manage_link_round_trips_and_fits_telegram() -> None:
    biggest = links.ManageClaims(MAX_U64, datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC))
    payload = links.sign_manage(biggest, SECRET)
    assert PAYLOAD_RE.fullmatch(payload) and len(payload) == 39
    assert links.verify_manage(payload, SECRET, NOW) == biggest
    assert links.verify_any(payload, SECRET, NOW) == biggest
    booking = sign(claims(), SECRET)
    assert links.verify_any(booking, SECRET, NOW) == claims()
    url = deep_link("tutoring_booking_bot", payload)
    assert url == f"https://t.me/tutoring_booking_bot?start={payload}"


def test_manage_and_booking_links_never_pass_for_each_other() -> None:
    """Own layout and own HMAC domain: neither kind verifies as the other."""
    assert reason(manage()) == "malformed"  # the booking verifier refuses a manage link
    with pytest.raises(LinkError) as caught:
        links.verify_manage(sign(claims(), SECRET), SECRET, NOW)
    assert caught.value.reason == "malformed"
    # Same bytes, tag from the booking domain: refused, so one tag never serves both uses.
    raw = base64.urlsafe_b64decode(manage() + "=" * (-len(manage()) % 4))
    body = raw[:-16]
    forged = links._b64encode(body + links._tag(SECRET.encode(), body))
    with pytest.raises(LinkError) as caught:
        links.verify_manage(forged, SECRET, NOW)
    assert caught.value.reason == "bad_signature"


def test_a_tampered_wrong_key_or_expired_manage_link_is_refused() -> None:
    payload = manage(expires_at=NOW + timedelta(hours=1))
    for position in range(len(payload)):
        changed = payload[:position] + ("A" if payload[position] != "A" else "B")
        changed += payload[position + 1 :]
        with pytest.raises(LinkError):
            links.verify_any(changed, SECRET, NOW)
    with pytest.raises(LinkError) as caught:
        links.verify_any(payload, "another-secret", NOW)
    assert caught.value.reason == "bad_signature"
    assert links.verify_any(payload, SECRET, NOW + timedelta(minutes=59)).user_id == 1234
    with pytest.raises(LinkError) as caught:
        links.verify_any(payload, SECRET, NOW + timedelta(hours=1))
    assert caught.value.reason == "expired"


def test_a_manage_link_lasts_until_a_day_after_its_session_ends() -> None:
    end = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert links.manage_link_expiry(end) == end + timedelta(days=1)
    payload = manage(expires_at=links.manage_link_expiry(end))
    assert links.verify_any(payload, SECRET, end + timedelta(hours=23, minutes=59)).user_id
    with pytest.raises(LinkError):
        links.verify_any(payload, SECRET, end + timedelta(days=1))
    # Derived from the session, not the clock: every retry of an e-mail carries the same link.
    assert manage(expires_at=links.manage_link_expiry(end)) == payload


# --- Join links (e-mails and invites: <PUBLIC_BASE_URL>/join/<token>) -----------------------


def join(
    session_id: int = 42, user_id: int = 1234, expires_at: datetime = NOW + timedelta(days=2)
) -> str:
    return links.sign_join(links.JoinClaims(session_id, user_id, expires_at), SECRET)


def join_reason(payload: str, secret: str = SECRET, now: datetime = NOW) -> str:
    with pytest.raises(LinkError) as caught:
        links.verify_join(payload, secret, now)
    return caught.value.reason


def test_a_join_link_round_trips_in_50_url_safe_characters() -> None:
    biggest = links.JoinClaims(MAX_U64, MAX_U64, datetime.fromtimestamp(2**32 - 1, UTC))
    payload = links.sign_join(biggest, SECRET)
    assert PAYLOAD_RE.fullmatch(payload) and len(payload) == 50
    assert links.verify_join(payload, SECRET, NOW) == biggest
    assert links.verify_join(join(), SECRET, NOW) == links.JoinClaims(
        42, 1234, NOW + timedelta(days=2)
    )


def test_join_links_and_sign_in_links_never_pass_for_each_other() -> None:
    """Own layout and own HMAC domain: a join token signs nobody in, and no sign-in link
    opens a room, even with the same bytes under the other domain's tag."""
    for verifier in (verify, links.verify_manage, links.verify_any):
        with pytest.raises(LinkError) as caught:
            verifier(join(), SECRET, NOW)
        assert caught.value.reason == "malformed"
    assert join_reason(sign(claims(), SECRET)) == "malformed"
    assert join_reason(manage()) == "malformed"
    raw = base64.urlsafe_b64decode(join() + "=" * (-len(join()) % 4))
    body = raw[:-16]
    for domain in (links._DOMAIN, links._MANAGE_DOMAIN):
        forged = links._b64encode(body + links._tag(SECRET.encode(), body, domain))
        assert join_reason(forged) == "bad_signature"


def test_a_join_link_for_another_session_or_person_cannot_be_made_from_one_in_hand() -> None:
    raw = bytearray(base64.urlsafe_b64decode(join() + "=="))
    for byte in (8, 16):  # last byte of the session id, then of the user id
        changed = bytearray(raw)
        changed[byte] ^= 0x01
        assert join_reason(links._b64encode(bytes(changed))) == "bad_signature"


def test_a_join_link_works_until_a_day_after_its_session_ends() -> None:
    end = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert links.join_link_expiry(end) == end + links.JOIN_LINK_GRACE == end + timedelta(days=1)
    payload = join(expires_at=links.join_link_expiry(end))
    assert links.verify_join(payload, SECRET, end).session_id == 42
    last = end + timedelta(days=1, seconds=-1)
    assert links.verify_join(payload, SECRET, last).session_id == 42
    assert join_reason(payload, now=end + timedelta(days=1)) == "expired"
    assert join(expires_at=links.join_link_expiry(end)) == payload  # the same on every retry


def test_join_claims_refuse_what_the_token_cannot_carry() -> None:
    with pytest.raises(ValueError):
        links.JoinClaims(-1, 1, NOW)
    with pytest.raises(ValueError):
        links.JoinClaims(1, MAX_U64 + 1, NOW)
    with pytest.raises(ValueError):
        links.JoinClaims(True, 1, NOW)
    with pytest.raises(ValueError):
        links.JoinClaims(1, 1, datetime(2026, 3, 10, 9, 0))
    with pytest.raises(ValueError):
        links.verify_join(join(), SECRET, datetime(2026, 3, 10, 9, 0))
    with pytest.raises(ValueError):
        links.sign_join(links.JoinClaims(1, 1, NOW), "")


@given(
    session_id=st.integers(0, MAX_U64),
    user_id=st.integers(0, MAX_U64),
    expires=st.integers(0, 2**32 - 1),
    remaining=st.integers(1, 10**6),
)
def test_any_join_claims_round_trip_until_they_expire(
    session_id: int, user_id: int, expires: int, remaining: int
) -> None:
    original = links.JoinClaims(session_id, user_id, datetime.fromtimestamp(expires, UTC))
    payload = links.sign_join(original, SECRET)
    assert PAYLOAD_RE.fullmatch(payload) and len(payload) == 50
    assert links.verify_join(payload, SECRET, original.expires_at - timedelta(seconds=remaining))
    assert join_reason(payload, now=original.expires_at) == "expired"
    assert join_reason(payload, secret="another secret") == "bad_signature"


@given(
    session_id=st.integers(0, MAX_U64),
    user_id=st.integers(0, MAX_U64),
    position=st.integers(0, 49),
    replacement=st.sampled_from(ALPHABET),
)
def test_any_one_character_changed_in_a_join_link_is_refused(
    session_id: int, user_id: int, position: int, replacement: str
) -> None:
    payload = join(session_id, user_id)
    changed = payload[:position] + replacement + payload[position + 1 :]
    if changed != payload:
        assert join_reason(changed) in ("malformed", "bad_signature")


@given(garbage=st.text(max_size=80))
def test_no_arbitrary_text_is_a_join_link(garbage: str) -> None:
    with pytest.raises(LinkError):
        links.verify_join(garbage, SECRET, NOW)
