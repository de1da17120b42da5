"""Any ASGI app on a real socket, from a background thread (as the emulator's own server)."""

from __future__ import annotations

import contextvars
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from scenario_emulator.server import _bind


@contextmanager
def serve(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve ``app`` on ``sock`` or 127.0.0.1 (a free port); yield ``http://127.0.0.1:PORT``."""
    sock = sock or _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    # The server's thread runs in a copy of this context: Prefect's settings (a temporary
    # PREFECT_API_URL, say) live in a context variable, and a bare thread would not see them,
    # so the receiver would look for waiting runs on another Prefect server.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(server.run,), kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Recorder:
    """A receiving end that records each POST's JSON and answers ``statuses`` in turn (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.bodies: list[Any] = []
        self.changed = threading.Condition()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = self.statuses.pop(0) if self.statuses else 200
        with self.changed:
            self.bodies.append(json.loads(body or b"null"))
            self.changed.notify_all()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Any]:
        """The first ``count`` bodies, once they arrived (fails after ``timeout`` seconds)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.bodies) >= count, timeout), self.bodies
            return list(self.bodies)
