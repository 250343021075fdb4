"""The Slack app manifest creates the app this code serves: the same slash commands, the event it
listens to, one request URL, and the scopes of every Web API method it calls."""

from __future__ import annotations

import json
from pathlib import Path

from bots.slack.app import COMMANDS, EVENTS_PATH

MANIFEST = Path(__file__).parent.parent / "bots" / "slack" / "manifest.yaml"


def test_the_manifest_matches_the_app() -> None:
    manifest = json.loads(MANIFEST.read_text())  # JSON is YAML, and needs no YAML parser here
    features, settings = manifest["features"], manifest["settings"]
    commands = {c["command"] for c in features["slash_commands"]}
    assert commands == {*COMMANDS, "/away", "/book"}
    urls = {c["url"] for c in features["slash_commands"]}
    urls |= {settings["event_subscriptions"]["request_url"]}
    urls |= {settings["interactivity"]["request_url"]}
    # The student search (external_select) asks for its options at this URL.
    urls |= {settings["interactivity"]["message_menu_options_url"]}
    assert urls == {f"https://YOUR-HOST{EVENTS_PATH}"}
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert features["app_home"]["home_tab_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # chat.postMessage/update/postEphemeral, conversations.open (DMs), users.info with the
    # verified e-mail that matches staff, files for the .ics.
    assert {"commands", "chat:write", "im:write", "users:read", "users:read.email"} <= scopes
    assert len(manifest["display_information"]["name"]) <= 35
