"""The e-mail channel for tests: .eml files in a test's folder, or the real Resend SDK pointed at
`tests.fake_resend.FakeResend`."""

from __future__ import annotations

from pathlib import Path

from bots.email.senders import OutboxFolderSender, ResendSender
from engine.settings import Settings
from tests.fake_resend import FakeResend


def eml(folder: Path, settings: Settings) -> OutboxFolderSender:
    return OutboxFolderSender(folder, settings.email_from)


def resend_to(fake: FakeResend, settings: Settings) -> ResendSender:
    return ResendSender(fake.api_key, settings.email_from, fake.url)
