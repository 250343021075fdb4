"""Terminal chat over the real engine: screens as text, numbered choices, typed text for prompts.

It reads standard input line by line, so a booking can be scripted:
`printf '1\\n1\\n...' | bookbot demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TextIO

from engine.chat import flow
from engine.chat import messages as m
from engine.chat.conversation import ConversationService, DatabaseBusy, DatabaseUnavailable
from engine.chat.formatting import format_day_short
from engine.chat.screens import Button, Kind, Screen

PLATFORM = "console"
HELP = (
    "Type the number of a choice, or type text when asked (a date like “next friday”, a note).\n"
    "Commands: /book [course-slug] · /mysessions · /cancel · /unlink · /notify · /help · /quit"
)


def render(screen: Screen, locale: str) -> tuple[str, list[Button]]:
    """Screen -> text plus the buttons that the numbers refer to (URL buttons included)."""
    choices: list[Button] = []
    out = [f"⚠️  {screen.notice}"] if screen.notice else []
    out.append(f"== {screen.title} ==")
    out.extend(screen.lines)

    def number(button: Button, label: str | None = None) -> str:
        choices.append(button)
        suffix = f" → {button.url}" if button.url else ""
        return f"  {len(choices)}) {label or button.label}{suffix}"

    for card in screen.cards:
        out.append(f"-- {card.title} --")
        out.extend(f"   {line}" for line in card.lines)
        if card.button.enabled:
            out.append(number(card.button))
    if screen.calendar:
        nav, *weeks = screen.calendar
        out.append("   ".join(b.label for b in nav if b.label.strip()))
        for week in weeks:
            out.append(" ".join(_day_cell(b) for b in week))
        for week in weeks[1:]:
            for button in week:
                if button.enabled and button.action and button.action.kind is Kind.PICK_DATE:
                    day = date.fromisoformat(button.action.arg)
                    out.append(number(button, format_day_short(day, locale)))
        for button in nav:
            if button.enabled:
                out.append(
                    number(button, "previous month" if button.label == "‹" else "next month")
                )
    for row in screen.buttons:
        for button in row:
            if button.enabled:
                out.append(number(button))
    if screen.prompt:
        out.append(f"✎ {screen.prompt}")
    for entry in screen.more:  # messages of their own (/mysessions entries), numbered on
        out.append(f"-- {entry.title} --")
        out.extend(f"   {line}" for line in entry.lines)
        out.extend(number(b) for row in entry.buttons for b in row if b.enabled)
    return "\n".join(out), choices


def _day_cell(button: Button) -> str:
    label = button.label.strip() or ""
    return f"[{label:>2}]" if button.enabled else f" {label:>2} "


async def read_line(stdin: TextIO) -> str:
    """One line of input without blocking the event loop, so Ctrl-C can interrupt the wait.

    The read runs in a daemon thread: a person who quits while the prompt waits must not keep
    the process alive until they press Enter.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def deliver(line: str | Exception) -> None:
        if answer.done():
            return
        if isinstance(line, Exception):
            answer.set_exception(line)
        else:
            answer.set_result(line)

    def read() -> None:
        line: str | Exception
        try:
            line = stdin.readline()
        except (OSError, ValueError):  # stdin closed under us: treat as end of input
            line = ""
        except Exception as error:  # a scripted input failing: the chat must not wait forever
            line = error
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody waits
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return await answer


def save_files(screen: Screen, folder: Path) -> list[Path]:
    """Write a screen's files (the .ics invite) where the person can open them."""
    saved = []
    for attachment in screen.files:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(attachment.filename).name
        path.write_bytes(attachment.content)
        saved.append(path.resolve())
    return saved


async def run(
    service: ConversationService,
    user_id: int,
    locale: str,
    stdin: TextIO = sys.stdin,
    write: Callable[[str], None] = print,
    course_slug: str | None = None,
    chat_id: str = "demo",
    files_dir: Path = Path("invites"),
) -> None:
    """The chat loop. Ctrl-C cancels it at whatever it awaits (`bookbot demo` then says "bye");
    end of input and /quit end it here."""
    await _chat(service, user_id, locale, stdin, write, course_slug, chat_id, files_dir)


async def _chat(
    service: ConversationService,
    user_id: int,
    locale: str,
    stdin: TextIO,
    write: Callable[[str], None],
    course_slug: str | None,
    chat_id: str,
    files_dir: Path,
) -> None:
    async def send(event: flow.ChatEvent) -> Screen | None:
        async def loading(screen: Screen) -> None:
            write(render(screen, locale)[0])

        try:
            screen = await service.handle(
                platform=PLATFORM, chat_id=chat_id, user_id=user_id, event=event, on_loading=loading
            )
        except DatabaseBusy:  # another program holds the SQLite file: nothing was saved
            write(f"⚠️  {m.DATABASE_BUSY}")
            return None
        except DatabaseUnavailable:  # nothing was saved: the current screen is still valid
            write(f"⚠️  {m.BOOKING_FAILED}")
            return None
        if screen is not None and screen.unchanged:
            write(f"⚠️  {screen.notice}")  # the screen above still holds
            return None
        if screen is not None:
            for path in save_files(screen, files_dir):
                write(f"📎 Calendar invite saved: {path}")
        return screen

    write(HELP)
    current = await send(flow.Start(course_slug=course_slug, source="console"))
    choices: list[Button] = []
    show = True
    while True:
        if current is not None and show:
            text, choices = render(current, locale)
            write("\n" + text)
        show = True
        write("> ")
        line = await read_line(stdin)
        if not line:
            write("bye")
            return
        line = line.strip()
        event: flow.ChatEvent
        if line in ("/quit", "/exit"):
            write("bye")
            return
        if line == "/help" or not line:
            write(HELP)
            show = False
            continue
        if line.startswith("/book"):
            event = flow.Start(course_slug=line.removeprefix("/book").strip() or None)
        elif line == "/cancel":
            event = flow.Cancel()
        elif line == "/mysessions":
            event = flow.MySessions()
        elif line == "/unlink":
            event = flow.Unlink()
        elif line.startswith("/away"):
            event = flow.Away(line.removeprefix("/away").strip())
        elif line == "/notify":
            event = flow.Notify()
        elif line.isdigit() and current is not None and 1 <= int(line) <= len(choices):
            chosen = choices[int(line) - 1]
            if chosen.url or (chosen.action is None and chosen.payload is None):
                write(f"(would open {chosen.url} in a browser)")
                show = False
                continue
            event = flow.Press(current.data(chosen))
        else:
            event = flow.Text(line)
        shown = await send(event)
        if shown is None:
            show = False  # a notice only: the numbers still refer to the screen above
        current = shown or current
