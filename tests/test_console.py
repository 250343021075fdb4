"""The terminal chat, scripted through standard input, books a session end to end on SQLite."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import icalendar
import pytest

from bots import console
from engine.chat import messages as m
from engine.chat.conversation import ConversationService
from engine.links import verify
from engine.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.demo_data import load_demo
from storage.migrate import upgrade


def run_demo(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "demo"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_scripted_terminal_chat_books_a_session_end_to_end(tmp_path: Path) -> None:
    # 2 = Calculus I, 1 = first ST card, 1 = first free day, 1 = first time, 3 = Book Session
    result = run_demo(tmp_path, "2\n1\n1\n1\n3\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Signed in as Alex Kim (Europe/London)" in out
    assert "Step 1 of 4 · Choose a Student-Teacher" in out
    assert "Times shown in Europe/London" in out
    assert "⏳ Booking your session…" in out
    assert "== Session Booked! ==" in out
    with sqlite3.connect(tmp_path / "demo.db") as db:
        rows = db.execute(
            "SELECT s.status, s.created_via, u.name FROM sessions s "
            "JOIN users u ON u.id = s.student_id WHERE s.created_via = 'console'"
        ).fetchall()
    assert rows == [("scheduled", "console", "Alex Kim")]


def test_the_terminal_chat_takes_typed_dates_notes_and_commands(tmp_path: Path) -> None:
    script = "\n".join(
        [
            "/book calculus-1",
            "1",  # Lukas Becker
            "not a date at all",
            "/book organic-chemistry",  # not enrolled
            "/book academic-writing",  # no active STs
            "1",  # Schedule Later
            "/mysessions",
            "/quit",
        ]
    )
    result = run_demo(tmp_path, script + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "couldn't read “not a date at all” as a date" in out
    assert "You must be enrolled to book." in out
    assert "Enroll now → https://" in out
    assert "No Student-Teachers available. Try later." in out
    assert "== Saved for later ==" in out
    assert "• Academic Writing: not scheduled yet (send /book academic-writing" in out
    assert out.rstrip().endswith("bye")


def test_bookbot_link_mints_a_deep_link_the_bot_accepts(tmp_path: Path) -> None:
    run_demo(tmp_path, "/quit\n")  # creates the demo database
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "LINK_SECRET": "cli-test-secret",
        "TELEGRAM_BOT_USERNAME": "campus_tutor_bot",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "link", "--user-id", "1", "--course", "calculus-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://t.me/campus_tutor_bot?start=")
    claims = verify(url.split("start=")[1], "cli-test-secret", datetime.now(UTC))
    assert (claims.user_id, claims.teacher_id, claims.source) == (1, None, "CLI")


def _bookbot_demo(tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "bots.launcher", "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("moment", ["while starting", "at the prompt", "mid-conversation"])
def test_ctrl_c_anywhere_ends_the_terminal_chat_with_bye_and_no_traceback(
    tmp_path: Path, moment: str
) -> None:
    demo = _bookbot_demo(tmp_path)
    assert demo.stdin is not None and demo.stdout is not None
    if moment != "while starting":
        # Wait for the first prompt: the chat is then blocked reading standard input.
        seen = ""
        while "> " not in seen:
            seen += demo.stdout.readline()
        if moment == "mid-conversation":
            demo.stdin.write("2\n1\n")
            demo.stdin.flush()
            while "Step 2 of 4" not in seen:
                seen += demo.stdout.readline()
    else:
        time.sleep(0.2)  # inside the imports or the migration
    demo.send_signal(signal.SIGINT)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err
    assert out.rstrip().endswith("bye")
    assert "Traceback" not in err and "Error" not in err, err


class _BusyWhileReading(io.StringIO):
    """Standard input during which another program holds the database's write lock: taken
    before the first line is returned, released before the second."""

    def __init__(self, text: str, holder: sqlite3.Connection) -> None:
        super().__init__(text)
        self.lines_read, self.holder = 0, holder

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.lines_read += 1
        if self.lines_read == 1:
            self.holder.execute("BEGIN IMMEDIATE")  # another program starts writing
        elif self.lines_read == 2:
            self.holder.rollback()  # ... and is done
        return super().readline(size)


async def test_a_busy_sqlite_file_gets_one_sentence_and_the_chat_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    engine = make_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    try:
        await upgrade(engine)
        factory = make_sessionmaker(engine)
        service = ConversationService(factory, Settings())
        async with factory() as session, session.begin():
            ids = await load_demo(session, service.clock())
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        out: list[str] = []
        stdin = _BusyWhileReading("2\n2\n/quit\n", holder)
        await console.run(service, ids.student_id, "en_GB", stdin, out.append, files_dir=tmp_path)
        holder.close()
    finally:
        await engine.dispose()
    text = "\n".join(out)
    busy, after = text.split(m.DATABASE_BUSY)
    assert "Traceback" not in text
    # The same choice, once the lock was gone, opened the course.
    assert "Step 1 of 4 · Choose a Student-Teacher" not in busy
    assert "Step 1 of 4 · Choose a Student-Teacher" in after
    assert text.rstrip().endswith("bye")


def test_a_failed_booking_prints_one_log_line_in_the_terminal(tmp_path: Path) -> None:
    run_demo(tmp_path, "/quit\n")  # creates the demo database
    with sqlite3.connect(tmp_path / "demo.db") as db:
        # Any failure inside the booking transaction: the database refuses new sessions.
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sessions BEGIN "
            "SELECT RAISE(ABORT, 'refused by a test'); END"
        )
    result = run_demo(tmp_path, "2\n1\n1\n1\n3\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert m.BOOKING_FAILED in result.stdout
    assert "Step 4 of 4" in result.stdout.split(m.BOOKING_FAILED)[-1]  # still on the confirm step
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "booking transaction failed for student" in lines[0]


def test_the_terminal_chat_writes_the_invite_it_mentions(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "2\n1\n1\n1\n3\n")
    assert result.returncode == 0, result.stderr
    saved = [line for line in result.stdout.splitlines() if "Calendar invite saved:" in line]
    assert len(saved) == 1
    invite = Path(saved[0].split("Calendar invite saved: ")[1])
    assert invite.parent == (tmp_path / "invites").resolve()
    calendar = icalendar.Calendar.from_ical(invite.read_bytes())
    assert calendar["METHOD"] == "REQUEST"
    assert "open the .ics file" in result.stdout


def test_text_and_cancel_after_the_success_screen_change_nothing(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "2\n1\n1\n1\n3\nhello\n/cancel\n/quit\n")
    assert result.returncode == 0, result.stderr
    after = result.stdout.split("== Session Booked! ==")[1]
    assert m.AFTER_FINAL in after and m.NOTHING_TO_CANCEL in after
    assert "Booking cancelled" not in after
    with sqlite3.connect(tmp_path / "demo.db") as db:
        statuses = db.execute("SELECT status FROM sessions WHERE created_via = 'console'")
        assert statuses.fetchall() == [("scheduled",)]
