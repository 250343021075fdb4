"""Telegram front end: PTB updates in, engine events out; engine Screens back as messages.

No booking rule lives here. The wizard is one live message per chat, edited in place; ST cards
of step 1 are companion messages removed when the wizard moves on. Which messages those are is
stored in the database, so any bot process can continue the chat.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import (
    BotCommand,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram import render
from engine.accounts import Accounts, AlreadyLinked
from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService, database_unavailable, utc_now
from engine.chat.screens import Kind, Placement, Screen, decode
from engine.links import LinkError, ManageClaims
from engine.settings import Settings

log = logging.getLogger(__name__)

PLATFORM = "telegram"
COMMANDS = [
    BotCommand("book", "Book a tutoring session"),
    BotCommand("mysessions", "Your upcoming sessions"),
    BotCommand("cancel", "Leave the booking wizard"),
    BotCommand("unlink", "Unlink this Telegram account"),
    BotCommand("notify", "Choose where notices reach you"),
    BotCommand("help", "How this bot works"),
]
Context = ContextTypes.DEFAULT_TYPE
TelegramApp = Application[Any, Any, Any, Any, Any, Any]
MAX_REMEMBERED_AVATARS = 10_000


def _toast(text: str | None) -> str | None:
    """Telegram shows at most 200 characters in a press's answer."""
    return text[:200] if text else None


class TelegramFrontEnd:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.service = ConversationService(factory, settings, clock)
        self.accounts = Accounts(factory, settings)
        # Avatars Telegram refused once (bad URL, not an image): later cards show text at once
        # instead of paying a failing sendPhoto each time. Per process, bounded.
        self.bad_avatars: set[str] = set()

    def register(self, app: TelegramApp) -> None:
        # Private chats only: a wizard is one person's, and edited messages are not new input.
        private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("start", self.start, filters=private))
        app.add_handler(CommandHandler("book", self.book, filters=private))
        app.add_handler(CommandHandler("mysessions", self.upcoming, filters=private))
        app.add_handler(CommandHandler("cancel", self.cancel, filters=private))
        app.add_handler(CommandHandler("help", self.help, filters=private))
        app.add_handler(CommandHandler("unlink", self.unlink, filters=private))
        app.add_handler(CommandHandler("notify", self.notify, filters=private))
        app.add_handler(CallbackQueryHandler(self.pressed))
        app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, self.typed))
        app.add_handler(MessageHandler(private & filters.COMMAND, self.help))
        app.add_error_handler(self.failed)

    # --- commands -------------------------------------------------------------------------
    async def start(self, update: Update, context: Context) -> None:
        """/start <payload> from a web-platform button links the account and opens the wizard."""
        tg_user, chat = update.effective_user, update.effective_chat
        assert tg_user is not None and chat is not None
        if not context.args:
            linked = await self.accounts.user_for(PLATFORM, str(tg_user.id))
            await self._say(context, chat.id, m.HELP if linked else m.NOT_LINKED)
            return
        try:
            claims = await self.accounts.link_from_payload(
                PLATFORM, str(tg_user.id), str(chat.id), context.args[0], self.clock()
            )
        except AlreadyLinked as error:
            await self._say(context, chat.id, m.ALREADY_LINKED.format(name=error.linked_to))
            return
        except LinkError as error:
            text = {"expired": m.LINK_EXPIRED, "used": m.LINK_USED}.get(
                error.reason, m.LINK_INVALID
            )
            await self._say(context, chat.id, text)
            return
        if isinstance(claims, ManageClaims):  # an e-mail's "Manage in Telegram": /mysessions
            await self._drive(update, context, flow.MySessions(), user_id=claims.user_id)
            return
        event = flow.Start(
            course_id=claims.course_id, teacher_id=claims.teacher_id, source=claims.source
        )
        await self._drive(update, context, event, user_id=claims.user_id)

    async def book(self, update: Update, context: Context) -> None:
        slug = context.args[0] if context.args else None
        await self._drive(update, context, flow.Start(course_slug=slug, source="telegram"))

    async def cancel(self, update: Update, context: Context) -> None:
        await self._drive(update, context, flow.Cancel())

    async def help(self, update: Update, context: Context) -> None:
        assert update.effective_chat is not None
        await self._say(context, update.effective_chat.id, m.HELP)

    async def unlink(self, update: Update, context: Context) -> None:
        await self._drive(update, context, flow.Unlink())

    async def notify(self, update: Update, context: Context) -> None:
        await self._drive(update, context, flow.Notify())

    async def upcoming(self, update: Update, context: Context) -> None:
        await self._drive(update, context, flow.MySessions())

    # --- buttons and text -------------------------------------------------------------------
    async def pressed(self, update: Update, context: Context) -> None:
        query = update.callback_query
        chat = update.effective_chat
        assert query is not None and chat is not None
        if chat.type != chat.PRIVATE:
            await query.answer()
            return
        user_id = await self._user(update, context)
        if user_id is None:
            return  # _user answered the press with how to link
        decoded = decode(query.data or "")
        if decoded is not None and decoded[1].kind is Kind.NOOP:
            await query.answer(m.NOT_AVAILABLE)  # an inert day or header: nothing to do
            return
        pressed = query.message.message_id if query.message else None
        answered = False

        async def loading(screen: Screen) -> None:
            nonlocal answered
            answered = True
            await query.answer(_toast(screen.toast))
            await self.draw(context, chat.id, screen, pressed=pressed)

        try:
            screen = await self.service.handle(
                platform=PLATFORM,
                chat_id=str(chat.id),
                user_id=user_id,
                event=flow.Press(query.data or ""),
                update_id=str(update.update_id),
                on_loading=loading,
            )
        except Exception as error:
            if answered and database_unavailable(error):
                await self._put_back(context, chat.id, query.message)
            raise
        if screen is None:
            return  # a redelivered press: it was answered and drawn the first time
        if not answered:
            await query.answer(_toast(screen.toast), show_alert=screen.alert)
        await self.draw(context, chat.id, screen, pressed=pressed)

    async def typed(self, update: Update, context: Context) -> None:
        assert update.message is not None
        await self._drive(update, context, flow.Text(update.message.text or ""))

    async def _drive(
        self, update: Update, context: Context, event: flow.ChatEvent, user_id: int | None = None
    ) -> None:
        chat = update.effective_chat
        assert chat is not None
        user_id = user_id or await self._user(update, context)
        if user_id is None:
            return

        async def loading(screen: Screen) -> None:
            await self.show(context, chat.id, screen)

        screen = await self.service.handle(
            platform=PLATFORM,
            chat_id=str(chat.id),
            user_id=user_id,
            event=event,
            update_id=str(update.update_id),
            on_loading=loading,
        )
        if screen is not None:
            await self.draw(context, chat.id, screen)

    async def _user(self, update: Update, context: Context) -> int | None:
        """The linked platform user, or None after telling the person how to link."""
        assert update.effective_user is not None and update.effective_chat is not None
        user_id = await self.accounts.user_for(PLATFORM, str(update.effective_user.id))
        if user_id is None:
            if update.callback_query is not None:
                await update.callback_query.answer(m.NOT_LINKED[:200], show_alert=True)
            else:
                await self._say(context, update.effective_chat.id, m.NOT_LINKED)
        return user_id

    async def _say(self, context: Context, chat_id: int, text: str) -> None:
        await context.bot.send_message(chat_id, text)

    # --- drawing ------------------------------------------------------------------------------
    async def draw(
        self, context: Context, chat_id: int, screen: Screen, pressed: int | None = None
    ) -> None:
        """Put a screen where the engine placed it; a press was already answered."""
        if screen.unchanged:
            # Nothing on screen changes: a press got its toast; text or a command gets the
            # notice as a plain message, and earlier messages keep their buttons.
            if pressed is None:
                await self._say(context, chat_id, screen.notice or m.USE_BUTTONS_ONLY)
            return
        if screen.placement is Placement.PRESSED and pressed is not None:
            text, markup = render.text_of(screen), render.keyboard(screen)
            if not await self._edit(context, chat_id, pressed, text, markup):
                await context.bot.send_message(chat_id, text, ParseMode.HTML, reply_markup=markup)
            return
        if screen.placement is not Placement.WIZARD:
            for each in (screen, *screen.more):
                await context.bot.send_message(
                    chat_id,
                    render.text_of(each),
                    ParseMode.HTML,
                    reply_markup=render.keyboard(each),
                )
            return
        await self.show(context, chat_id, screen, pressed)

    async def show(
        self, context: Context, chat_id: int, screen: Screen, pressed: int | None = None
    ) -> None:
        """Draw a screen: edit the live message when a button of this chat's wizard was pressed,
        else move the wizard down to a fresh message (typed text, commands)."""
        bot = context.bot
        if screen.loading:
            # Drawn while the booking transaction holds this chat's row (and, on SQLite, the
            # database): edit the pressed message without touching the database.
            if pressed is not None:
                await self._edit(context, chat_id, pressed, render.text_of(screen), None)
            return
        if await self.accounts.newer_than(PLATFORM, str(chat_id), screen.nonce):
            return  # a later event (another process) already drew a newer screen
        stored, stored_extras = await self.accounts.messages(PLATFORM, str(chat_id))
        main = int(stored) if stored is not None else None  # stored as text; Telegram's are ints
        for message_id in stored_extras:
            await self._quietly(bot.delete_message(chat_id, int(message_id)))
        # A press on any other message (a final "Session Booked!" above, say) leaves that
        # message as it is: final screens keep their text and buttons.
        cards = render.cards(screen)
        if main is not None and (pressed is None or cards):
            # The wizard moves below the person's message, or below the cards it introduces.
            if cards:
                await self._quietly(bot.delete_message(chat_id, main))
            else:
                await self._quietly(bot.edit_message_reply_markup(chat_id, main, reply_markup=None))
            main = None
        new_extras = [await self._send_card(context, chat_id, card) for card in cards]
        text, markup = render.text_of(screen), render.keyboard(screen)
        if main is not None and not await self._edit(context, chat_id, main, text, markup):
            main = None
        if main is None:
            sent = await bot.send_message(chat_id, text, ParseMode.HTML, reply_markup=markup)
            main = sent.message_id
        for attachment in screen.files:
            await bot.send_document(chat_id, attachment.content, filename=attachment.filename)
        # A final screen is never edited again: the next screen starts a new message.
        live = None if screen.final else main
        await self.accounts.remember_messages(
            PLATFORM,
            str(chat_id),
            None if live is None else str(live),
            [str(extra) for extra in new_extras],
        )

    async def _edit(
        self,
        context: Context,
        chat_id: int,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None,
    ) -> bool:
        """False when the message cannot be edited (deleted, too old): send a new one instead."""
        try:
            await context.bot.edit_message_text(
                text, chat_id, message_id, parse_mode=ParseMode.HTML, reply_markup=markup
            )
        except BadRequest as error:
            return "not modified" in str(error).lower()
        return True

    async def _put_back(self, context: Context, chat_id: int, pressed: object) -> None:
        """The database went away after the "booking..." screen replaced the pressed message's
        buttons and its answer was spent: the message comes back as it was, under "Unable to
        book", so the student can press again once the database is back."""
        if not isinstance(pressed, Message) or pressed.text is None:
            return
        lines = pressed.text_html.split("\n")
        if lines[0].startswith("⚠️"):
            lines = lines[1:]  # an earlier notice gives way to this one
        text = "\n".join([f"⚠️ <i>{html.escape(m.BOOKING_FAILED)}</i>", *lines])
        with contextlib.suppress(TelegramError):
            markup = pressed.reply_markup
            await self._edit(context, chat_id, pressed.message_id, text, markup)

    async def _send_card(self, context: Context, chat_id: int, card: render.CardMessage) -> int:
        sent: Message
        if card.photo_url and card.photo_url not in self.bad_avatars:
            try:
                sent = await context.bot.send_photo(
                    chat_id,
                    card.photo_url,
                    caption=card.caption,
                    parse_mode=ParseMode.HTML,
                    reply_markup=card.markup,
                )
                return sent.message_id
            except BadRequest:
                log.info("an avatar could not be sent; showing its card as text from now on")
                if len(self.bad_avatars) < MAX_REMEMBERED_AVATARS:
                    self.bad_avatars.add(card.photo_url)
        sent = await context.bot.send_message(
            chat_id, card.caption, ParseMode.HTML, reply_markup=card.markup
        )
        return sent.message_id

    @staticmethod
    async def _quietly(call: object) -> None:
        """Cleanup calls (deleting cards, removing old keyboards) must never break the chat."""
        with contextlib.suppress(BadRequest, Forbidden):
            await call  # type: ignore[misc]

    async def failed(self, update: object, context: Context) -> None:
        """Log the trace; the person gets a plain sentence, never a stack trace."""
        if context.error is not None and database_unavailable(context.error):
            await self._database_unavailable(update, context)
            return
        log.error("update failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                if update.callback_query is not None:
                    await update.callback_query.answer(m.SOMETHING_WENT_WRONG)
                else:
                    await self._say(context, update.effective_chat.id, m.SOMETHING_WENT_WRONG)

    async def _database_unavailable(self, update: object, context: Context) -> None:
        """The database is away: say "try again" and leave the screen; the press works later."""
        log.warning("update not handled: database unavailable")
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        with contextlib.suppress(TelegramError):
            if update.callback_query is not None:
                await update.callback_query.answer(m.BOOKING_FAILED)
            else:
                await self._say(context, update.effective_chat.id, m.BOOKING_FAILED)
