"""Where a command takes the shared token from: a file, the environment, or (warned) argv.

    --token-file FILE   a regular file holding the token (warned when group/other may read it)
    $GFDIT_TOKEN        the environment (readable only by the same user, unlike argv)
    --token T           still accepted, with a warning: every local user sees it in `ps`

Used by `gfdit serve` and by every client command. Several hosts have a node token of
their own (`--node-token-file` or `$GFDIT_NODE_TOKEN`, on `gfdit serve` and `gfdit worker`;
never on the command line): without one the node agents prove the client token.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys

from gfdit.regular_file import FileRefused, read_regular_file

ENV = "GFDIT_TOKEN"
NODE_ENV = "GFDIT_NODE_TOKEN"
MAX_TOKEN_FILE_BYTES = 4096


class TokenError(ValueError):
    """The token cannot be read as asked (the message says which and why)."""


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", default=None, metavar="FILE",
                        help=f"read the shared token from FILE (a regular file, mode 0600); or set ${ENV}")
    parser.add_argument("--token", default=None,
                        help=f"the shared token itself (visible to every local user in `ps`: prefer --token-file or ${ENV})")


def resolve_token(args: argparse.Namespace, prog: str) -> str:
    """The token from --token-file, --token or $GFDIT_TOKEN ("" when none); warnings go to stderr."""
    given, path = getattr(args, "token", None), getattr(args, "token_file", None)
    if given is not None and path is not None:
        raise TokenError("give --token or --token-file, not both")
    if path is not None:
        return read_token_file(path, prog)
    if given is not None:
        print(f"{prog}: warning: --token is visible to every local user in `ps`; "
              f"use --token-file FILE or ${ENV}", file=sys.stderr)
        return given
    return os.environ.get(ENV, "")


def add_node_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-token-file", default=None, metavar="FILE",
                        help=f"several hosts: read the node token (what the head and its node agents prove to "
                             f"each other) from FILE; or set ${NODE_ENV}; else the client token is used")


def resolve_node_token(args: argparse.Namespace, prog: str, config_path: str | None = None) -> str:
    """The node token from --node-token-file, else `config_path`, else $GFDIT_NODE_TOKEN ("" when none)."""
    path = getattr(args, "node_token_file", None) or config_path
    if path is not None:
        return read_token_file(path, prog)
    return os.environ.get(NODE_ENV, "")


def read_token_file(path: str, prog: str) -> str:
    """The stripped contents of a regular file; refuses anything else, warns on loose modes."""
    try:
        data, mode = read_regular_file(path, MAX_TOKEN_FILE_BYTES)
    except FileRefused as exc:
        raise TokenError(_REFUSED[exc.kind](path, exc.detail)) from None
    if mode & 0o077:
        print(f"{prog}: warning: token file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
              f"chmod 600 it", file=sys.stderr)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise TokenError(f"token file {path} is not UTF-8 text") from None
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


_REFUSED = {
    "open": lambda path, why: f"cannot open token file {path}: {why}",
    "not_regular": lambda path, _: f"token file {path} is not a regular file",
    "too_big": lambda path, size: f"token file {path} is {size} bytes; a token is at most {MAX_TOKEN_FILE_BYTES}",
    "grew": lambda path, _: f"token file {path} grew past {MAX_TOKEN_FILE_BYTES} bytes while being read",
}
