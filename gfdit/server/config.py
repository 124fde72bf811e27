"""How a server is built: everything chosen once, at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gfdit.protocol import DEFAULT_ADDRESS, normalize_address

EXECUTORS = ("real", "emulated")


class ConfigError(ValueError):
    """A server setting that cannot work; the message says which and why."""


@dataclass
class ServerConfig:
    """Server settings.

    model        -- "tiny", a local diffusers directory, or a hub id (real executor).
    num_gpus     -- worker processes (ranks); emulated mode runs 8-64 on one machine.
    policy       -- a .gfp file (watched for edits) or a shipped policy name.
    executor     -- "real" (models on the workers) or "emulated" (workers sleep for
                    the cost model's time).
    cost_model   -- cost-model directory; None with the real executor means measure
                    the model at start-up (see gfdit.server.calibrate).
    time_scale   -- wall seconds per engine second (emulated: 0.1 runs 10x faster).
    metrics_port -- Prometheus port; 0 picks a free one; None disables it.
    allow_remote -- needed (with a token) to bind anything but loopback.
    default_*    -- what a submit that leaves the shape or steps at 0 gets.
    heartbeat_timeout_s -- a worker silent this long is declared dead (and the world
                    restarted: see docs/workers.md, "Recovery").
    """

    model: str = "tiny"
    num_gpus: int = 4
    policy: str = "edf_best_fit"
    policy_params: dict[str, str] = field(default_factory=dict)
    address: str = DEFAULT_ADDRESS
    executor: str = "real"
    cost_model: str | None = None
    time_scale: float = 1.0
    backend: str = "p2p"
    device: str = "cpu"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    allow_remote: bool = False
    token: str = ""
    watch_policy: bool = True
    decision_log: str | None = None
    default_height: int = 0
    default_width: int = 0
    default_steps: int = 0
    max_pixels: int = 4096 * 4096
    max_frames: int = 1025
    max_steps: int = 1000
    max_prompt_chars: int = 10_000
    max_queue: int = 100_000
    calibrate_shape: tuple[int, int] = (64, 64)
    calibrate_steps: int = 4
    heartbeat_timeout_s: float = 30.0

    def check(self) -> None:
        try:
            self.address = normalize_address(self.address)  # "127.0.0.1:7600" is tcp://127.0.0.1:7600
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        if not 1 <= self.num_gpus <= 1024:
            raise ConfigError(f"num_gpus must be in 1..1024, got {self.num_gpus}")
        if self.executor == "emulated" and self.cost_model is None:
            raise ConfigError("the emulated executor needs --cost-model DIR")
        if self.cost_model is not None and not Path(self.cost_model).is_dir():
            raise ConfigError(f"cost model directory not found: {self.cost_model}")
        if not self.heartbeat_timeout_s > 0:
            raise ConfigError(f"heartbeat_timeout_s must be positive, got {self.heartbeat_timeout_s}")
        if not self.time_scale > 0:
            raise ConfigError(f"time_scale must be positive, got {self.time_scale}")
