"""The gfdit Python client: `Client(address)` and its typed errors."""

from gfdit.client.client import DEFAULT_ADDRESS, Client
from gfdit.client.commands import reload_policy_cli
from gfdit.client.errors import (
    GfditError,
    RequestCancelled,
    RequestFailed,
    RequestRejected,
    ServerError,
    ServerGone,
    ServerRestarted,
)
from gfdit.client.handle import RequestHandle
from gfdit.client.result import GenerationResult, Output

__all__ = [
    "Client", "DEFAULT_ADDRESS", "GenerationResult", "GfditError", "Output", "RequestCancelled",
    "RequestFailed", "RequestHandle", "RequestRejected", "ServerError", "ServerGone",
    "ServerRestarted", "reload_policy_cli",
]
