"""Pacing Slack Web API calls per method tier, and 429 Retry-After honoured for every caller.

The bucket arithmetic on plain numbers (every tier, and a hypothesis property over any call
times and pauses); the pacer on a fake clock; then the real slack_sdk client built by
`make_client` against the fake Slack, with the pacer's clock and sleep faked so that a
Retry-After costs no real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.slack.client import LONGEST_RETRY_WAIT, PacedWebClient, make_client, workspace_pacer
from bots.slack.pacing import (
    DEFAULT_TIER,
    METHOD_TIERS,
    POST_MESSAGE,
    TIER_1,
    TIER_2,
    TIER_3,
    TIER_4,
    Bucket,
    Pacer,
    Tier,
)
from bots.slack.settings import SlackSettings
from tests.factories import NOW
from tests.fake_slack import UPLOAD, FakeSlack
from tests.test_outbox import FakeTime

Factory = async_sessionmaker[AsyncSession]
TIERS = [TIER_1, TIER_2, TIER_3, TIER_4, POST_MESSAGE]
EPSILON = 1e-6
ADA = "U0ADA"


def reserve_all(tier: Tier, times: list[float]) -> list[float]:
    bucket = Bucket(tier)
    return [bucket.reserve(now) for now in times]


# -- the table -------------------------------------------------------------------------------


def test_every_method_this_app_calls_has_its_documented_tier() -> None:
    by_tier = {t.name: sorted(m for m, tier in METHOD_TIERS.items() if tier is t) for t in TIERS}
    assert by_tier == {
        "Tier 1": ["apps.connections.open"],
        "Tier 2": [],
        "Tier 3": ["chat.update", "conversations.open", "users.lookupByEmail"],
        "Tier 4": [
            "auth.test",
            "chat.postEphemeral",
            "files.completeUploadExternal",
            "files.getUploadURLExternal",
            "users.info",
            "views.open",
            "views.publish",
            "views.update",
        ],
        "chat.postMessage, per channel": ["chat.postMessage"],
    }
    assert [t.per_minute for t in (TIER_1, TIER_2, TIER_3, TIER_4)] == [1, 20, 50, 100]
    assert POST_MESSAGE.interval == 1.0  # about one message a second per channel


# -- the bucket ------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.name)
def test_a_burst_goes_at_once_and_the_next_call_waits_one_interval(tier: Tier) -> None:
    starts = reserve_all(tier, [100.0] * (tier.burst + 2))
    assert starts[: tier.burst] == [100.0] * tier.burst
    assert starts[tier.burst :] == pytest.approx([100.0 + tier.interval, 100.0 + 2 * tier.interval])


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.name)
def test_calls_at_the_steady_rate_never_wait(tier: Tier) -> None:
    times = [i * tier.interval for i in range(3 * tier.burst + 5)]
    assert reserve_all(tier, times) == pytest.approx(times)


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.name)
def test_an_idle_bucket_refills_to_its_burst_and_no_further(tier: Tier) -> None:
    bucket = Bucket(tier)
    for _ in range(tier.burst):
        bucket.reserve(0.0)
    later = 1000 * tier.interval  # idle for far longer than a refill takes
    starts = [bucket.reserve(later) for _ in range(tier.burst + 1)]
    assert starts == pytest.approx([later] * tier.burst + [later + tier.interval])


def test_the_views_methods_never_hold_back_a_person_clicking() -> None:
    """A trigger_id lives three seconds: a click a second for twenty seconds never waits."""
    for method in ("views.open", "views.update", "views.publish"):
        times = [float(second) for second in range(20)]
        assert reserve_all(METHOD_TIERS[method], times) == times


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.name)
def test_a_pause_holds_every_call_then_lets_one_through_per_interval(tier: Tier) -> None:
    bucket = Bucket(tier)
    bucket.pause(10.0, 5.0)
    starts = [bucket.reserve(11.0) for _ in range(3)]
    assert starts == pytest.approx([15.0, 15.0 + tier.interval, 15.0 + 2 * tier.interval])


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    bucket = Bucket(TIER_4)
    bucket.pause(0.0, 30.0)
    bucket.pause(1.0, 2.0)
    assert bucket.paused_until == 30.0
    assert bucket.reserve(2.0) == 30.0


calls_and_pauses = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=90, allow_nan=False),  # seconds since the previous
        st.none() | st.floats(min_value=0, max_value=60, allow_nan=False),  # a 429's pause
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(tier=st.sampled_from(TIERS), events=calls_and_pauses)
def test_no_window_ever_holds_more_than_the_burst_plus_the_tiers_rate(
    tier: Tier, events: list[tuple[float, float | None]]
) -> None:
    """Over any call times and any 429 pauses: within every window of T seconds at most
    `burst + T * per_minute / 60` calls go (so at most burst + per_minute in any minute), no
    call goes before it was made, and none inside a pause that was known when it was made."""
    bucket = Bucket(tier)
    now = 0.0
    starts: list[float] = []
    for gap, pause in events:
        now += gap
        if pause is not None:
            bucket.pause(now, pause)
        held_until = bucket.paused_until
        start = bucket.reserve(now)
        assert start >= now and start >= held_until
        starts.append(start)
    assert starts == sorted(starts)
    for first in range(len(starts)):
        for last in range(first, len(starts)):
            window = starts[last] - starts[first]
            assert last - first + 1 <= tier.burst + window / tier.interval + EPSILON


# -- the pacer -------------------------------------------------------------------------------


def test_buckets_are_per_method_and_per_channel_only_for_chat_post_message() -> None:
    pacer = Pacer()
    assert pacer.bucket("chat.postMessage", "D1") is not pacer.bucket("chat.postMessage", "D2")
    assert pacer.bucket("chat.update", "D1") is pacer.bucket("chat.update", "D2")
    assert pacer.bucket("views.open") is not pacer.bucket("views.update")
    assert pacer.bucket("some.newMethod").tier == DEFAULT_TIER


async def test_the_pacer_sleeps_only_once_a_bucket_is_empty() -> None:
    time = FakeTime()
    pacer = Pacer(clock=time, sleep=time.sleep)
    for _ in range(POST_MESSAGE.burst):
        await pacer.wait("chat.postMessage", "D1")
    assert time.sleeps == []
    await pacer.wait("chat.postMessage", "D1")
    assert time.sleeps == [1.0]
    await pacer.wait("chat.postMessage", "D2")  # another DM: its own second
    assert time.sleeps == [1.0]


async def test_a_pause_holds_its_method_and_for_chat_post_message_only_its_channel() -> None:
    time = FakeTime()
    pacer = Pacer(clock=time, sleep=time.sleep)
    pacer.pause("chat.postMessage", "D1", 7.0)
    pacer.pause("users.info", None, 3.0)
    await pacer.wait("chat.postMessage", "D2")
    await pacer.wait("views.open")
    assert time.sleeps == []
    await pacer.wait("users.info")
    await pacer.wait("chat.postMessage", "D1")
    assert time.sleeps == [3.0, 4.0] and time.now == 7.0


async def test_a_caller_waiting_its_turn_when_a_429_arrives_queues_again_behind_the_pause() -> None:
    def a_429_meanwhile(slept: float) -> None:
        if len(time.sleeps) == 1:
            pacer.pause("chat.postMessage", "D1", 5.0)

    time = FakeTime(on_sleep=a_429_meanwhile)
    pacer = Pacer(clock=time, sleep=time.sleep)
    for _ in range(POST_MESSAGE.burst):
        await pacer.wait("chat.postMessage", "D1")
    await pacer.wait("chat.postMessage", "D1")  # its turn at 1.0; a 429 at 1.0 says "wait 5"
    assert time.sleeps == [1.0, 5.0] and time.now == 6.0


# -- the real client against the fake Slack --------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        slack.add_user(ADA, "ada")
        yield slack


def paced(fake: FakeSlack) -> tuple[PacedWebClient, FakeTime]:
    time = FakeTime()
    slack = SlackSettings(bot_token=fake.token, api_url=fake.base_url)
    client = make_client(slack, pacer=Pacer(clock=time, sleep=time.sleep))
    assert isinstance(client, PacedWebClient)
    return client, time


def outcomes(fake: FakeSlack, method: str) -> list[int]:
    return [call.status for call in fake.calls_to(method)]


async def test_a_429_is_retried_after_its_retry_after_and_succeeds(fake: FakeSlack) -> None:
    client, time = paced(fake)
    dm = fake.dm(ADA).id
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    reply = await client.chat_postMessage(channel=dm, text="Reminder")
    assert reply["ok"] is True
    assert outcomes(fake, "chat.postMessage") == [429, 200]
    assert time.sleeps == [1.0]  # the pause, then the retry in its turn
    assert [m.text for m in fake.messages(dm)] == ["Reminder"]


async def test_the_pacer_holds_back_calls_past_the_burst_before_they_leave(
    fake: FakeSlack,
) -> None:
    client, time = paced(fake)
    dm = fake.dm(ADA).id
    for n in range(POST_MESSAGE.burst + 2):
        await client.chat_postMessage(channel=dm, text=f"message {n}")
    assert time.sleeps == [1.0, 1.0]
    assert outcomes(fake, "chat.postMessage") == [200] * (POST_MESSAGE.burst + 2)


async def test_a_long_retry_after_is_raised_but_still_holds_back_the_next_caller(
    fake: FakeSlack,
) -> None:
    """Over LONGEST_RETRY_WAIT the caller hears the 429 (the worker reschedules); the method
    stays paused, so the next call waits for the rest of it, and other methods do not."""
    client, time = paced(fake)
    wait = int(LONGEST_RETRY_WAIT) + 10
    fake.fail_next("users.info", status=429, retry_after=wait)
    with pytest.raises(SlackApiError) as caught:
        await client.users_info(user=ADA)
    assert caught.value.response.status_code == 429
    await client.conversations_open(users=ADA)
    assert time.sleeps == []
    assert (await client.users_info(user=ADA))["user"]["id"] == ADA
    assert time.sleeps == [float(wait)]
    assert outcomes(fake, "users.info") == [429, 200]


async def test_a_429_on_a_files_upload_is_waited_out_too(fake: FakeSlack) -> None:
    """The bytes go to upload_url, not to a Web API method: the pacer only sleeps."""
    client, time = paced(fake)
    dm = fake.dm(ADA).id
    fake.fail_next(UPLOAD, status=429, retry_after=2)
    await client.files_upload_v2(channel=dm, filename="session.ics", content=b"BEGIN:VCALENDAR")
    assert outcomes(fake, UPLOAD) == [429, 200]
    assert time.sleeps == [2.0]
    assert fake.last_message(dm).files[0]["name"] == "session.ics"


def test_one_pacer_per_workspace_and_the_client_keeps_the_settings_url_and_token() -> None:
    first = SlackSettings(bot_token="xoxb-one", api_url="http://127.0.0.1:9/api/")
    again = SlackSettings(bot_token="xoxb-one", api_url="http://127.0.0.1:9/api/")
    other = SlackSettings(bot_token="xoxb-two", api_url="http://127.0.0.1:9/api/")
    assert workspace_pacer(first) is workspace_pacer(again)
    assert workspace_pacer(first) is not workspace_pacer(other)
    client = make_client(first)
    assert isinstance(client, PacedWebClient) and client.pacer is workspace_pacer(first)
    assert (client.base_url, client.token) == ("http://127.0.0.1:9/api/", "xoxb-one")


async def test_the_app_and_the_worker_sender_share_the_workspaces_paced_client(
    fake: FakeSlack, pg: Factory
) -> None:
    from bots.slack.app import build_slack_app
    from bots.slack.platform import slack_platform
    from bots.slack.sender import SlackSender
    from engine.settings import Settings

    slack = SlackSettings(bot_token=fake.token, signing_secret="s" * 32, api_url=fake.base_url)
    platform = slack_platform(slack, Settings(), pg, clock=lambda: NOW)
    app = build_slack_app(Settings(), slack, pg)
    assert isinstance(platform.sender, SlackSender)
    for client in (platform.sender.client, app.client):
        assert isinstance(client, PacedWebClient)
        assert client.pacer is workspace_pacer(slack) and client.base_url == fake.base_url
