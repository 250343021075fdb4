"""One incoming chat event, end to end: de-duplicate, lock the conversation, apply, save, render.

Every front end (console, Telegram, Slack) calls `handle`; state lives in the database, so a
restart or a second bot process continues the same conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from engine import observe
from engine.chat import (
    account_dialogue,
    campus,
    flow,
    notify_dialogue,
    session_dialogue,
    time_off,
)
from engine.chat.catalog import CatalogCache, DbCatalog
from engine.chat.formatting import normalize_locale, viewer_timezone
from engine.chat.screens import Screen, nothing_changed
from engine.chat.views import Viewer
from engine.clock import utc_now as utc_now  # re-exported: front ends import it from here
from engine.followup.join import join_url
from engine.followup.manage import parse_manage
from engine.followup.video import JitsiProvider, VideoProvider
from engine.settings import Settings
from storage.db import is_busy, is_unavailable
from storage.uow import Units, UnitsLike

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class DatabaseUnavailable(Exception):
    """The database could not be reached; the event was not applied and nothing was saved.

    Front ends answer "Unable to book. Please try again." and keep the current screen: the
    stored conversation is unchanged, so the same press works once the database is back.
    """


class DatabaseBusy(DatabaseUnavailable):
    """Another program holds the (SQLite) database's write lock longer than the busy timeout."""


def database_unavailable(error: BaseException) -> bool:
    """Whether a front end's error (from `handle` or any other engine call) is a database outage."""
    return isinstance(error, DatabaseUnavailable) or is_unavailable(error)


class ConversationService:
    def __init__(
        self,
        units: UnitsLike,
        settings: Settings,
        clock: Clock = utc_now,
        video: VideoProvider | None = None,
    ) -> None:
        self.units = Units.of(units)
        self.settings = settings
        self.clock = clock
        self.video = video or JitsiProvider(settings.jitsi_base_url)
        self.cutoff = timedelta(minutes=settings.change_cutoff_minutes)
        seconds = settings.calendar_cache_seconds
        # Shared by every event this service handles; None when switched off.
        self.cache = (
            CatalogCache(ttl=seconds, directory_ttl=max(seconds, 15 * seconds)) if seconds else None
        )

    async def handle(
        self,
        *,
        platform: str,
        chat_id: str,
        user_id: int,
        event: flow.ChatEvent,
        update_id: str | None = None,
        on_loading: Callable[[Screen], Awaitable[None]] | None = None,
        profile_timezone: str | None = None,
    ) -> Screen | None:
        """The new screen, or None when this delivery was already handled (a platform retry).

        `profile_timezone`: the zone the chat platform's profile gives (Slack's `user.tz`); it
        wins over the user's row, as the client shows every other time in it. Raises
        DatabaseUnavailable when the database is down or cut the connection mid-event.
        Every call is reported (engine/observe.py): one log line and the metrics.
        """
        trace = _Trace(time.perf_counter())
        try:
            screen = await self._handle(
                platform,
                chat_id,
                user_id,
                event,
                update_id,
                on_loading,
                profile_timezone,
                trace=trace,
            )
        except asyncio.CancelledError:  # a stop's time limit ran out (bots/shutdown.py)
            trace.outcome = "cancelled"
            raise
        except DatabaseUnavailable as error:
            busy = isinstance(error, DatabaseBusy)
            trace.outcome = "database_busy" if busy else "database_unavailable"
            raise
        except Exception as error:
            if is_busy(error):
                trace.outcome = "database_busy"
                log.warning("%s event for user %s not applied: database busy", platform, user_id)
                raise DatabaseBusy() from error
            if not is_unavailable(error):
                raise
            trace.outcome = "database_unavailable"
            # One line, no trace: an outage would otherwise log a page per event.
            log.warning(
                "%s event for user %s not applied: database unavailable (%s)",
                platform,
                user_id,
                type(error).__name__,
            )
            raise DatabaseUnavailable() from error
        else:
            trace.outcome = "ok" if screen is not None else "duplicate"
            return screen
        finally:
            trace.report(platform, user_id, event)

    def _join_link(self, session_id: int, user_id: int, end: datetime) -> str:
        """The person's /join link: the chat's invite carries the same as the e-mailed one."""
        return join_url(
            self.settings.public_base_url, self.settings.link_secret, session_id, user_id, end
        )

    async def _handle(
        self,
        platform: str,
        chat_id: str,
        user_id: int,
        event: flow.ChatEvent,
        update_id: str | None,
        on_loading: Callable[[Screen], Awaitable[None]] | None,
        profile_timezone: str | None = None,
        *,
        trace: _Trace,
    ) -> Screen | None:
        """One transaction per step; "Book Session" takes two. The first commits the loading
        state (and `booking_attempted`); the loading screen is shown with no transaction open;
        the second books. A crash in between is recovered by the next event (flow.recover)."""
        first = await self._step(
            platform, chat_id, user_id, event, update_id, profile_timezone, trace=trace
        )
        if first is None or not first.proceed:
            return None if first is None else first.screen
        if on_loading is not None:
            try:
                await on_loading(first.screen)
            except Exception as error:  # showing it failed: the booking must still happen
                log.warning(
                    "%s loading screen for user %s not shown (%s)",
                    platform,
                    user_id,
                    type(error).__name__,
                )
        second = await self._step(
            platform, chat_id, user_id, flow.Proceed(), None, profile_timezone, trace=trace
        )
        assert second is not None
        return second.screen

    async def _step(
        self,
        platform: str,
        chat_id: str,
        user_id: int,
        event: flow.ChatEvent,
        update_id: str | None,
        profile_timezone: str | None = None,
        *,
        trace: _Trace,
    ) -> _Stepped | None:
        async with self.units() as uow:
            repo = uow.repo
            if update_id is not None and not await repo.mark_processed(platform, update_id):
                return None
            now = self.clock()
            # Locks the chat's conversation, reads the user, and notes the chat as used (where
            # notices go until the person picks with /notify): one statement.
            conversation, user = await repo.open_conversation(platform, chat_id, user_id, now)
            ctx = flow.Ctx(
                catalog=DbCatalog(
                    uow,
                    [timedelta(minutes=m) for m in self.settings.reminder_offsets_minutes],
                    now,
                    timedelta(hours=self.settings.schedule_later_nudge_hours),
                    shared=self.cache,
                ),
                viewer=Viewer(
                    user.id,
                    user.name,
                    # The zone the chat client shows them (Slack: users.info tz), else
                    # the user's own row, else UTC.
                    viewer_timezone(profile_timezone, user.timezone),
                    normalize_locale(user.locale),
                    user.email,
                ),
                now=now,
                platform=platform,
                coordinator=user.is_coordinator,
                dashboard_url=self.settings.dashboard_url,
                enroll_url=self.settings.enroll_url,
                email_from=self.settings.email_from,
                join_link=self._join_link,
            )
            state = flow.State.from_json(conversation.state)
            trace.at(state.step)
            pressed = isinstance(event, flow.Press)
            account = account_dialogue.Account(repo, platform, chat_id, user.id)
            if isinstance(event, flow.Unlink):
                return _Stepped(await account_dialogue.ask(account))
            if isinstance(event, flow.Press) and event.data in account_dialogue.ANSWERS:
                return _Stepped(await account_dialogue.answer(account, event.data))
            if isinstance(event, flow.Away) or (
                isinstance(event, flow.Press) and time_off.is_answer(event.data)
            ):
                away = time_off.Desk(repo, user.id, now, self.cutoff, ctx.viewer.timezone)
                if isinstance(event, flow.Away):
                    return self._wrote(await time_off.mark(away, event.text))
                return self._wrote(await time_off.answer(away, event.data))
            if isinstance(event, flow.Notify):
                return _Stepped(await notify_dialogue.show(account))
            if isinstance(event, flow.Press) and notify_dialogue.is_answer(event.data):
                return _Stepped(await notify_dialogue.choose(account, event.data))
            if isinstance(event, flow.Press) and campus.is_answer(event.data):
                return self._wrote(
                    await campus.answer(
                        campus.Desk(repo, user.id, now, ctx.viewer.timezone), event.data
                    )
                )
            managed = parse_manage(event.data) if isinstance(event, flow.Press) else None
            if isinstance(event, flow.MySessions | flow.StaffHome) or managed is not None:
                desk = session_dialogue.Desk(
                    repo, user.id, now, self.cutoff, self.video, ctx.viewer.timezone
                )
                if isinstance(event, flow.StaffHome):
                    return _Stepped(await session_dialogue.staff_home(desk))
                if managed is None:
                    return _Stepped(await session_dialogue.my_sessions(desk))
                answer = await session_dialogue.act(*managed, desk)
                if isinstance(answer, Screen):
                    return self._wrote(answer)  # the wizard's state and its buttons stay
                event = answer  # reschedule or schedule now: the wizard starts
            if isinstance(event, flow.Show):
                ctx.notice = event.notice
                shown = await flow.render(state, ctx)
                return _Stepped(replace(shown, nonce=state.nonce))
            new_state = await flow.apply(state, event, ctx)
            trace.applied(new_state.step, ctx)
            if ctx.unchanged:
                # The buttons on screen stay valid: no new nonce, nothing saved.
                return _Stepped(nothing_changed(ctx.notice, toast=pressed, nonce=state.nonce))
            new_state.nonce = state.nonce + 1
            screen = replace(await flow.render(new_state, ctx), nonce=new_state.nonce)
            if pressed and screen.toast is None:
                screen = replace(screen, toast=screen.notice)  # the press is answered with it
            await repo.save_with_events(
                conversation.id,
                new_state.to_json(),
                new_state.nonce,
                user.id,
                ctx.analytics,
                platform,
            )
        return _Stepped(screen, proceed=ctx.proceed)

    def _wrote(self, screen: Screen) -> _Stepped:
        """A dialogue that may have changed calendars (a cancellation, time off): this
        process's shelves forget them, so the next screen shows the change."""
        if self.cache is not None and not screen.unchanged:
            self.cache.changed()
        return _Stepped(screen)


@dataclass
class _Trace:
    """What one `handle` saw, for its report: the wizard's step before and after, its outcome,
    and the booking the event decided, if it booked (counted only once the step committed)."""

    started: float  # time.perf_counter()
    before: str | None = None
    after: str | None = None
    outcome: str = "error"
    booking: tuple[str, str] | None = None

    def at(self, step: flow.Step) -> None:
        self.before = self.before or step.value
        self.after = step.value

    def applied(self, step: flow.Step, ctx: flow.Ctx) -> None:
        self.after = step.value
        if ctx.booked_now is not None:
            self.booking = observe.booking_outcome(None)
        for name, data in ctx.analytics:
            if name == "booking_failed":
                self.booking = observe.booking_outcome(str(data.get("error_type")))

    def report(self, platform: str, user_id: int, event: flow.ChatEvent) -> None:
        elapsed = round((time.perf_counter() - self.started) * 1000, 1)
        kind = observe.event_kind(event)
        observe.update_handled(
            observe.UpdateHandled(
                platform, kind, self.before, self.after, self.outcome, elapsed, user_id
            )
        )
        if self.booking is not None:  # a booking whose step did not commit did not happen
            outcome, reason = self.booking if self.outcome == "ok" else ("error", self.outcome)
            observe.report(observe.BookingDecided(platform, outcome, reason))


@dataclass(frozen=True)
class _Stepped:
    screen: Screen
    proceed: bool = False  # the screen is the loading state; the booking follows
