"""The `bookbot` executable: Ctrl-C at any moment ends a command quietly, imports included.

Importing the engine, SQLAlchemy and babel takes a moment; a Ctrl-C that lands in that moment
would otherwise print a page of import traceback. This module imports nothing heavy itself.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    chatting = bool(args) and args[0] == "demo"
    try:
        from bots.cli import main as run

        return run(args)
    except KeyboardInterrupt:
        # The terminal chat is left with Ctrl-C as often as with /quit: that is a normal end.
        print("\nbye" if chatting else "\ninterrupted", flush=True)
        return 0 if chatting else INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
