"""`bookbot bench load --quick`: the end-to-end benchmark at a tiny size, as a user runs it (two
`serve` processes, two workers, the fake Telegram and Slack servers). Only its outcomes and the
shape of its report are checked, never its timings: a loaded test machine says nothing about
latency, and the benchmark's exit status follows the latency targets too.
"""

from __future__ import annotations

import random
import subprocess
import sys

from benchmarks.load_reminders import busiest_second
from benchmarks.load_students import choose
from engine.chat.screens import Kind
from tests.fake_telegram import SentMessage

ROWS = (
    "| Telegram: POST to the bot's reply, p99,",
    "| Slack: POST to the bot's reply, p99,",
    "| Double bookings after the run (SQL) | 0 | 0 | met |",
    "| Students who booked; screens that never came | 6 of 6; 0 stuck or refused;",
    "| Reminders, 40 due at once, 2 workers: each sent once | 40 chats, 0 twice, 40 rows sent "
    "| exactly once | met |",
    "| Reminder rate vs the configured per-bot rate |",
)


def test_a_quick_run_books_everyone_once_and_sends_each_reminder_once(pg_server: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bots.launcher",
            "bench",
            "load",
            "--quick",
            "--database-url",
            pg_server,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: a timing target missed
    out = run.stdout
    for row in ROWS:
        assert row in out, out
    assert "Telegram students: " in out and ", 6 booked," in out
    assert "bookings in SQL: {" in out and "'telegram': 6" in out
    assert "peak RSS: serve 1 " in out and "peak RSS: worker 1 " in out
    assert "updates/s" in out and "bookings/s" in out
    verdicts = [line.rsplit("|", 2)[-2].strip() for line in out.splitlines() if line[:2] == "| "]
    assert (run.returncode == 0) == all(v == "met" for v in verdicts[1:])  # [0]: the header


def test_the_busiest_second_counts_messages_in_any_one_second_window() -> None:
    assert busiest_second([]) == 0
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2, 3.0]) == 4  # 0.5 to 1.2
    assert busiest_second([0.0, 1.0, 2.0]) == 1


def _message(message_id: int) -> SentMessage:
    return SentMessage(1, message_id, "text", "", "", None, None, None, 0)


def test_a_student_books_when_offered_and_picks_among_the_first_few_times() -> None:
    rng = random.Random(3)
    offered = {
        Kind.BACK: [(_message(1), "1|b")],
        Kind.PICK_SLOT: [(_message(1), f"1|s|{n}") for n in range(10)],
    }
    picked = [choose(offered, rng) for _ in range(200)]
    assert {c[2] for c in picked if c is not None} == {"1|s|0", "1|s|1", "1|s|2"}
    offered[Kind.CONFIRM] = [(_message(2), "2|k")]
    assert choose(offered, rng) == (Kind.CONFIRM, offered[Kind.CONFIRM][0][0], "2|k")
    months = {Kind.MONTH: [(_message(3), "3|m|2026-11"), (_message(3), "3|m|2027-01")]}
    assert [choose(months, rng) for _ in range(5)] == [
        (Kind.MONTH, months[Kind.MONTH][1][0], "3|m|2027-01")
    ] * 5
    assert choose({}, rng) is None
