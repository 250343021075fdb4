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
from tests.telegram_rules import FloodControl

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
            # The second app sends concurrently while the first one long-polls. Ten messages at
            # once into one chat: concurrency is tested here, not flood control.
            fake.flood = None
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


# --- Telegram's own rules (tests/telegram_rules.py, after TDLib) -------------------------------
@pytest.mark.parametrize(
    ("html", "seen", "entities"),
    [
        ("<b>Hi</b> &amp; <i>bye</i>", "Hi & bye", [("bold", 0, 2), ("italic", 5, 3)]),
        ("R&D &lt;b&gt; 3 > 2 &quot;q&quot; &#65;&#x42;", 'R&D <b> 3 > 2 "q" AB', []),
        ("Q&amp;A and &copy; and &amp", "Q&A and &copy; and &", []),  # only 4 names, ';' optional
        ("📅 <strong>é</strong>", "📅 é", [("bold", 3, 1)]),  # offsets in UTF-16 units
        ('<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>', "xy", [("spoiler", 0, 1)]),
        ('<a href="https://example.org/?a=1&amp;b=2">site</a>', "site", [("text_link", 0, 4)]),
        ("<pre><code class='language-python'>x = 1</code></pre>", "x = 1", [("pre", 0, 5)]),
    ],
)
async def test_html_is_parsed_into_the_text_and_entities_telegram_shows(
    fake: FakeTelegram, html: str, seen: str, entities: list[tuple[str, int, int]]
) -> None:
    fake.user(SAM)
    async with build_app(fake) as app:
        message = await app.bot.send_message(SAM, html, parse_mode="HTML")
    assert message.text == fake.last_message(SAM).text == seen
    found = [(e.type, e.offset, e.length) for e in message.entities]
    assert found[: len(entities)] == entities


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("Alice <Bob>", 'Unsupported start tag "bob" at byte offset 6'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("x <", "Unclosed start tag at byte offset 2"),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("done</b>", "Unexpected end tag at byte offset 4"),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=https://x.org>x</a>", "Unexpected end of name token at byte offset 8"),
        ("é <u>", 'Can\'t find end tag corresponding to start tag "u"'),
    ],
)
async def test_html_telegram_cannot_parse_is_refused_with_its_error(
    fake: FakeTelegram, html: str, error: str
) -> None:
    fake.user(SAM)
    async with build_app(fake) as app:
        with pytest.raises(BadRequest, match="an't parse entities"):
            await app.bot.send_message(SAM, html, parse_mode="HTML")
        sent = await app.bot.send_message(SAM, "ok")
        with pytest.raises(BadRequest, match="an't parse entities"):
            await app.bot.edit_message_text(html, SAM, sent.message_id, parse_mode="HTML")
        assert await app.bot.send_message(SAM, html)  # without parse_mode it is plain text
    assert fake.calls_to("sendMessage")[0].result == f"Bad Request: can't parse entities: {error}"
    assert [m.text for m in fake.messages(SAM)] == ["ok", html]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://calendar.google.com/calendar/render?action=TEMPLATE&text=A%20%3Cb%3E", None),
        ("http://127.0.0.1:8080/dashboard", None),
        ("tg://resolve?domain=tutor_test_bot", None),
        ("https://localhost/dashboard", "Wrong HTTP URL"),
        ("ftp://files.example.org/x", "Unsupported URL protocol"),
        ("javascript:alert(1)", "Wrong port number specified in the URL"),
        ("/dashboard", "URL host is empty"),
        ("https://exa mple.org/", "Disallowed character in URL host"),
        ("https://example.org:99999/", "Wrong port number specified in the URL"),
    ],
)
async def test_button_urls_are_checked_like_telegram_checks_them(
    fake: FakeTelegram, url: str, problem: str | None
) -> None:
    fake.user(SAM)
    button = InlineKeyboardMarkup([[InlineKeyboardButton("Open", url=url)]])
    async with build_app(fake) as app:
        if problem is None:
            await app.bot.send_message(SAM, "link", reply_markup=button)
            assert fake.last_message(SAM).button_rows == [[{"text": "Open", "url": url}]]
            return
        with pytest.raises(BadRequest, match="is invalid"):
            await app.bot.send_message(SAM, "link", reply_markup=button)
    expected = f"Bad Request: inline keyboard button URL '{url}' is invalid: {problem}"
    assert fake.calls_to("sendMessage")[-1].result == expected


async def test_a_callback_answer_over_200_characters_is_refused_and_the_press_keeps_spinning(
    fake: FakeTelegram,
) -> None:
    sam = fake.user(SAM)
    async with build_app(fake) as app:
        await app.bot.send_message(SAM, "pick", reply_markup=START_KEYBOARD)
        query_id = sam.press("Book now")["callback_query"]["id"]
        with pytest.raises(BadRequest, match="Message_too_long"):  # PTB capitalises it
            await app.bot.answer_callback_query(query_id, "x" * 201)
        assert fake.unanswered_callback_queries() == [query_id]
        assert await app.bot.answer_callback_query(query_id, "é" * 200)  # characters, not bytes
    assert fake.unanswered_callback_queries() == []


class Clock:
    """The fake's flood-control clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_chat_gets_a_burst_then_about_one_message_a_second_then_429_with_retry_after(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.clock = clock = Clock()
    fake.user(SAM)
    fake.user(43, "Ana")
    async with build_app(fake) as app:
        for n in range(FloodControl().burst):  # a quiet chat takes a short burst
            await app.bot.send_message(SAM, f"burst {n}")
        with pytest.raises(RetryAfter) as flood:
            await app.bot.send_message(SAM, "one too many")
        assert flood.value.retry_after == dtm.timedelta(seconds=1)
        assert await app.bot.send_message(43, "another chat is not affected")
        clock.now += 1.0  # then one a second
        await app.bot.send_message(SAM, "a second later")
        with pytest.raises(RetryAfter):
            await app.bot.send_message(SAM, "too soon again")
        await app.bot.edit_message_text("edits are not counted", SAM, 1)
    refused = [c for c in fake.calls_to("sendMessage") if c.status == 429]
    assert [c.result for c in refused] == ["Too Many Requests: retry after 1"] * 2
    assert len(fake.messages(SAM)) == FloodControl().burst + 1


async def test_a_persons_own_pace_refills_their_chat_and_tests_can_tighten_or_disable_it(
    fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.clock = Clock()
    fake.flood = FloodControl(burst=1, per_second=0.5, seconds_per_action=2.0)
    sam = fake.user(SAM)
    async with build_app(fake) as app:
        await app.bot.send_message(SAM, "first", reply_markup=START_KEYBOARD)
        with pytest.raises(RetryAfter) as flood:
            await app.bot.send_message(SAM, "second")
        assert flood.value.retry_after == dtm.timedelta(seconds=2)  # one per 2 s
        sam.press("Book now")  # reading and tapping took the person 2 s
        await app.bot.send_message(SAM, "an answer to the press")
        fake.flood = None
        for n in range(20):
            await app.bot.send_message(SAM, f"unlimited {n}")
    assert len(fake.messages(SAM)) == 22
