"""Where the server listens: checked before any worker starts, refused with a clear reason.

A second `gfdit serve` on a busy address, or a `--metrics-port` in use, fails at
once with "address in use" instead of starting its workers first (and, before
this check, hanging in `zmq_ctx_term` on the half-built socket).
"""

from __future__ import annotations

import errno
import socket

import zmq

from gfdit.server.access import AccessError


def bind_router(ctx: zmq.Context, address: str, options: dict[int, int] | None = None) -> zmq.Socket:
    """A ROUTER with `options` set, bound to `address`; or AccessError saying why (the
    socket is closed, not leaked: a leaked socket would hang the context's term)."""
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    for option, value in (options or {}).items():
        router.setsockopt(option, value)
    try:
        router.bind(address)
    except zmq.ZMQError as exc:
        router.close(0)
        raise AccessError(_why(address, exc.errno, exc.strerror)) from None
    return router


def check_free(address: str, metrics_host: str, metrics_port: int | None) -> None:
    """Bind and release the client address and the metrics port; AccessError if either is taken."""
    ctx = zmq.Context()
    try:
        bind_router(ctx, address).close(0)
    finally:
        ctx.term()
    if metrics_port:  # None: no metrics; 0: any free port
        with socket.socket(socket.AF_INET6 if ":" in metrics_host else socket.AF_INET) as probe:
            try:
                probe.bind((metrics_host, metrics_port))
            except OSError as exc:
                raise AccessError("--metrics-port " + _why(f"{metrics_host}:{metrics_port}", exc.errno,
                                                          exc.strerror)) from None


def _why(address: str, code: int | None, text: str) -> str:
    if code == errno.EADDRINUSE:
        return f"{address}: address in use (another gfdit serve, or another program, listens there)"
    return f"cannot listen on {address}: {text}"
