"""Loading a policy: text or file in, a `CompiledPolicy` out, or a `PolicyError` with every diagnostic.

    load_policy("mine.gfp", {"queue_cap": "64"})
    compile_policy(text, filename="<reload>")
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gfdit.dsl.ast import Span
from gfdit.dsl.check import check
from gfdit.dsl.diagnostics import Diagnostic, compile_error
from gfdit.dsl.policy import CompiledPolicy


def revision_of(text: str, params: dict[str, str] | None = None) -> str:
    """A policy's revision: the first 12 hex digits of the SHA-256 of its text (and overrides)."""
    digest = hashlib.sha256(text.encode())
    for key, value in sorted((params or {}).items()):
        digest.update(f"\0{key}={value}".encode())
    return digest.hexdigest()[:12]


def compile_policy(text: str, filename: str = "<text>",
                   params: dict[str, str] | None = None) -> CompiledPolicy:
    """Check and compile `text`; raises `PolicyError` carrying every diagnostic on any error."""
    checked = check(text, filename, params)
    if not checked.ok:
        raise compile_error(checked.diagnostics)
    try:
        return CompiledPolicy(checked, revision_of(text, params))
    except RecursionError:  # a safety net: the depth pass keeps compiles far from the limit
        raise compile_error([Diagnostic("E004", "policy nested too deeply to compile", filename,
                                         Span(1, 1, 1, 2))]) from None


def load_policy(path: str | Path, params: dict[str, str] | None = None) -> CompiledPolicy:
    """Read, check and compile a `.gfp` file; `params` override its `param`s (`--param k=v`)."""
    return compile_policy(read_policy_text(path), str(path), params)


def read_policy_text(path: str | Path) -> str:
    """The file's text, or a `PolicyError` (E005) saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise compile_error([Diagnostic("E005", f"cannot read the policy: {reason}", str(path),
                                         Span(1, 1, 1, 2))]) from None
