"""Today across campus in the Slack app, end to end: the real bolt app behind aiohttp and the
real slack_sdk against the fake Slack, on PostgreSQL. A coordinator, matched by their verified
e-mail, opens App Home, sees today's sessions by course and the possible no-show, cancels it
with a reason, and the student and the ST are told; an ST's App Home has no campus section."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from engine.chat import messages as m
from engine.followup.dispatch import Dispatcher
from engine.followup.reminders import Worker, WorkerSettings
from engine.followup.video import JitsiProvider
from engine.settings import Settings
from storage.jobs import Job
from storage.models import ReminderJob, Session
from storage.repositories import Repo
from tests import test_slack_app
from tests.factories import NOW
from tests.fake_slack import FakeSlack
from tests.slack_requests import app_home_opened, block_actions
from tests.test_campus import Campus, add_session, make_campus
from tests.test_slack_app import SECRET, Factory, Slack
from tests.test_slack_booking import Staff
from tests.test_slack_sender import sender_for

slack = test_slack_app.slack  # the app behind aiohttp against the fake Slack, as a fixture here

CASEY = "U0CASEY"
ADA = "U0ADA"
SAM = "U0SAM"
NO_SHOW_START = NOW - timedelta(minutes=30)  # 7:30 AM: under way, nobody opened the room
CANCEL_LABEL = "Cancel 7:30 AM Sam Student"


async def _campus(slack: Slack, pg: Factory) -> tuple[Campus, int]:
    """Casey coordinates; Sam and Ada's 7:30 session is a possible no-show; Pat has Organic
    Chemistry with Chen at 10:00. Casey and Ada are in Slack with the addresses the platform
    knows, and Slack shows them UTC (App Home, like the wizard, uses the Slack profile's zone)."""
    c = await make_campus(pg)
    sam, ada = c.world.student, c.world.teachers[0]
    session_id = await add_session(pg, c.world.course.id, sam, ada, NO_SHOW_START)
    await add_session(pg, c.world.other_course.id, c.pat, c.chen, NOW.replace(hour=10))
    slack.fake.add_user(CASEY, "casey", email=c.casey.email, tz="UTC")
    slack.fake.add_user(ADA, "ada", email=ada.email, tz="UTC")
    return c, session_id


async def _open_home(slack: Slack, user: str) -> dict[str, Any]:
    opened = app_home_opened(SECRET, user_id=user, channel_id=slack.fake.dm(user).id)
    status, _ = await opened.post(slack.http, slack.url)
    assert status == 200
    await slack.fake.wait_until(lambda: user in slack.fake.home_views)
    return slack.fake.home_views[user]


def _shown(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False).replace("\u202f", " ")


async def _click_home(slack: Slack, user: str, view: dict[str, Any], label: str) -> int:
    """A click on a button of the user's App Home, as Slack sends it: a view, no channel."""
    action_id = next(
        element["action_id"]
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"].replace("\u202f", " ") == label
    )
    request = block_actions(
        SECRET, user_id=user, trigger_id=slack.fake.trigger_id(), action_id=action_id, view=view
    )
    status, _ = await request.post(slack.http, slack.url)
    return status


async def test_a_coordinators_app_home_shows_today_across_campus_and_an_sts_does_not(
    slack: Slack, pg: Factory
) -> None:
    await _campus(slack, pg)
    home = _shown(await _open_home(slack, CASEY))
    for shown in (
        m.CAMPUS_TODAY,
        "Wednesday, November 25 (times in UTC)",
        m.CAMPUS_NO_SHOWS,
        m.CAMPUS_NO_SHOWS_WHY.format(minutes=10),
        "7:30 AM: Calculus I, Sam Student with Ada Lovelace",
        "*Calculus I*",
        "7:30 AM: Sam Student with Ada Lovelace",
        "*Organic Chemistry*",
        "10:00 AM: Pat Pupil with Chen Wei",
        CANCEL_LABEL,
        "Cancel 10:00 AM Pat Pupil",
    ):
        assert shown in home, shown
    assert m.HOME_HOURS not in home  # Casey teaches nothing: no empty hours of their own
    ada_home = _shown(await _open_home(slack, ADA))
    assert "7:30 AM: Calculus I with Sam Student" in ada_home  # her own day
    assert m.CAMPUS_TODAY not in ada_home and m.CAMPUS_NO_SHOWS not in ada_home


async def test_a_coordinator_cancels_a_possible_no_show_from_app_home_and_both_are_told(
    slack: Slack, pg: Factory
) -> None:
    c, session_id = await _campus(slack, pg)
    sam, ada = c.world.student, c.world.teachers[0]
    home = await _open_home(slack, CASEY)
    published = len(slack.fake.calls_to("views.publish"))
    # App Home cannot hold a question: the press answers in a modal opened with its trigger.
    assert await _click_home(slack, CASEY, home, CANCEL_LABEL) == 200
    casey = Staff(slack, CASEY)
    casey.view_id = slack.fake.calls_to("views.open")[-1].response["view"]["id"]  # type: ignore[index]
    assert casey.text().startswith("*Why cancel the Calculus I session of Sam Student")
    assert await casey.click(m.REASON_NO_SHOW) == 200
    assert "Reason: " + m.REASON_NO_SHOW_TEXT in casey.text()
    assert await casey.click(m.YES_CANCEL) == 200
    assert "both have been told" in casey.text()
    # App Home is published again, without the session.
    assert len(slack.fake.calls_to("views.publish")) > published
    assert CANCEL_LABEL not in _shown(slack.fake.home_views[CASEY])
    async with pg() as session:
        stored = await session.get(Session, session_id)
        assert stored is not None
        assert (stored.status, stored.cancelled_by, stored.cancel_reason) == (
            "cancelled",
            c.casey.id,
            m.REASON_NO_SHOW_TEXT,
        )
        kinds = set(await session.scalars(select(ReminderJob.kind)))
    assert {Job.cancelled_chat(p).format() for p in (sam.id, ada.id)} <= kinds
    assert {Job.cancelled_email(p).format() for p in (sam.id, ada.id)} <= kinds

    # The worker tells both on Slack: Sam (linked here) and Ada (matched when she used the app).
    fake: FakeSlack = slack.fake
    fake.add_user(SAM, "sam")
    sam_dm = fake.dm(SAM).id
    async with pg() as session, session.begin():
        await Repo(session).link_identity("slack", SAM, sam.id, sam_dm)
    await _open_home(slack, ADA)
    dispatcher = Dispatcher(pg, Settings(), [sender_for(fake)], None, JitsiProvider())
    worker = Worker(pg, dispatcher, WorkerSettings(), lambda: NOW + timedelta(minutes=1))
    while await worker.run_once():
        pass
    for person_dm in (sam_dm, fake.dm(ADA).id):
        notice = fake.last_message(person_dm).text
        assert "Casey Coordinator cancelled the Calculus I session" in notice
        assert "Reason: " + m.REASON_NO_SHOW_TEXT in notice
    again = [
        e["text"]["text"]
        for b in fake.last_message(sam_dm).blocks
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert again == [m.BOOK_ANOTHER_TIME]


async def test_app_home_is_in_the_zone_slack_shows_the_person(slack: Slack, pg: Factory) -> None:
    await _campus(slack, pg)
    slack.fake.users[CASEY].tz = "Asia/Tokyo"  # 8:00 UTC is 5:00 PM in Tokyo
    home = _shown(await _open_home(slack, CASEY))
    assert "Wednesday, November 25 (times in Asia/Tokyo)" in home
    assert "4:30 PM: Calculus I, Sam Student with Ada Lovelace" in home
