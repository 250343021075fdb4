"""The terminal chat, scripted through standard input, books a session end to end on SQLite."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine.links import verify


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
