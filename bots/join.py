"""`GET /join/<token>` on `bookbot serve`: the join links of e-mails and calendar invites.

Only translation lives here: the token goes to the engine (engine/followup/join.py decides and
writes the pages), its answer becomes a 303 to the video room or a small HTML page. Every answer
is `Cache-Control: no-store`: what the link does changes with the clock and the session, and a
cached redirect would outlive a cancellation.

The token is a bearer credential for the room, so it is never logged: our lines name the session
id only, and aiohttp's access log line has it replaced (`_HideJoinTokens`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from engine.chat.conversation import database_unavailable
from engine.clock import utc_now
from engine.followup.join import JOIN_PATH, GoToRoom, PageKind, follow_join_link, render_join_page
from engine.followup.video import VideoProvider
from engine.settings import Settings
from storage.uow import UnitsLike

__all__ = ["join_routes"]

log = logging.getLogger(__name__)

_STATUS: dict[PageKind, int] = {
    "not_yet": 200,
    "cancelled": 410,  # Gone: that session's room will never open again
    "ended": 410,
    "not_found": 404,
    "unavailable": 503,
}
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not travel on to the video service
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}
_TOKEN_IN_PATH = re.compile(re.escape(JOIN_PATH) + r"[^\s\"?/]+")
_REDACTED = JOIN_PATH + "<token>"


class _HideJoinTokens(logging.Filter):
    """Replaces the token in aiohttp's access log line (and its `extra` fields, which a JSON
    formatter may print) before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if JOIN_PATH in message:
            record.msg, record.args = _TOKEN_IN_PATH.sub(_REDACTED, message), ()
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and JOIN_PATH in value:
                setattr(record, name, _TOKEN_IN_PATH.sub(_REDACTED, value))
        return True


def _hide_tokens_in_access_log() -> None:
    access = logging.getLogger("aiohttp.access")
    if not any(isinstance(f, _HideJoinTokens) for f in access.filters):
        access.addFilter(_HideJoinTokens())


def join_routes(
    settings: Settings,
    units: UnitsLike,
    video: VideoProvider,
    clock: Callable[[], datetime] = utc_now,
) -> list[web.RouteDef]:
    """The join route, with rooms made by `video` (bookbot serve: Jitsi, like the worker)."""
    _hide_tokens_in_access_log()

    async def join(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            outcome = await follow_join_link(units, token, settings.link_secret, clock(), video)
        except Exception as error:
            if not database_unavailable(error):
                raise
            log.warning("join link: database unavailable")
            page = render_join_page("unavailable")
            headers = {**_HEADERS, "Retry-After": "30"}
            return web.Response(status=503, text=page, content_type="text/html", headers=headers)
        if isinstance(outcome, GoToRoom):
            log.info("join link: session %s, to its video room", outcome.session_id)
            return web.Response(status=303, headers={**_HEADERS, "Location": outcome.url})
        if outcome.session_id is None:
            log.info("join link refused: %s", outcome.why)
        else:
            why = f" ({outcome.why})" if outcome.why else ""
            log.info("join link: session %s, %s page%s", outcome.session_id, outcome.kind, why)
        return web.Response(
            status=_STATUS[outcome.kind],
            text=outcome.html,
            content_type="text/html",
            headers=_HEADERS,
        )

    # Everything under /join/ (also an empty or slashed token) gets our 404 page.
    return [web.get(JOIN_PATH + "{token:.*}", join)]
