"""The fake Bot API server against the real python-telegram-bot client, no mocks.

If PTB cannot talk to the fake (encoding, result shapes, error mapping, polling, webhooks), every
end-to-end bot test built on it would fail for the wrong reason; these tests pin that down with a
tiny echo bot run through `process_update`, long polling and a webhook endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Conflict, EndPointNotFound, Forbidden, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fake_telegram import FakeTelegram

SAM = 42
START_KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Book\u202fnow", callback_data="book")],
        [InlineKeyboardButton("Help", url="https://example.org/help")],
    ]
)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Replies with a keyboard, echoing the deep-link payload so entities are checked too."""
    assert update.effective_message is not None and update.effective_user is not None
    payload = " ".join(context.args or []) or "-"
    await update.effective_message.reply_text(
        f"Hi {update.effective_user.first_name}! payload={payload}", reply_markup=START_KEYBOARD
    )


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answers the query and edits the message in place, like the booking screens do."""
    query = update.callback_query
    assert query is not None
    await query.answer(f"got {query.data}")
    back = InlineKeyboardMarkup([[InlineKeyboardButton("Back", callback_data="back")]])
    await query.edit_message_text(f"You chose {query.data}", reply_markup=back)


def build_app(fake: FakeTelegram) -> Application:  # type: ignore[type-arg]
    app = (
        Application.builder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CallbackQueryHandler(on_press))
    return app


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def test_process_update_round_trip(fake: FakeTelegram) -> None:
    sam = fake.user(SAM)
    app = build_app(fake)
    async with app:
        assert fake.calls[0].method == "getMe"
        assert app.bot.username == "tutor_test_bot"

        update = sam.send_text("/start math101")
        assert update["update_id"] == 1
        assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        await app.process_update(Update.de_json(update, app.bot))

        [send] = fake.calls_to("sendMessage")
        assert send.params["chat_id"] == SAM
        assert send.params["reply_markup"] == START_KEYBOARD.to_dict()
        first = fake.last_message(SAM)
        assert (first.message_id, first.kind, first.text) == (2, "text", "Hi Sam! payload=math101")
        assert sam.buttons() == [["Book\u202fnow"], ["Help"]]
        with pytest.raises(AssertionError, match="not a callback button"):
            sam.press("Help")

        press = sam.press("Book now")  # typed with a plain space
        assert press["callback_query"]["data"] == "book"
        assert press["callback_query"]["message"]["message_id"] == first.message_id
        await app.process_update(Update.de_json(press, app.bot))

        [answer] = fake.calls_to("answerCallbackQuery")
        assert answer.params["text"] == "got book"
        assert fake.unanswered_callback_queries() == []
        edited = fake.last_message(SAM)
        assert edited is first and edited.text == "You chose book"
        assert edited.buttons() == [["Back"]]
        assert [r.text for r in edited.history] == ["Hi Sam! payload=math101"]

        forged = sam.press_data("cancel:999")
        await app.process_update(Update.de_json(forged, app.bot))
        assert fake.last_message(SAM).text == "You chose cancel:999"

        with pytest.raises(AssertionError, match=r"\[Nope\].*visible buttons: #2: \[Back\]"):
            sam.press("Nope")
        with pytest.raises(AssertionError, match="never sent message #999"):
            sam.press_data("x", 999)

    assert fake.transcript() == "\n".join(
        [
            "Sam: /start math101",
            "bot → Sam #2: Hi Sam! payload=math101",
            "    [Book\u202fnow]",
            "    [Help → https://example.org/help]",
            "Sam pressed [Book\u202fnow] on #2",
            "bot answered Sam's press: 'got book'",
            "bot edited #2 for Sam: You chose book",
            "    [Back]",
            "Sam pressed (data 'cancel:999') on #2",
            "bot answered Sam's press: 'got cancel:999'",
            "bot edited #2 for Sam: You chose cancel:999",
            "    [Back]",
        ]
    )


async def test_edit_errors_match_the_real_api(fake: FakeTelegram) -> None:
    fake.user(SAM)
    async with build_app(fake) as app:
        sent = await app.bot.send_message(SAM, "<b>Slot</b> 10:00", parse_mode="HTML")
        assert fake.last_message(SAM).text == "Slot 10:00"
        with pytest.raises(BadRequest, match="Message is not modified"):
            await app.bot.edit_message_text(
                "<b>Slot</b> 10:00", chat_id=SAM, message_id=sent.message_id, parse_mode="HTML"
            )
        assert fake.calls[-1].status == 400
        assert await app.bot.delete_message(SAM, sent.message_id) is True
        assert fake.last_message(SAM).deleted
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await app.bot.edit_message_text("x", chat_id=SAM, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await app.bot.delete_message(SAM, sent.message_id)
        with pytest.raises(BadRequest, match="Chat not found"):
            await app.bot.send_message(7, "nobody here")
        with pytest.raises(BadRequest, match="Button_data_invalid"):  # PTB lower-cases it
            too_long = InlineKeyboardButton("x", callback_data="d" * 65)
            await app.bot.send_message(SAM, "x", reply_markup=InlineKeyboardMarkup([[too_long]]))
        with pytest.raises(AssertionError, match="deleted"):
            fake.user(SAM).press_data("x", sent.message_id)
        with pytest.raises(EndPointNotFound):
            await app.bot.do_api_request("sendTelepathy")
        assert fake.calls[-1].method == "sendTelepathy" and fake.calls[-1].status == 404


async def test_injected_failures_reach_ptb(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as timedelta, no warning
    sam = fake.user(SAM)
    async with build_app(fake) as app:
        fake.fail_next("sendMessage", retry_after=3)
        with pytest.raises(RetryAfter) as flood:
            await app.bot.send_message(SAM, "too fast")
        assert flood.value.retry_after == dtm.timedelta(seconds=3)
        fake.fail_next("sendMessage", status=403, times=2)
        for _ in range(2):
            with pytest.raises(Forbidden, match="blocked"):
                await app.bot.send_message(SAM, "blocked")
        await app.bot.send_message(SAM, "through")
        assert [c.status for c in fake.calls_to("sendMessage")] == [429, 403, 403, 200]
        assert [m.text for m in fake.messages(SAM)] == ["through"]
        sam.blocked = True
        with pytest.raises(Forbidden):
            await app.bot.send_chat_action(SAM, "typing")


async def test_polling_two_apps_sharing_the_server(fake: FakeTelegram) -> None:
    sam = fake.user(SAM)
    ana = fake.user(43, "Ana", "de")
    poller, sender = build_app(fake), build_app(fake)
    async with poller, sender:
        assert poller.updater is not None
        await poller.updater.start_polling(poll_interval=0)
        await poller.start()
        try:
            sam.send_text("/start")
            await fake.wait_until(lambda: bool(fake.messages(SAM)))
            sam.press("Book now")
            await fake.wait_until(lambda: fake.last_message(SAM).text == "You chose book")
            # The second app sends concurrently while the first one long-polls.
            await asyncio.gather(*(sender.bot.send_message(43, f"n{i}") for i in range(10)))
            ana.send_text("/start")
            await fake.wait_until(lambda: len(fake.messages(43)) == 11)
        finally:
            await poller.updater.stop()
            await poller.stop()
    assert [m.message_id for m in fake.messages(43)] == [*range(1, 11), 12]
    assert fake.messages(43)[-1].text == "Hi Ana! payload=-"
    polls = fake.calls_to("getUpdates")
    assert polls[-1].params["offset"] == 4  # the last poll on stop confirms updates 1..3
    assert polls[-1].params["timeout"] == 0
    assert fake.pending_updates() == []
    assert "Sam pressed [Book\u202fnow] on #2" in fake.transcript()
    assert fake.transcript(43).splitlines()[-4:] == [
        "Ana: /start",
        "bot → Ana #12: Hi Ana! payload=-",
        "    [Book\u202fnow]",
        "    [Help → https://example.org/help]",
    ]


async def test_webhook_delivery(fake: FakeTelegram) -> None:
    sam = fake.user(SAM)
    secret = "s3cret"
    app = build_app(fake)

    async def endpoint(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
            return web.Response(status=403)
        await app.process_update(Update.de_json(await request.json(), app.bot))
        return web.Response()

    web_app = web.Application()
    web_app.router.add_post("/hook", endpoint)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with app:
            assert await app.bot.set_webhook(url, secret_token=secret)
            update = sam.send_text("/start from-hook")
            info = await app.bot.get_webhook_info()
            assert (info.url, info.pending_update_count) == (url, 1)
            with pytest.raises(Conflict, match="webhook is active"):
                await app.bot.get_updates()

            assert await fake.deliver_webhook(url, update, "wrong") == 403
            assert fake.pending_updates() == [update]
            assert await fake.deliver_webhook(url, update, secret) == 200
            assert fake.pending_updates() == []
            assert fake.last_message(SAM).text == "Hi Sam! payload=from-hook"

            sam.press("Book now")
            assert await fake.deliver_pending_webhook() == [200]
            assert fake.last_message(SAM).text == "You chose book"
            assert await app.bot.delete_webhook()
            assert fake.webhook is None
    finally:
        await runner.cleanup()


async def test_commands_and_files(fake: FakeTelegram) -> None:
    fake.user(SAM)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x08" + b"\x00" * 16
    async with build_app(fake) as app:
        commands = [BotCommand("start", "Begin"), BotCommand("book", "Book a session")]
        assert await app.bot.set_my_commands(commands)
        assert await app.bot.set_my_commands(
            [BotCommand("start", "Anfang")], scope=BotCommandScopeChat(SAM), language_code="de"
        )
        assert await app.bot.get_my_commands() == tuple(commands)
        assert fake.calls_to("setMyCommands")[0].params["commands"][1]["command"] == "book"
        assert fake.commands({"type": "chat", "chat_id": SAM}, "de") == [
            {"command": "start", "description": "Anfang"}
        ]
        with pytest.raises(BadRequest):
            await app.bot.set_my_commands([BotCommand("Bad-Name", "x")])
        assert await app.bot.delete_my_commands()
        assert await app.bot.get_my_commands() == ()

        photo = await app.bot.send_photo(SAM, png, caption="Your tutor")
        assert (photo.photo[-1].width, photo.photo[-1].height) == (16, 8)
        doc = await app.bot.send_document(SAM, b"%PDF-1.4 booking", filename="booking.pdf")
        assert doc.document is not None and doc.document.file_name == "booking.pdf"
        [upload] = fake.calls_to("sendDocument")[0].files.values()
        assert (upload.filename, upload.content) == ("booking.pdf", b"%PDF-1.4 booking")
        file = await app.bot.get_file(doc.document.file_id)
        assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 booking"
        again = await app.bot.send_photo(SAM, photo.photo[-1].file_id)  # resend by file_id
        assert again.photo[-1].file_id == photo.photo[-1].file_id
        edited = await app.bot.edit_message_caption(SAM, photo.message_id, caption="Ana")
        assert edited is not True and edited.caption == "Ana"
        with pytest.raises(BadRequest, match="There is no text in the message to edit"):
            await app.bot.edit_message_text("x", chat_id=SAM, message_id=photo.message_id)
        assert await app.bot.send_chat_action(SAM, "upload_document")

    kinds = [(m.kind, m.text) for m in fake.messages(SAM)]
    assert kinds == [("photo", "Ana"), ("document", None), ("photo", None)]
    assert fake.messages(SAM)[0].photo is not None
    transcript = fake.transcript()
    assert "bot → Sam #1: [photo application.octet-stream 16x8] Your tutor" in transcript
    assert "bot → Sam #2: [document booking.pdf, application/pdf, 16 bytes]" in transcript
    assert "bot edited caption of #1 for Sam: Ana" in transcript
