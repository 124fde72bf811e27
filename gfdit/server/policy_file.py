"""Reading a policy file the server was pointed at (a client's reload path, the watched file).

A path is a request to read a file with the server's rights, and the compiler's
diagnostics quote the source back to whoever asked. So the server reads only:

  * the file itself, never a symbolic link (``O_NOFOLLOW``: a ``x.gfp`` link to
    ``/etc/shadow`` is refused, not followed);
  * a regular file (checked with ``fstat`` on a descriptor opened ``O_NONBLOCK``, so
    a named pipe called ``hang.gfp`` is refused at once instead of blocking);
  * at most `MAX_POLICY_BYTES`, as UTF-8 text without NUL bytes (binary is refused);
  * within `READ_TIMEOUT_S` (the read runs on a helper thread; a stuck file system
    costs that thread, never the caller).

`quotable(text)` says whether diagnostics may quote a file's lines: only when it
is a policy source — it parses, or its first declaration is ``policy NAME``
(what every policy file starts with; a typo further down is still quoted).
Otherwise only codes and positions are reported (`redact`).
"""

from __future__ import annotations

import re
import threading

from gfdit.regular_file import FileRefused, read_regular_file

MAX_POLICY_BYTES = 1 << 20
READ_TIMEOUT_S = 5.0
SYNTAX_CODES = ("E001", "E002", "E003", "E004", "E005")  # the text does not parse as a policy
_FIRST_DECL = re.compile(r"\A(?:\s*(?:#[^\n]*)?\n)*\s*policy\s+[A-Za-z_]\w*\s*(?:#[^\n]*)?(?:\n|\Z)")


class PolicyFileError(OSError):
    """The file cannot be read as a policy source; the message says why (no contents)."""


def read_policy_file(path: str, timeout_s: float = READ_TIMEOUT_S) -> str:
    """The file's text, or PolicyFileError; never blocks the caller past `timeout_s`."""
    box: dict[str, object] = {}

    def read() -> None:
        try:
            box["text"] = _read(path)
        except PolicyFileError as exc:
            box["error"] = exc

    reader = threading.Thread(target=read, name="gfdit-policy-read", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        raise PolicyFileError(f"reading {path} took more than {timeout_s:g} s; gave up")
    if "error" in box:
        raise box["error"]
    return box["text"]


def _read(path: str) -> str:
    try:
        data, _ = read_regular_file(path, MAX_POLICY_BYTES, follow_links=False)
    except FileRefused as exc:
        raise PolicyFileError(_REFUSED[exc.kind](path, exc.detail)) from None
    except ValueError:  # a NUL in the path
        raise PolicyFileError("a policy path cannot contain NUL") from None
    if b"\0" in data:
        raise PolicyFileError(f"{path} is binary (it contains NUL bytes), not a policy source")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"{path} is not UTF-8 text (byte {exc.start}), not a policy source") from None


_REFUSED = {
    "link": lambda path, _: f"{path} is a symbolic link; the server reads only regular files",
    "open": lambda path, why: f"cannot open {path}: {why}",
    "not_regular": lambda path, _: f"{path} is not a regular file; the server reads only regular files",
    "too_big": lambda path, size: f"{path} is {size} bytes; a policy file is at most {MAX_POLICY_BYTES}",
    "grew": lambda path, _: f"{path} grew past {MAX_POLICY_BYTES} bytes while being read",
}


def quotable(text: str, diagnostic_codes: list[str]) -> bool:
    """May diagnostics quote this server-read text? Only a policy source's (see the module doc)."""
    parses = not any(code in SYNTAX_CODES for code in diagnostic_codes)
    return parses or bool(_FIRST_DECL.match(text))


def redact(source: str, diagnostics) -> list[str]:
    """Codes and positions only: nothing of a file that is not a policy source."""
    shown = [f"{d.location}: {d.severity}[{d.code}]" for d in diagnostics[:5]]
    return [f"{source} does not parse as a policy source; its lines and tokens are not quoted", *shown]
