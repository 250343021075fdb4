"""Telegram end to end for the chat rules the engine decides: final screens stay as they are,
stale presses cost one toast, accounts are never moved between users silently, and /unlink.

Same set-up as test_telegram.py: the real PTB Application against the fake Bot API server.
"""

from __future__ import annotations

from sqlalchemy import select

from bots.telegram.app import register_commands
from engine.chat import messages as m
from engine.followup.manage import manage_data
from storage.models import ChatIdentity
from tests.factories import add_user, enroll
from tests.fake_telegram import FakeTelegram
from tests.test_telegram import (
    ADA_TG,
    SAM_TG,
    Bot,
    Factory,
    book_to_confirm,
    bot,
    fake,
    make_world,
    payload,
    sessions,
    start_bot,
)

__all__ = ["bot", "fake"]  # fixtures used below


def _success(fake: FakeTelegram) -> tuple[int, str, list[list[str]]]:
    (message,) = [
        msg
        for msg in fake.messages(SAM_TG)
        if not msg.deleted and (msg.text or "").startswith("Session Booked!")
    ]
    return message.message_id, message.text or "", message.buttons()


async def _book(bot: Bot, fake: FakeTelegram, pg: Factory) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await book_to_confirm(bot, sam, world)
    await bot.press(sam, "Book Session")
    assert _success(fake)


async def test_the_success_message_keeps_its_text_and_buttons_whatever_comes_next(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    await _book(bot, fake, pg)
    sam = fake.user(SAM_TG)
    before = _success(fake)
    book_session = next(
        c for c in fake.calls_to("editMessageText") if "Step 4 of 4" in c.params.get("text", "")
    )
    stale_book = book_session.params["reply_markup"]
    # A second fast press on "Book Session": a toast, the success message untouched.
    data = next(
        button["callback_data"]
        for row in _json(stale_book)["inline_keyboard"]
        for button in row
        if button["text"] == "Book Session"
    )
    calls = len(fake.calls)
    await bot.deliver(sam.press_data(data, message_id=before[0]))
    assert [c.method for c in fake.calls[calls:]] == ["answerCallbackQuery"]
    assert fake.calls[-1].params.get("text") == m.EXPIRED
    # Typed text: a plain answer below, the success message untouched.
    await bot.say(sam, "thanks!")
    assert fake.last_message(SAM_TG).text == m.AFTER_FINAL
    # /cancel: nothing was cancelled, and the reply says where booked sessions are cancelled.
    await bot.say(sam, "/cancel")
    assert fake.last_message(SAM_TG).text == m.NOTHING_TO_CANCEL
    assert [s.status for s in await sessions(pg)] == ["scheduled"]
    # A new /book starts a new message below.
    await bot.say(sam, "/book")
    assert "Which course" in (fake.last_message(SAM_TG).text or "")
    assert _success(fake) == before
    # ... and "Book Another Session" on the old success message still answers with a toast.
    calls = len(fake.calls)
    await bot.press(sam, "Book Another Session")
    assert [c.method for c in fake.calls[calls:]] == ["answerCallbackQuery"]
    assert _success(fake) == before


async def test_book_another_session_on_the_success_message_opens_a_new_message(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    await _book(bot, fake, pg)
    before = _success(fake)
    await bot.press(fake.user(SAM_TG), "Book Another Session")
    assert "Step 1 of 4" in (fake.last_message(SAM_TG).text or "")
    assert fake.last_message(SAM_TG).message_id != before[0]
    assert _success(fake) == before


async def test_a_stale_press_on_step_one_costs_one_call_and_keeps_the_cards(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    live_before = [msg.message_id for msg in fake.messages(SAM_TG) if not msg.deleted]
    for data in ("forged", "0|t|1", "9|t|1"):
        calls = len(fake.calls)
        await bot.deliver(sam.press_data(data))
        assert len(fake.calls) - calls <= 2
        assert [c.method for c in fake.calls[calls:]] == ["answerCallbackQuery"]
    assert [msg.message_id for msg in fake.messages(SAM_TG) if not msg.deleted] == live_before


async def test_an_avatar_that_failed_once_is_shown_as_a_text_card_afterwards(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg, teachers=1)
    async with pg() as session, session.begin():
        user = await session.get(type(world.teachers[0]), world.teachers[0].id)
        assert user is not None
        user.avatar = "https://tutoring.example.edu/avatars/missing.jpg"
    fake.fail_next("sendPhoto", status=400, description="Bad Request: wrong file identifier")
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    assert len(fake.calls_to("sendPhoto")) == 1
    await bot.say(sam, "/book calculus-1")
    assert len(fake.calls_to("sendPhoto")) == 1  # not tried again
    cards = [m_ for m_ in fake.messages(SAM_TG) if m_.buttons() == [["Book with Ada Lovelace"]]]
    assert cards[-1].kind == "text" and not cards[-1].deleted


async def test_the_bot_starts_when_set_my_commands_fails(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    fake.fail_next("setMyCommands", status=400, description="Bad Request: BOT_COMMANDS_TOO_MUCH")
    await register_commands(bot.app)  # logs a warning, raises nothing
    world = await make_world(pg)
    await bot.say(fake.user(SAM_TG), f"/start {payload(world)}")
    assert "Step 1 of 4" in (fake.last_message(SAM_TG).text or "")


async def test_a_forged_keep_it_for_someone_elses_session_changes_nothing(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    await _book(bot, fake, pg)
    (booked,) = await sessions(pg)
    async with pg() as session, session.begin():
        eve = await add_user(session, "Eve Other", "UTC", "en")
    eve_tg = 7009
    async with pg() as session, session.begin():
        session.add(
            ChatIdentity(platform="telegram", external_id=str(eve_tg), user_id=eve.id, chat_id="x")
        )
    eve_user = fake.user(eve_tg, "Eve")
    await bot.say(eve_user, "/help")
    calls = len(fake.calls)
    await bot.deliver(eve_user.press_data(manage_data("k", booked.id)))
    assert [c.method for c in fake.calls[calls:]] == ["answerCallbackQuery"]
    assert fake.calls[-1].params.get("text") == m.EXPIRED
    assert fake.last_message(eve_tg).text == m.HELP  # not overwritten with "stays booked"


async def test_an_account_linked_to_someone_is_not_moved_by_another_users_link(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    async with pg() as session, session.begin():
        other = await add_user(session, "Olivia Other", "UTC", "en")
        await enroll(session, other, world.course)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")  # links Sam's Telegram to Sam
    planted = payload(world, student_id=other.id)
    await bot.say(sam, f"/start {planted}")
    assert fake.last_message(SAM_TG).text == m.ALREADY_LINKED.format(name="Sam Student")
    async with pg() as session:
        (linked,) = (await session.scalars(select(ChatIdentity))).all()
    assert linked.user_id == world.student.id
    # /unlink asks first; "Keep it linked" keeps it.
    await bot.say(sam, "/unlink")
    assert fake.last_message(SAM_TG).text == m.UNLINK_CONFIRM.format(name="Sam Student")
    await bot.press(sam, m.KEEP_LINKED)
    assert fake.last_message(SAM_TG).text == m.STAYS_LINKED.format(name="Sam Student")
    await bot.say(sam, "/unlink")
    await bot.press(sam, m.YES_UNLINK)
    assert fake.last_message(SAM_TG).text == m.UNLINKED.format(name="Sam Student")
    async with pg() as session:
        assert (await session.scalars(select(ChatIdentity))).all() == []
    # The refused link was not used up: after unlinking, it links this account to its owner.
    await bot.say(sam, f"/start {planted}")
    async with pg() as session:
        (linked,) = (await session.scalars(select(ChatIdentity))).all()
    assert linked.user_id == other.id


async def test_an_st_opening_a_link_for_a_course_they_teach_is_told_so(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    world = await make_world(pg)
    ada = fake.user(ADA_TG, "Ada")
    await bot.say(ada, f"/start {payload(world, student_id=world.teachers[0].id)}")
    assert m.YOU_TEACH.format(course="Calculus I") in (fake.last_message(ADA_TG).text or "")
    assert m.NOT_ENROLLED not in (fake.last_message(ADA_TG).text or "")


async def test_a_second_bot_process_sees_the_final_screen_as_final(
    fake: FakeTelegram, pg: Factory
) -> None:
    first = await start_bot(fake, pg)
    second = await start_bot(fake, pg)
    try:
        await _book(first, fake, pg)
        before = _success(fake)
        await second.say(fake.user(SAM_TG), "/book")
        assert _success(fake) == before
    finally:
        await first.app.shutdown()
        await second.app.shutdown()


def _json(value: object) -> dict[str, object]:
    import json

    return value if isinstance(value, dict) else json.loads(str(value))  # type: ignore[return-value]


async def test_an_st_sees_the_sessions_they_teach_in_mysessions_and_can_cancel_one(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    await _book(bot, fake, pg)
    world_teacher = (await sessions(pg))[0].teacher_id
    assert world_teacher is not None
    async with pg() as session, session.begin():
        session.add(
            ChatIdentity(
                platform="telegram",
                external_id=str(ADA_TG),
                user_id=world_teacher,
                chat_id=str(ADA_TG),
            )
        )
    ada = fake.user(ADA_TG, "Ada")
    await bot.say(ada, "/mysessions")
    entry = fake.last_message(ADA_TG)
    assert "you teach Calculus I to Sam Student" in (entry.text or "")
    assert entry.buttons() == [[m.JOIN, m.CANCEL_SESSION]]  # only the student reschedules
    await bot.press(ada, m.CANCEL_SESSION)
    await bot.press(ada, m.YES_CANCEL)
    assert [s.status for s in await sessions(pg)] == ["cancelled"]


async def test_a_slower_process_does_not_draw_an_older_screen_over_a_newer_one(
    bot: Bot, fake: FakeTelegram, pg: Factory
) -> None:
    from types import SimpleNamespace

    from bots.telegram.frontend import TelegramFrontEnd
    from engine.chat.screens import Screen
    from tests.test_telegram import settings_for

    world = await make_world(pg)
    sam = fake.user(SAM_TG)
    await bot.say(sam, f"/start {payload(world)}")
    await bot.press(sam, "Book with Ada Lovelace")  # the conversation's nonce is now 2
    front = TelegramFrontEnd(pg, settings_for(fake))
    calls = len(fake.calls)
    stale = Screen("choose_st", "an older screen", nonce=1)
    await front.draw(SimpleNamespace(bot=bot.app.bot), SAM_TG, stale)  # type: ignore[arg-type]
    assert len(fake.calls) == calls  # skipped: nothing sent, edited or deleted
