"""Run the server on uvicorn in a background thread, on a free loopback port.

For notebooks, tests and load tests in one process:

    with BackgroundServer(create_app(embedder)) as server:
        OpenAIEmbeddings(base_url=server.base_url, ...)

`vaembed serve` is the way to run a server on its own.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["BackgroundServer", "wait_for_health"]


class BackgroundServer:
    """A uvicorn server on its own thread; a context manager that starts and stops it.

    Args:
        app: The ASGI application, e.g. from `vaembed.serving.create_app`.
        host: The address to bind (default loopback).
        port: The port; 0 picks a free one.
        start_timeout: Seconds to wait for the server to accept connections.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 60.0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.start_timeout = start_timeout
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`.../v1`)."""
        return f"{self.url}/v1"

    def start(self) -> BackgroundServer:
        """Start serving; returns once the server accepts connections.

        Raises:
            RuntimeError: The server did not start in time (or stopped while starting).
        """
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, name="vaembed-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {self.start_timeout} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def wait_for_health(url: str, process: subprocess.Popen | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """Poll `{url}/health` until the server answers other than `"loading"`; return its JSON.

    Args:
        url: The server's root URL.
        process: The server's process (e.g. `vaembed serve`), to fail early if it exits.
        timeout: Seconds to wait.

    Raises:
        RuntimeError: The process exited, or the server was not loaded in time.
    """
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stderr.read()[-2000:] if process.stderr else ""
            raise RuntimeError(f"the server exited with {process.returncode}: {output}")
        try:
            health = httpx.get(f"{url}/health", timeout=2).json()
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if health.get("status") != "loading":
            return health
        time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not answer /health within {timeout} s")
