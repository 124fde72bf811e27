"""`HTTPGateway`: the app under uvicorn on its own thread, bound by the server's rules.

Loopback by default; any other host needs `allow_remote` and a token of at least 16
characters, exactly like the ZeroMQ address (`gfdit.server.access.check_bind`). The
socket is bound in the constructor, so a busy port fails at once ("address in use")
and port 0 gives a free one (`.port`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from gfdit.server.access import AccessError, check_bind

log = logging.getLogger("gfdit.http")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or AccessError saying why."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without, a keep-alive client waits ~40 ms per response
    # (the body's write held back until the client's delayed ACK of the headers)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "address in use" if exc.errno == 98 else exc.strerror
        raise AccessError(f"--http-port: cannot listen on {host}:{port}: {why}") from None
    return sock


class HTTPGateway:
    """Serves the OpenAI-compatible API for the gfdit server at `server_address`."""

    def __init__(self, server_address: str, host: str = "127.0.0.1", port: int = 0, *, token: str = "",
                 allow_remote: bool = False):
        check_bind(f"tcp://{host}:{port}", allow_remote, token)
        self.server_address, self.host, self.token = server_address, host, token
        self._sock = bind_socket(host, port)
        self.port = self._sock.getsockname()[1]
        self._server = None
        self._thread: threading.Thread | None = None
        self._client = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> "HTTPGateway":
        import uvicorn

        from gfdit.client import Client
        from gfdit.http.app import create_app
        from gfdit.http.gateway import Gateway

        self._client = Client(self.server_address, token=self.token, timeout=30)
        app = create_app(Gateway(self._client, token=self.token))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gfdit-http", daemon=True)
        self._thread.start()
        log.info("OpenAI-compatible HTTP on %s (server %s)", self.url, self.server_address)
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def serve_forever(self) -> None:
        """Block until `close()` (the `gfdit gateway` command)."""
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()
        if self._client is not None:
            self._client.close()
