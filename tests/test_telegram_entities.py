"""People type `<`, `&` and tags into names and notes: end to end, Telegram shows them as typed.

The fake Bot API parses HTML the way Telegram does (tests/telegram_rules.py), so a name that is
not escaped either breaks the message ("can't parse entities") or shows up altered ("&amp;"
read as "&"). Every place that puts a person's words into an HTML message is crossed here: the
ST card, the wizard title and lines, a notice quoting what the student typed, the note prompt,
the confirmation, /mysessions; and the ST's notice, which is plain text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.worker import build_worker
from storage.models import Course, User
from storage.repositories import Repo
from tests.channels import eml
from tests.factories import NOW, make_world
from tests.fake_telegram import FakeTelegram, SentMessage
from tests.test_telegram import (
    ADA_TG,
    SAM_TG,
    Bot,
    payload,
    platforms_of,
    settings_for,
    start_bot,
    wizard,
)

Factory = async_sessionmaker[AsyncSession]

ADA = "Ada <b>Lovelace</b> & Co"
COURSE = "Calculus <I> & R&amp;D"
SAM = "Sam <Student> & Son"
NOTE = "if x < y && y > z: <b>prove it</b> &amp; &lt;done&gt;"
TYPED_DATE = "<i>someday</i> & never"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram, pg: Factory) -> AsyncIterator[Bot]:
    running = await start_bot(fake, pg)
    yield running
    await running.app.shutdown()


def bold_parts(message: SentMessage) -> list[str]:
    """The text under each bold entity, so the bot's own formatting is checked to survive."""
    units = (message.text or "").encode("utf-16-le")
    return [
        units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in message.entities or []
        if e["type"] == "bold"
    ]


def shown(fake: FakeTelegram, chat: int) -> str:
    """Everything the person saw, including earlier versions of edited messages."""
    texts = []
    for message in fake.messages(chat):
        texts += [revision.text or "" for revision in message.history]
        texts.append(message.text or "")
    return "\n".join(texts)


async def test_names_and_notes_with_html_characters_reach_both_people_exactly_as_typed(
    bot: Bot, fake: FakeTelegram, pg: Factory, tmp_path: Path
) -> None:
    world = await make_world(pg)
    ada_row = update(User).where(User.id == world.teachers[0].id).values(name=ADA)
    sam_row = update(User).where(User.id == world.student.id).values(name=SAM)
    course_row = update(Course).where(Course.id == world.course.id).values(title=COURSE)
    async with pg() as session, session.begin():
        for change in (ada_row, sam_row, course_row):
            await session.execute(change)
        await Repo(session).link_identity(
            "telegram", str(ADA_TG), world.teachers[0].id, str(ADA_TG)
        )
    sam = fake.user(SAM_TG, "Sam")
    fake.user(ADA_TG, "Ada")

    await bot.say(sam, f"/start {payload(world)}")
    card = next(msg for msg in fake.messages(SAM_TG) if msg.buttons() == [[f"Book with {ADA}"]])
    assert (card.text or "").startswith(ADA) and bold_parts(card) == [ADA]
    await bot.press(sam, f"Book with {ADA}")
    assert f"Student-Teacher: {ADA} (UTC)" in wizard(fake, SAM_TG)
    await bot.say(sam, TYPED_DATE)
    assert f"couldn't read “{TYPED_DATE}” as a date" in wizard(fake, SAM_TG)
    await bot.press(sam, "27")
    await bot.press(sam, "10:00 AM")
    await bot.press(sam, "Add a note")
    assert f"Type your note for {ADA}" in wizard(fake, SAM_TG)
    await bot.say(sam, NOTE)
    confirm = fake.last_message(SAM_TG)
    assert f"Note to {ADA}: {NOTE}" in (confirm.text or "")
    assert bold_parts(confirm) == [f"Book a Session for {COURSE}"]
    await bot.press(sam, "Book Session")
    assert f"Your session with {ADA} is booked." in wizard(fake, SAM_TG)
    await bot.say(sam, "/mysessions")
    assert f"{COURSE} with {ADA}" in (fake.last_message(SAM_TG).text or "")

    settings = settings_for(fake)
    await build_worker(
        settings, pg, platforms_of(bot.app, fake), lambda: NOW, email=eml(tmp_path, settings)
    ).run_once()
    notice = fake.last_message(ADA_TG).text or ""
    assert f"{SAM} booked {COURSE} with you" in notice
    assert f"Note from {SAM}: {NOTE}" in notice

    refused = [(c.method, c.result) for c in fake.calls if "parse entities" in str(c.result)]
    assert refused == []
    assert "&amp;lt;" not in shown(fake, SAM_TG)  # escaped once, not twice
