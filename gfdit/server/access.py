"""Who may talk to the server: loopback by default, a shared token elsewhere.

Binding to a non-loopback address needs an explicit `allow_remote` and a token;
every client message must then carry that token (compared in constant time).
A token set on a loopback server is enforced as well.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlparse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class AccessError(ValueError):
    """The server's address and access settings are unsafe or malformed."""


def is_local(address: str) -> bool:
    """True for tcp loopback, ipc:// and inproc:// addresses."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        raise AccessError(f"unsupported address {address!r}: use tcp://HOST:PORT, ipc:// or inproc://")
    host = urlparse(address).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_bind(address: str, allow_remote: bool, token: str) -> None:
    """Refuse a non-loopback bind unless explicitly allowed and protected by a token."""
    if is_local(address):
        return
    if not allow_remote:
        raise AccessError(f"{address} is not a loopback address; pass --allow-remote (with --token) to listen there")
    if len(token) < 16:
        raise AccessError("listening beyond loopback needs a shared --token of at least 16 characters")


class TokenCheck:
    """Constant-time comparison of a message's token with the server's."""

    def __init__(self, token: str):
        self._token = token.encode()

    def allows(self, presented: str) -> bool:
        return not self._token or hmac.compare_digest(self._token, presented.encode())
