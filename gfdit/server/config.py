"""How a server is built: everything chosen once, at start-up.

`ServerConfig` is a pydantic model: each field's description is the one reference
for that setting (docs/deploy.md's table is generated from it by
`gfdit.server.config_doc`, `gfdit serve --help` reads it too). `gfdit serve
--config FILE` loads a TOML file with the same field names (`config_file.py`);
command-line flags override it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gfdit.protocol import DEFAULT_ADDRESS, normalize_address

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # config name -> torch name
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class ConfigError(ValueError):
    """A server setting that cannot work; the message says which and why."""


class ServerConfig(BaseModel):
    """Server settings (one field per setting; see each description)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field("tiny", description='"tiny", a local diffusers directory, or a hub id (real executor)')
    num_gpus: int = Field(4, ge=1, le=1024, description="worker processes (ranks); emulated mode runs 8-64 "
                                                        "on one machine")
    policy: str = Field("default", description="a shipped policy name (`slo_grow`; `default` is the recommended "
                                               "one), a built-in (`py:NAME`) or a .gfp file (watched for edits)")
    policy_params: dict[str, str] = Field(default_factory=dict, description="policy parameters, "
                                          "`{chunk = \"2\"}` (the `--param NAME=VALUE` flags)")
    address: str = Field(DEFAULT_ADDRESS, description="where clients connect: tcp://HOST:PORT, HOST:PORT or ipc://PATH")
    executor: Literal["real", "emulated"] = Field("real", description='"real" (models on the workers) or '
                                                  '"emulated" (workers sleep for the cost model\'s time)')
    cost_model: str | None = Field(None, description="a shipped cost model (`qwen-h20`, `synthetic`) or a "
                                   "directory; unset with the real executor: measured at start-up")
    time_scale: float = Field(1.0, gt=0, description="wall seconds per engine second (emulated: 0.1 runs 10x faster)")
    backend: str = Field("p2p", description="collectives backend of the workers (p2p, shm, newgroup)")
    device: str = Field("cpu", description="cpu, cuda (rank r on GPU r modulo the visible GPUs) or cuda:N "
                                           "(one worker on GPU N)")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="model weights and activations: "
                                                           "auto is bf16 on CUDA, fp32 on CPU")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve Prometheus /metrics on this port "
                                     "(0 picks a free one; unset: none)")
    metrics_host: str = Field("127.0.0.1", description="the interface /metrics binds to")
    http_port: int | None = Field(None, ge=0, le=65535, description="serve the OpenAI-compatible HTTP API "
                                  "(gfdit.http; the http extra) on this port (0 picks a free one; unset: none)")
    http_host: str = Field("127.0.0.1", description="the interface the HTTP API binds to; beyond loopback, "
                           "like metrics_host and the address, it needs allow_remote and a token")
    allow_remote: bool = Field(False, description="allow a non-loopback address, http_host or metrics_host "
                               "(needs a token)")
    token_file: str | None = Field(None, description="a file (mode 0600) holding the shared token; or set "
                                   "$GFDIT_TOKEN. A config file never holds the token itself")
    token: str = Field("", repr=False, exclude=True, description="the shared token (from token_file, "
                       "$GFDIT_TOKEN or --token; never read from a config file)")
    watch_policy: bool = Field(True, description="recompile and swap in the policy file when it is saved")
    decision_log: str | None = Field(None, description="write the decision log (JSONL, one line per decision, "
                                     "flushed per line) to this file")
    default_height: int = Field(0, ge=0, description="height of a request that gives none (0: the model's, "
                                "1024; 64 for tiny)")
    default_width: int = Field(0, ge=0, description="width of a request that gives none (0: the model's)")
    default_steps: int = Field(0, ge=0, description="steps of a request that gives none (0: the model's, 28; "
                               "8 for tiny)")
    max_pixels: int = Field(4096 * 4096, ge=1, description="largest height x width accepted")
    max_frames: int = Field(1025, ge=1, description="most frames accepted (video models)")
    max_steps: int = Field(1000, ge=1, description="most denoising steps accepted")
    max_prompt_chars: int = Field(10_000, ge=1, description="longest prompt accepted")
    max_queue: int = Field(100_000, ge=1, description="most live requests; a submit beyond is rejected")
    calibrate_shape: tuple[int, int] = Field((64, 64), description="height, width measured at start-up "
                                             "when no cost model is given")
    calibrate_steps: int = Field(4, ge=1, description="denoising steps per start-up measurement")
    heartbeat_timeout_s: float = Field(30.0, gt=0, description="a worker silent this long is declared dead "
                                       "and the world restarted (docs/workers.md, Recovery)")
    record: str | None = Field(None, description="write every arrival to this workload trace (the format "
                               "`gfdit simulate` reads; docs/server.md, The operator's loop); unset: none")
    record_prompts: bool = Field(False, description="the recorded trace holds prompts and seeds too")
    record_max_bytes: int = Field(64 << 20, ge=4096, description="rotate the recorded trace past this size "
                                  "(FILE is the newest part, FILE.1 the one before, ...)")
    record_keep: int = Field(10, ge=0, description="older parts of the recorded trace kept (FILE.1 ... FILE.N)")
    nnodes: int = Field(1, ge=1, le=256, description="hosts: this one (node 0, the head) and nnodes-1 others, "
                        "each running `gfdit worker --head WORKER_ADDRESS --node-rank R` (docs/deploy.md, "
                        "Several hosts); num_gpus becomes nnodes x nproc_per_node")
    nproc_per_node: int | None = Field(None, ge=1, le=1024, description="ranks on each host when nnodes > 1 "
                                       "(unset: num_gpus / nnodes)")
    worker_address: str | None = Field(None, description="where the workers connect: tcp://HOST:PORT (needed "
                                       "with nnodes > 1, the other hosts' agents connect there; the port must "
                                       "be fixed); unset: a private ipc:// socket")
    node_token_file: str | None = Field(None, description="several hosts: a file (mode 0600) holding the node "
                                        "token the head and its node agents prove to each other; or set "
                                        "$GFDIT_NODE_TOKEN. Unset: the client token (warned: every node agent "
                                        "then holds a token that also submits requests)")
    node_token: str = Field("", repr=False, exclude=True, description="the node token (from node_token_file "
                            "or $GFDIT_NODE_TOKEN; never read from a config file); empty: the client token")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalize_address(value)  # "127.0.0.1:7600" is tcp://127.0.0.1:7600

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {value!r}")
        return value

    def worker_dtype(self) -> str:
        """The torch dtype name the workers load the model in (`auto`: bf16 on CUDA, fp32 on CPU)."""
        name = self.dtype if self.dtype != "auto" else ("bf16" if self.device.startswith("cuda") else "fp32")
        return DTYPES[name]

    def check(self) -> None:
        """Checks across fields and on the file system (each field checks itself on assignment)."""
        from gfdit.resources import ResourceError, cost_model_dir

        if self.executor == "emulated" and self.cost_model is None:
            raise ConfigError("the emulated executor needs a cost model (--cost-model qwen-h20 or DIR)")
        if self.cost_model is not None:
            try:
                self.cost_model = str(cost_model_dir(self.cost_model))
            except ResourceError as exc:
                raise ConfigError(f"cost_model: {exc}") from None
        self._check_nodes()
        if ":" in self.device and self.num_gpus > 1 and self.executor == "real":
            raise ConfigError(f"device {self.device} puts every worker on one GPU; with num_gpus "
                              f"{self.num_gpus} use device cuda (rank r on GPU r) and CUDA_VISIBLE_DEVICES")

    def check_token(self) -> None:
        """After the tokens are resolved (not in a config file): several hosts need one."""
        if self.nnodes > 1 and not self.cluster_token():
            raise ConfigError("nnodes > 1 needs a node token (--node-token-file FILE or $GFDIT_NODE_TOKEN, the "
                              "same on every host; else the client token: --token-file or $GFDIT_TOKEN): "
                              "the head and the other hosts' agents prove it to each other")

    def cluster_token(self) -> str:
        """What the head and its node agents prove: the node token, else the client token."""
        return self.node_token or self.token

    def _check_nodes(self) -> None:
        """Several hosts: a fixed tcp:// worker address, whole nodes."""
        if self.nnodes == 1:
            return
        from gfdit.workers.nodes import tcp_host_port

        try:
            host, port = tcp_host_port(self.worker_address or "")
        except ValueError as exc:
            raise ConfigError(f"worker_address: {exc} (nnodes is {self.nnodes})") from None
        if host in ("*", "0.0.0.0", "::"):
            raise ConfigError(f"worker_address: name this host's address that the other hosts reach, not {host} "
                              "(it is also the rendezvous address the head hands out)")
        if port == 0:
            raise ConfigError("worker_address: the other hosts need a fixed port, not 0")
        if self.nproc_per_node is None:
            if self.num_gpus % self.nnodes:
                raise ConfigError(f"num_gpus {self.num_gpus} is not a multiple of nnodes {self.nnodes}; "
                                  "give nproc_per_node")
            self.nproc_per_node = self.num_gpus // self.nnodes
        self.num_gpus = self.nnodes * self.nproc_per_node
