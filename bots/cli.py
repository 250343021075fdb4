"""`bookbot` command line: the local demo chat, migrations and the benchmark."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bots import console
from bots.email.senders import email_sender
from bots.email.settings import get_email_settings
from bots.logs import configure_logging
from bots.platforms import enabled_platforms, platform_secrets
from engine.accounts import Accounts
from engine.chat.conversation import ConversationService, utc_now
from engine.chat.formatting import normalize_locale
from engine.followup.notify import EmailSender
from engine.links import SOURCES
from engine.settings import MIN_LINK_SECRET_BYTES, Settings, get_settings, insecure_defaults
from storage.db import make_engine, make_sessionmaker
from storage.demo_data import load_demo
from storage.migrate import upgrade
from storage.repositories import Repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bookbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="book a session in a terminal chat over demo data")
    demo.add_argument("--database-url", help="default: DATABASE_URL or sqlite:///bookbot.db")
    demo.add_argument("--reset", action="store_true", help="start from a fresh SQLite file")
    demo.add_argument("--course", help="open the wizard for this course slug")
    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--database-url")
    bench = sub.add_parser("bench", help="measure the performance targets on PostgreSQL")
    bench.add_argument(
        "part",
        nargs="?",
        choices=("engine", "chat", "load"),
        help="only this part; default: engine and chat (load: the end-to-end run through serve)",
    )
    bench.add_argument("--database-url", help="PostgreSQL server; default: a throwaway one")
    bench.add_argument("--seconds", type=float, default=10.0, help="each chat run, measured")
    bench.add_argument("--chats", type=_counts, default=(1, 10, 50), help="chat counts: 1,10,50")
    bench.add_argument("--think", type=float, default=2.0, help="mean pause for the latency run")
    bench.add_argument("--processes", type=_counts, default=(1, 2, 4), help="scaling: 1,2,4")
    bench.add_argument("--students", type=int, default=200, help="load: students who book")
    bench.add_argument("--concurrency", type=int, default=50, help="load: students at a time")
    bench.add_argument("--coordinators", type=int, default=5, help="load: Slack coordinators")
    bench.add_argument("--reminders", type=int, default=10_000, help="load: reminders due")
    bench.add_argument("--rate", type=float, help="load: Telegram messages/s (default: 30)")
    bench.add_argument("--quick", action="store_true", help="load: a tiny run (the smoke test)")
    telegram = sub.add_parser("telegram", help="run the Telegram bot by long polling (development)")
    telegram.add_argument("--polling", action="store_true", required=True)
    slack = sub.add_parser("slack", help="run the Slack app in Socket Mode (development)")
    slack.add_argument("--socket", action="store_true", required=True)
    serve_cmd = sub.add_parser(
        "serve", help="run the enabled platforms' web app (aiohttp) and the worker"
    )
    serve_cmd.add_argument(
        "--no-worker",
        action="store_true",
        help="without the outbox worker (run `bookbot worker` or another serve for it)",
    )
    sub.add_parser("worker", help="send due reminders, room links, e-mails and notices")
    link = sub.add_parser("link", help="mint a signed Telegram deep link for local use")
    link.add_argument("--user-id", type=int, required=True, help="platform user (the student)")
    link.add_argument("--course", required=True, help="course slug")
    link.add_argument("--st", type=int, help="pre-selected ST (their user id)")
    link.add_argument("--source", default="CLI", choices=SOURCES)
    args = parser.parse_args(argv)
    settings = get_settings()
    service = args.command in ("telegram", "slack", "serve", "worker")
    configure_logging(
        settings,
        level=settings.log_level or ("INFO" if service else "WARNING"),
        secrets=[*platform_secrets(), *get_email_settings().secrets()],
    )

    if args.command == "demo":
        url = args.database_url or get_settings().database_url
        if args.reset:
            remove_sqlite_file(url)
        try:
            asyncio.run(run_demo(url, course=args.course))
        except KeyboardInterrupt:
            # Ctrl-C anywhere: the chat's transaction was rolled back, nothing half-saved.
            print("\nbye")
        return 0
    elif args.command == "migrate":
        asyncio.run(run_migrate(args.database_url or get_settings().database_url))
    elif args.command == "bench":
        from benchmarks.chat_bench import ChatOptions
        from benchmarks.run import main as bench_main

        if args.part == "load":
            from benchmarks.load import main as load_main
            from benchmarks.load import options_from

            return load_main(args.database_url, options_from(args))

        chat = ChatOptions(args.seconds, args.chats, args.think, args.processes)
        return bench_main(args.database_url, args.part, chat)
    elif args.command == "telegram":
        asyncio.run(run_telegram_polling())
    elif args.command == "slack":
        return run_slack_socket_command()
    elif args.command == "serve":
        asyncio.run(run_serve(worker=not args.no_worker))
    elif args.command == "worker":
        asyncio.run(run_worker_command())
    elif args.command == "link":
        print(asyncio.run(mint_link(args.user_id, args.course, args.st, args.source)))
    return 0


def _counts(text: str) -> tuple[int, ...]:
    """The chat or process counts of `bookbot bench`: "1,10,50" gives (1, 10, 50)."""
    return tuple(int(n) for n in text.split(","))


def refuse_insecure(unsafe: list[str]) -> None:
    if unsafe:
        raise SystemExit(
            f"set {' and '.join(unsafe)}: the development defaults are public, and LINK_SECRET "
            f"needs at least {MIN_LINK_SECRET_BYTES} bytes"
        )


Factory = async_sessionmaker[AsyncSession]


async def run_without_public_url(run: Callable[[Settings, Factory], Awaitable[None]]) -> None:
    """Telegram polling, Slack Socket Mode: the same public-secret refusal and migrations as
    `serve`, then `run` until it returns (no worker inside)."""
    settings = get_settings()
    refuse_insecure(insecure_defaults(settings))
    engine = open_engine(settings.database_url)
    try:
        await upgrade(engine)
        await run(settings, make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def run_telegram_polling() -> None:
    """`bookbot telegram --polling`: development without a public URL (no worker inside)."""
    from bots.telegram.app import build_application, run_polling
    from bots.telegram.settings import get_telegram_settings

    async def poll(settings: Settings, factory: Factory) -> None:
        await run_polling(
            build_application(settings, get_telegram_settings(), factory, webhook=False)
        )

    await run_without_public_url(poll)


def run_slack_socket_command() -> int:
    """`bookbot slack --socket`: 2 with one sentence when a token is missing, 1 when Slack
    refuses one."""
    from bots.server import wait_for_stop
    from bots.slack.settings import get_slack_settings
    from bots.slack.socket import TokenRefused, refusal, run_socket_mode

    problem = refusal(get_slack_settings())
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2

    async def connect(settings: Settings, factory: Factory) -> None:
        await run_socket_mode(settings, get_slack_settings(), factory, until=wait_for_stop)

    try:
        asyncio.run(run_without_public_url(connect))
    except TokenRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    return 0


async def run_serve(*, worker: bool = True) -> None:
    """`bookbot serve`: every enabled platform's routes and /healthz in one aiohttp app, and the
    worker; refuses public development secrets before touching the database."""
    from bots.server import get_server_settings, serve, startup_problems

    settings = get_settings()
    refuse_insecure(insecure_defaults(settings))
    engine = open_engine(settings.database_url)
    try:
        factory = make_sessionmaker(engine)
        platforms = enabled_platforms(settings, factory)
        refuse_insecure(await startup_problems(settings, platforms))
        server = get_server_settings()
        if not worker:
            server = server.model_copy(update={"worker": False})
        if server.migrate:  # off where a migration service runs first (docker-compose.yml)
            await upgrade(engine)
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(settings, factory, platforms, email(settings), server, stop)
        )
        await _until_stopped_or_done(task, stop)
    finally:
        await engine.dispose()


async def run_worker_command() -> None:
    from bots.server import get_server_settings
    from bots.worker import run_worker

    settings = get_settings()
    engine = open_engine(settings.database_url)
    try:
        await upgrade(engine)
        factory = make_sessionmaker(engine)
        platforms = enabled_platforms(settings, factory)
        stop = asyncio.Event()
        limit = get_server_settings().shutdown_seconds
        task = asyncio.create_task(
            run_worker(settings, factory, platforms, email(settings), stop, limit)
        )
        await _until_stopped_or_done(task, stop)
    finally:
        await engine.dispose()


async def _until_stopped_or_done(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Run `task` until a signal; a task that fails early (a platform refusing to start)
    ends the command with its error instead of waiting for a signal that never comes."""
    from bots.server import wait_for_stop

    signalled = asyncio.create_task(wait_for_stop())
    await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    signalled.cancel()
    await task


def email(settings: Settings) -> EmailSender:
    return email_sender(get_email_settings(), settings.email_from)


async def mint_link(user_id: int, course: str, teacher_id: int | None, source: str) -> str:
    settings = get_settings()
    engine = open_engine(settings.database_url)
    try:
        await upgrade(engine)
        accounts = Accounts(make_sessionmaker(engine), settings)
        try:
            payload = await accounts.mint_payload(user_id, course, teacher_id, source, utc_now())
        except LookupError as error:
            raise SystemExit(str(error)) from None
    finally:
        await engine.dispose()
    from bots.telegram.links import deep_link
    from bots.telegram.settings import get_telegram_settings

    # A Telegram link whether or not a token is set: the web platform mints the same.
    return deep_link(get_telegram_settings().bot_username, payload)


async def run_migrate(url: str) -> None:
    engine = open_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print(f"schema up to date: {make_url(url).render_as_string()}")


def open_engine(url: str) -> AsyncEngine:
    """Every command's engine, with the pool size from settings (see the README's rule)."""
    settings = get_settings()
    return make_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)


def sqlite_file(url: str) -> Path | None:
    """The SQLite file a URL names, absolute, so the demo can say where its data lives."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        return Path(parsed.database).resolve()
    return None


def remove_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)


async def run_demo(url: str, *, course: str | None) -> None:
    engine = open_engine(url)
    try:
        await upgrade(engine)
        factory = make_sessionmaker(engine)
        service = ConversationService(factory, get_settings())
        async with factory() as session, session.begin():
            ids = await load_demo(session, service.clock())
            student = await Repo(session).user(ids.student_id)
            assert student is not None
            locale = normalize_locale(student.locale)
        where = sqlite_file(url)
        print(f"Signed in as {student.name} ({student.timezone}). Database: {where or url}")
        # Invites land next to the SQLite file (the checkout, with scripts/demo.sh).
        files = (where.parent if where else Path.cwd()) / "invites"
        await console.run(
            service, student.id, locale, sys.stdin, print, course_slug=course, files_dir=files
        )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
