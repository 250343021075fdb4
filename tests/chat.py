"""A test user who talks to the ConversationService: presses only buttons it was shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.chat import flow
from engine.chat.conversation import ConversationService
from engine.chat.screens import Button, Placement, Screen
from engine.settings import Settings
from tests.factories import NOW


def plain(label: str) -> str:
    """Babel puts narrow no-break spaces in times ("10:00 AM"); tests type plain spaces."""
    return label.replace("\u202f", " ").replace("\xa0", " ")


@dataclass
class Chat:
    factory: async_sessionmaker[AsyncSession]
    user_id: int
    chat_id: str = "chat-1"
    platform: str = "test"
    now: datetime = NOW
    screens: list[Screen] = field(default_factory=list)
    loading: list[Screen] = field(default_factory=list)

    @property
    def service(self) -> ConversationService:
        return ConversationService(self.factory, Settings(), clock=lambda: self.now)

    @property
    def screen(self) -> Screen:
        return self.screens[-1]

    async def send(self, event: flow.Event, update_id: str | None = None) -> Screen | None:
        async def on_loading(screen: Screen) -> None:
            self.loading.append(screen)

        screen = await self.service.handle(
            platform=self.platform,
            chat_id=self.chat_id,
            user_id=self.user_id,
            event=event,
            update_id=update_id,
            on_loading=on_loading,
        )
        if screen is not None and not screen.unchanged and screen.placement is Placement.WIZARD:
            # An unchanged answer (a stale press, text after a final screen) is a notice
            # only, and a session dialogue answers outside the wizard: the wizard stays.
            self.screens.append(screen)
        return screen

    async def start(self, **kwargs: object) -> Screen:
        screen = await self.send(flow.Start(**kwargs))  # type: ignore[arg-type]
        assert screen is not None
        return screen

    def button(self, label: str) -> Button:
        for button in self.screen.all_buttons():
            if plain(button.label) == label:
                return button
        shown = [plain(b.label) for b in self.screen.all_buttons()]
        raise AssertionError(f"no button {label!r} on {self.screen.step}: {shown}")

    async def press(self, label: str) -> Screen:
        button = self.button(label)
        assert button.enabled and button.action is not None, f"{label} is inert"
        screen = await self.send(flow.Press(self.screen.data(button)))
        assert screen is not None
        return screen

    async def type(self, text: str) -> Screen:
        screen = await self.send(flow.Text(text))
        assert screen is not None
        return screen

    def labels(self) -> list[str]:
        return [plain(b.label) for b in self.screen.all_buttons() if b.enabled]

    def text(self) -> str:
        return plain(self.screen.text)
