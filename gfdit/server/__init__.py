"""The gfdit server: ROUTER frontend, engine loop, process executor, metrics, hot reload.

See docs/server.md. `Server(config)` builds and runs it; `ServerConfig` says how.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("Server", "ServerConfig"):
        from gfdit.server import config, server

        return {"Server": server.Server, "ServerConfig": config.ServerConfig}[name]
    raise AttributeError(f"module 'gfdit.server' has no attribute {name!r}")
