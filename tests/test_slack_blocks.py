"""Screens drawn as Slack Block Kit: values round-trip, ids are unique, Slack's limits hold."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block as SdkBlock
from slack_sdk.models.views import View

from bots.slack import blocks as sb
from engine.chat import views
from engine.chat.screens import Action, Button, Card, Kind, Placement, Screen
from engine.chat.views import CourseInfo, TeacherInfo, Viewer

COURSE = CourseInfo(7, "calculus-1", "Calculus <I> & II", 10, 60)
ADA = TeacherInfo(
    5, "Ada <Lovelace> & Co", "https://example.edu/ada.png", "Europe/London", True, 60
)
BOB = TeacherInfo(6, "Bob", None, "America/New_York", True, 30)
VIEWER = Viewer(3, "Sam Student", "America/New_York", "en_US", "sam@example.edu")
START = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
TODAY = date(2026, 11, 2)
FREE = {date(2026, 11, 5), date(2026, 11, 9), date(2026, 11, 27)}
NOTE = "Bring <the> problem set & notes > 3"


def _date_screen(free: set[date] = FREE, preselected: bool = False) -> Screen:
    return views.choose_date(
        COURSE, ADA, preselected, 2026, 11, free, TODAY, False, True, VIEWER, None
    )


def _success() -> Screen:
    return views.success(
        COURSE, ADA, START, 42, True, NOTE, VIEWER, "https://example.edu/dash", ("a@b.c", None)
    )


def _mysessions() -> Screen:
    entry = Screen(
        "session",
        "Calculus I with Ada",
        ("Fri 27 Nov, 10:00",),
        buttons=((Button("Cancel session", payload="cancel:42:abc"),),),
        placement=Placement.NEW,
    )
    return Screen("mysessions", "Your sessions", ("2 upcoming",), more=(entry, entry))


SCREENS: dict[str, Screen] = {
    "choose_st": views.choose_st(COURSE, [(ADA, START), (BOB, None)], VIEWER, None),
    "choose_date": _date_screen(),
    "choose_date_preselected": _date_screen(preselected=True),
    "choose_date_without_free_days": _date_screen(free=set()),
    "choose_time": views.choose_time(
        COURSE, ADA, date(2026, 11, 27), [START, START.replace(hour=16)], VIEWER, START, None
    ),
    "confirm": views.confirm(COURSE, ADA, START, True, None, VIEWER, None),
    "confirm_with_note": views.confirm(COURSE, ADA, START, False, NOTE, VIEWER, None),
    "note_prompt": views.note_prompt(COURSE, ADA, 500, None),
    "success": _success(),
    "scheduled_later": views.scheduled_later(COURSE, "https://example.edu/dash"),
    "unchanged": Screen(
        "confirm", "Booking", notice="That button is old <now> & gone", unchanged=True
    ),
    "mysessions": _mysessions(),
    "mysessions_entry": _mysessions().more[0],
}


def _elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for block in blocks:
        found.extend(block.get("elements", []))
        for key in ("accessory", "element"):
            if key in block:
                found.append(block[key])
    return found


def _value(element: dict[str, Any]) -> str | None:
    """What pressing the element sends: a button's value, the reminders checkbox's option."""
    if element["type"] == "checkboxes":
        return str(element["options"][0]["value"])
    return element.get("value") if element["type"] == "button" else None


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in _elements(blocks) if e["type"] == "button"]


def _pressable(screen: Screen) -> list[Button]:
    """Card and row buttons; the calendar's days and month arrows give way to the datepicker."""
    flat = [card.button for card in screen.cards] + [b for row in screen.buttons for b in row]
    return [b for b in flat if b.enabled and b.url is None]


def _validate(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        parsed = SdkBlock.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
    json.dumps(blocks)


def _all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


@pytest.mark.parametrize("name", SCREENS)
def test_every_pressable_button_carries_exactly_the_engines_data(name: str) -> None:
    screen = SCREENS[name]
    for blocks in (sb.message_blocks(screen), sb.modal_view(screen, "m")["blocks"]):
        values = [_value(e) for e in _elements(blocks) if _value(e) is not None]
        expected = [screen.data(b) for b in _pressable(screen)]
        assert values == expected
        assert all(
            sb.PRESS_ACTION.fullmatch(b["action_id"]) for b in _buttons(blocks) if "value" in b
        )


@pytest.mark.parametrize("name", SCREENS)
def test_action_ids_are_unique_and_the_blocks_are_valid_block_kit(name: str) -> None:
    screen = SCREENS[name]
    for blocks in (sb.message_blocks(screen), sb.modal_view(screen, "m")["blocks"]):
        ids = [e["action_id"] for e in _elements(blocks) if "action_id" in e]
        assert len(ids) == len(set(ids))
        assert all(len(i) <= 255 for i in ids)
        _validate(blocks)
    assert len(sb.message_blocks(screen)) <= sb.MAX_MESSAGE_BLOCKS


@pytest.mark.parametrize("name", SCREENS)
def test_the_modal_has_a_short_title_and_carries_its_metadata(name: str) -> None:
    view = sb.modal_view(SCREENS[name], '{"conversation": 12}')
    assert len(view["title"]["text"]) <= 24
    assert view["private_metadata"] == '{"conversation": 12}'
    assert view["callback_id"] == sb.CALLBACK_ID
    View(**view).validate_json()
    json.dumps(view)


def test_url_buttons_link_out_and_carry_no_value() -> None:
    links = [b for b in _buttons(sb.message_blocks(_success())) if "url" in b]
    assert [b["url"] for b in links] == [b.url for b in _success().all_buttons() if b.url]
    assert all("value" not in b and b["action_id"].startswith(sb.LINK_PREFIX) for b in links)


def test_names_and_notes_are_escaped_for_mrkdwn() -> None:
    text = _all_text(sb.message_blocks(SCREENS["confirm_with_note"]))
    assert "Ada &lt;Lovelace&gt; &amp; Co" in text
    assert "Bring &lt;the&gt; problem set &amp; notes &gt; 3" in text
    assert "<the>" not in text and "<Lovelace>" not in text
    assert "&lt;" in sb.message_text(SCREENS["confirm_with_note"])
    assert '"*Book a Session for Calculus &lt;I&gt; &amp; II*"' in text  # the title is bold


def test_st_cards_show_the_photo_with_the_name_as_alt_text_and_a_book_button() -> None:
    blocks = sb.message_blocks(SCREENS["choose_st"])
    images = [b["accessory"] for b in blocks if "accessory" in b]
    assert images == [
        {"type": "image", "image_url": ADA.avatar, "alt_text": ADA.name},
    ]
    labels = [b["text"]["text"] for b in _buttons(blocks)]
    assert labels[:2] == [f"Book with {ADA.name}", "Book with Bob"]


def test_the_notice_and_the_prompt_show_as_context() -> None:
    unchanged = sb.message_blocks(SCREENS["unchanged"])
    assert unchanged[1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "⚠️ That button is old &lt;now&gt; &amp; gone"}],
    }
    prompt = sb.message_blocks(SCREENS["note_prompt"])[-1]
    assert prompt["type"] == "context" and "Type your note" in prompt["elements"][0]["text"]


def test_the_calendar_is_a_datepicker_on_the_first_free_day_beside_the_quick_buttons() -> None:
    screen = SCREENS["choose_date"]
    for blocks in (sb.message_blocks(screen), sb.modal_view(screen, "m")["blocks"]):
        pickers = [e for e in _elements(blocks) if e["type"] == "datepicker"]
        assert len(pickers) == 1
        assert pickers[0]["action_id"] == sb.DATE_ACTION
        assert pickers[0]["initial_date"] == "2026-11-05"
        labels = {b["text"]["text"] for b in _buttons(blocks)}
        assert {"Today", "Tomorrow", "This week", "Next available"} <= labels
        assert not labels & {"5", "9", "27", "‹", "›"}  # no month grid


def test_a_month_without_free_days_has_a_datepicker_without_an_initial_date() -> None:
    blocks = sb.message_blocks(SCREENS["choose_date_without_free_days"])
    (picker,) = [e for e in _elements(blocks) if e["type"] == "datepicker"]
    assert "initial_date" not in picker


@pytest.mark.parametrize(
    "picked",
    [date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 1), date(2026, 12, 5)],
)
def test_a_picked_day_becomes_the_engines_own_press_for_the_screen_shown(picked: date) -> None:
    """Any day: the engine judges it (no free times, past, too far) with the spec's words."""
    screen = SCREENS["choose_date"]
    (block,) = [b for b in sb.message_blocks(screen) if b.get("block_id", "").startswith("date:")]
    pressed = sb.date_value(block["block_id"], picked.isoformat())
    assert pressed == Action(Kind.PICK_DATE, picked.isoformat()).encode(screen.nonce)


@pytest.mark.parametrize(
    ("block_id", "picked"),
    [
        ("date:7", "2026-13-01"),
        ("date:7", None),
        ("date:", "2026-11-05"),
        ("date:x1", "2026-11-05"),
        ("note", "2026-11-05"),
        ("date:１", "2026-11-05"),
    ],
)
def test_a_date_from_a_block_or_a_value_we_never_drew_is_no_press(
    block_id: str, picked: str | None
) -> None:
    assert sb.date_value(block_id, picked) is None


def test_every_initial_date_is_a_pressable_day_of_the_screen() -> None:
    screen = SCREENS["choose_date"]
    (picker,) = [e for e in _elements(sb.message_blocks(screen)) if e["type"] == "datepicker"]
    first = sb.day_buttons(screen)[0]
    assert first.action is not None and picker["initial_date"] == first.action.arg


def test_a_prompt_becomes_a_multiline_note_field_with_a_submit_in_the_modal() -> None:
    view = sb.modal_view(SCREENS["note_prompt"], "m")
    (field,) = [b for b in view["blocks"] if b["type"] == "input"]
    assert field["block_id"] == sb.NOTE_BLOCK
    assert field["element"] == {
        "type": "plain_text_input",
        "action_id": sb.NOTE_ACTION,
        "multiline": True,
        "max_length": 500,
    }
    assert "submit" in view


def test_the_reminders_toggle_is_a_checkbox_ticked_when_they_are_on() -> None:
    view = sb.modal_view(SCREENS["confirm"], "m")
    assert not [b for b in view["blocks"] if b["type"] == "input"]
    assert "submit" not in view
    labels = [b["text"]["text"] for b in _buttons(view["blocks"])]
    assert not any("Reminders" in label for label in labels)
    (box,) = [e for e in _elements(view["blocks"]) if e["type"] == "checkboxes"]
    assert box["action_id"] == sb.REMINDERS_ACTION
    assert box["initial_options"] == box["options"]  # the fixture's reminders are on
    toggle = box["options"][0]["value"]
    # Ticking and unticking are the same press: the engine flips the setting.
    ticked = {"action_id": sb.REMINDERS_ACTION, "selected_options": box["options"]}
    unticked = {"action_id": sb.REMINDERS_ACTION, "selected_options": []}
    assert sb.checkbox_value(ticked, view["blocks"]) == toggle
    assert sb.checkbox_value(unticked, view["blocks"]) == toggle
    assert sb.checkbox_value(unticked, []) is None


def test_the_preselected_st_card_has_no_book_button() -> None:
    screen = SCREENS["choose_date_preselected"]
    labels = [b["text"]["text"] for b in _buttons(sb.message_blocks(screen))]
    assert ADA.name not in labels


def test_more_screens_are_messages_of_their_own_with_their_payloads() -> None:
    screen = SCREENS["mysessions"]
    assert _buttons(sb.message_blocks(screen)) == []
    for entry in screen.more:
        (button,) = _buttons(sb.message_blocks(entry))
        assert button["value"] == "cancel:42:abc"


def test_the_home_view_draws_each_section_and_its_more_between_dividers() -> None:
    view = sb.home_view([SCREENS["mysessions"], SCREENS["choose_date"]])
    assert view["type"] == "home"
    assert sum(b["type"] == "divider" for b in view["blocks"]) == 3
    ids = [e["action_id"] for e in _elements(view["blocks"]) if "action_id" in e]
    assert len(ids) == len(set(ids))
    assert [b["value"] for b in _buttons(view["blocks"])][:2] == ["cancel:42:abc"] * 2
    View(**view).validate_json()


def test_the_home_view_stays_within_a_hundred_blocks() -> None:
    many = [SCREENS["choose_time"]] * 40
    view = sb.home_view(many)
    assert len(view["blocks"]) <= sb.MAX_VIEW_BLOCKS
    View(**view).validate_json()


def test_an_over_long_private_metadata_is_refused_rather_than_cut() -> None:
    with pytest.raises(ValueError, match="private_metadata"):
        sb.modal_view(SCREENS["confirm"], "x" * 3001)


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4000)


def _big_screen(title: str, label: str, count: int, cards: int) -> Screen:
    buttons = tuple(
        tuple(Button(f"{label}{i}", Action(Kind.PICK_SLOT, str(i))) for i in range(row, row + 7))
        for row in range(0, count, 7)
    )
    card_list = tuple(
        Card(
            f"{title[:300]}{i}",
            (label,),
            f"https://example.edu/{i}.png",
            Button(f"Book {label}", Action(Kind.PICK_ST, str(i))),
        )
        for i in range(cards)
    )
    return Screen(
        "stress",
        title,
        lines=(title, label) * 3,
        notice=title,
        cards=card_list,
        buttons=(*buttons, views.BACK_ROW),
        prompt=label or None,
        nonce=123456,
    )


@settings(max_examples=40, deadline=None)
@given(
    title=texts,
    label=texts,
    count=st.integers(0, 200),
    cards=st.integers(0, 60),
)
def test_long_texts_and_many_buttons_stay_within_slacks_limits(
    title: str, label: str, count: int, cards: int
) -> None:
    screen = _big_screen(title, label, count, cards)
    message = sb.message_blocks(screen)
    view = sb.modal_view(screen, "meta")
    assert len(message) <= sb.MAX_MESSAGE_BLOCKS
    assert len(view["blocks"]) <= sb.MAX_VIEW_BLOCKS
    _validate(message)
    View(**view).validate_json()
    for blocks in (message, view["blocks"]):
        for button in _buttons(blocks):
            assert len(button["text"]["text"]) <= sb.MAX_BUTTON_TEXT
        ids = [e["action_id"] for e in _elements(blocks) if "action_id" in e]
        assert len(ids) == len(set(ids))
        pressable = {screen.data(b) for b in screen.all_buttons()}
        assert {b["value"] for b in _buttons(blocks)} <= pressable
    assert len(sb.message_text(screen)) <= sb.MAX_FALLBACK_TEXT


@settings(max_examples=20, deadline=None)
@given(count=st.integers(0, 120), cards=st.integers(0, 30))
def test_short_screens_keep_every_button_even_when_compacted(count: int, cards: int) -> None:
    screen = _big_screen("Title", "x", count, cards)
    values = [b["value"] for b in _buttons(sb.modal_view(screen, "m")["blocks"])]
    assert values == [screen.data(b) for b in screen.all_buttons()]
