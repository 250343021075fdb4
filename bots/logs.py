"""Logging for every bookbot command: secrets never reach a log line, whatever logger wrote it.

httpx logs each request URL at INFO, and Telegram's URLs carry the bot token; PTB logs each call's
parameters (message texts, the webhook secret) at DEBUG. Those loggers are quieted, and a filter
on the root logger's handlers redacts every configured secret from the message, its arguments,
exception text and stack, so a logger turned up later, or an exception quoting a URL, leaks
nothing. (A filter on a logger would miss records propagated from its children.)

`LOG_FORMAT=json` writes each record as one JSON object a line (time in UTC, level, logger,
message, and the record's `extra=` fields, such as each chat update's platform, kind, steps,
outcome and milliseconds from engine/observe.py); the filter runs before either format.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import quote

from sqlalchemy.engine import make_url

from engine.settings import Settings

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_LENGTH = 6
"""Shorter values are left alone: redacting "abc" everywhere would ruin the logs, not hide a key."""

QUIET: dict[str, int] = {
    "httpx": logging.WARNING,  # INFO: every request URL, token included
    "httpcore": logging.WARNING,  # DEBUG: connection chatter
    "telegram.Bot": logging.INFO,  # DEBUG: every call's parameters (texts, notes, secrets)
    "telegram.ext.ExtBot": logging.INFO,
    # DEBUG: every Web API request and response body (messages, users.info with names and
    # e-mail addresses) and every answer bolt sends (modals with the student's name).
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
}


def secrets_of(settings: Settings, others: Iterable[str | None] = ()) -> list[str]:
    """Every secret the engine's settings hold, plus `others` (each platform's and the e-mail
    channel's own, from their settings groups), in the spellings a log line may carry them."""
    values = [settings.link_secret, *others]
    try:
        values.append(make_url(settings.database_url).password)
    except Exception:  # an unparsable URL holds no password we could find
        pass
    found: set[str] = set()
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            found |= {value, quote(value, safe=""), quote(value)}
    return sorted(found, key=len, reverse=True)  # longest first: no half-redacted remainder


# Every attribute a plain LogRecord has: the rest came in through `extra=`.
STANDARD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in STANDARD_FIELDS}


class RedactSecrets(logging.Filter):
    """Replaces secrets in a record's final text; the record goes on, only its words change.

    The message is formatted here (args merged in) and the traceback rendered to text, so
    formatters and later handlers only ever see the redacted strings.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-arguments: keep what there is rather than drop the record
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        for name, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, name, self.redact(value))
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for a log collector: time (UTC, ISO 8601), level, logger,
    message, then the record's `extra=` fields, and the (redacted) traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(settings: Settings) -> logging.Formatter:
    """LOG_FORMAT: text for a terminal, JSON for production."""
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(FORMAT)


def configure_logging(
    settings: Settings,
    *,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> logging.Handler:
    """Root handler at `level` in the LOG_FORMAT of `settings`, the redacting filter on every
    root handler; quiet loggers.

    Calling it again replaces the handler it installed before (tests, repeated commands).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "bookbot", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.bookbot = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(settings))
    root.addHandler(handler)
    root.setLevel(level)
    redact = RedactSecrets(secrets_of(settings, secrets))
    for each in root.handlers:
        for existing in [f for f in each.filters if isinstance(f, RedactSecrets)]:
            each.removeFilter(existing)
        each.addFilter(redact)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    return handler
