"""Button data: at most 64 bytes, round-trips, and refuses anything we never sent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.chat.screens import MAX_ACTION_BYTES, QUICK_OPTIONS, Action, Kind, decode

ARGS = {
    Kind.PICK_COURSE: st.integers(1, 10**9 - 1).map(str),
    Kind.PICK_ST: st.integers(1, 10**9 - 1).map(str),
    Kind.MONTH: st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}"),
    Kind.PICK_DATE: st.dates().map(lambda d: d.isoformat()),
    Kind.QUICK: st.sampled_from(QUICK_OPTIONS),
    Kind.PICK_SLOT: st.integers(0, 10**12 - 1).map(str),
}
actions = st.sampled_from(list(Kind)).flatmap(
    lambda kind: (ARGS[kind] if kind in ARGS else st.just("")).map(lambda arg: Action(kind, arg))
)


@given(actions, st.integers(0, 36**8 - 1))
def test_every_action_fits_in_64_bytes_and_round_trips(action: Action, nonce: int) -> None:
    data = action.encode(nonce)
    assert len(data.encode()) <= MAX_ACTION_BYTES
    assert decode(data) == (nonce, action)


@given(st.text(max_size=100))
def test_arbitrary_text_never_decodes_to_something_unexpected(data: str) -> None:
    decoded = decode(data)
    if decoded is not None:
        nonce, action = decoded
        assert action.encode(nonce) == data


def test_forged_shapes_are_refused() -> None:
    for data in ["", "1|", "1|k|extra", "1|s", "1|s|abc", "1|q|yesterday", "1|m|2026-13", "x" * 65]:
        assert decode(data) is None, data
