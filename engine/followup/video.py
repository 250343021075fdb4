"""Video rooms on demand (spec: "VideoProvider room created on-demand at session time")."""

from __future__ import annotations

import secrets
from typing import Protocol
from urllib.parse import quote


class VideoProvider(Protocol):
    async def create_room(self, session_id: int) -> str:
        """Create (or reserve) a room and return the URL both people join."""
        ...


class JitsiProvider:
    """Jitsi Meet needs no API call or key: a room exists once someone opens its URL.

    The name carries 128 random bits, so nobody finds a session's room by guessing.
    """

    def __init__(self, base_url: str = "https://meet.jit.si") -> None:
        self.base_url = base_url.rstrip("/")

    async def create_room(self, session_id: int) -> str:
        name = f"Tutoring-{session_id}-{secrets.token_urlsafe(16)}"
        return f"{self.base_url}/{quote(name)}"
