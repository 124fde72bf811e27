"""`gfdit serve --config FILE`: a TOML file of `ServerConfig` fields, overridden by flags.

    model = "tiny"
    num_gpus = 4
    policy = "slo_grow"
    token_file = "/etc/gfdit/token"
    [policy_params]
    chunk = "2"

`build_config(path, overrides)` returns the checked config or raises one
`ConfigError` naming the file and every bad field by its path
(`prod.toml: policy_params.chunk: Input should be a valid string`).
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from gfdit.server.config import ConfigError, ServerConfig

NOT_IN_FILES = {"token": "a config file never holds the token: use token_file or $GFDIT_TOKEN",
                "node_token": "a config file never holds the node token: use node_token_file or $GFDIT_NODE_TOKEN"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The TOML table in `path`, with file-level problems as one `ConfigError`."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key, why in NOT_IN_FILES.items():
        if key in data:
            raise ConfigError(f"{path}: {key}: {why}")
    return data


def build_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ServerConfig:
    """The file's settings (if any), then `overrides` on top (policy_params merged per key); checked."""
    values = read_config_file(path) if path is not None else {}
    overrides = dict(overrides or {})
    if "policy_params" in overrides and isinstance(values.get("policy_params"), dict):
        overrides["policy_params"] = {**values["policy_params"], **overrides["policy_params"]}
    values.update(overrides)
    where = f"{path}: " if path is not None else ""
    try:
        config = ServerConfig(**values)
    except ValidationError as exc:
        raise ConfigError(where + "; ".join(_problem(error) for error in exc.errors())) from None
    try:
        config.check()
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    return config


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error as `field.path: message` (an unknown field gets a did-you-mean)."""
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), ServerConfig.model_fields, n=1)
        return f"{field}: no such setting" + (f" (did you mean {close[0]!r}?)" if close else "")
    message = error["msg"].removeprefix("Value error, ")
    return f"{field}: {message} (got {error['input']!r})" if "input" in error else f"{field}: {message}"
