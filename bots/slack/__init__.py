"""Slack for campus staff (issue 9): settings, the ChatSender, and the app under way."""
