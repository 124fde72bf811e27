"""A small adapter for runtime tests: real tensors, real collectives, no diffusers.

Its "denoise step" shards the latent rows over the group, transforms each shard
with an op that mixes in a global quantity (an all-gathered row sum, so a wrong
collective changes the result) and all-gathers the rows back: width k gives the
same latent as width 1, the way Ulysses does. The worker loads it through
``--adapter toy_adapter:ToyAdapter`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gfdit.workers.adapter import RequestState

CHANNELS = 4


class ToyAdapter:
    family = "toy"

    def __init__(self, model: str = "toy", *, device="cpu", dtype=torch.float32) -> None:
        self.device, self.dtype = device, dtype
        # "fail:STAGE" makes that stage raise (for error-reporting tests)
        self.fail_stage = model.partition(":")[2] if model.startswith("fail:") else ""
        # "slow:SECONDS" sleeps that long in each denoise task of a prompt starting "slow"
        self.slow_s = float(model.partition(":")[2]) if model.startswith("slow:") else 0.0

    def encode(self, params) -> RequestState:
        self._maybe_fail("encode")
        g = torch.Generator().manual_seed(params.seed)
        rows, cols = params.height // 8, params.width // 8
        latents = torch.randn(CHANNELS, rows, cols, generator=g, dtype=self.dtype)
        embeds = torch.randn(7, 16, generator=g, dtype=self.dtype)
        return RequestState(
            tensors={"latents": latents, "embeds": embeds, "generator": g.get_state()},
            meta={"step": 0, "steps": params.steps, "prompt": params.prompt},
        )

    def denoise(self, state: RequestState, begin: int, end: int, sp) -> None:
        self._maybe_fail("denoise")
        if state.meta["step"] != begin:
            raise ValueError(f"state is at step {state.meta['step']}, task starts at {begin}")
        if state.meta["prompt"].startswith("slow"):
            time.sleep(self.slow_s)
        latents = state.tensors["latents"]
        for step in range(begin, end):
            latents = self._step(latents, state.tensors["embeds"], step, sp)
        state.tensors["latents"] = latents
        state.meta["step"] = end

    def _step(self, x: torch.Tensor, embeds: torch.Tensor, step: int, sp) -> torch.Tensor:
        rows = x.shape[1]
        k, i = (1, 0) if sp is None else (sp.group.size, sp.group.index)
        pad = (-rows) % k
        xp = torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x
        shard = xp.chunk(k, dim=1)[i]
        total = shard.sum(dim=(0, 1), keepdim=True)
        if sp is not None:
            total = sp.comm.all_gather(sp.group, total.contiguous(), dim=0).sum(dim=0, keepdim=True)
        shard = torch.tanh(shard * 0.9 + 0.01 * total + 0.1 * embeds.mean() + 0.05 * step)
        if sp is not None:
            shard = sp.comm.all_gather(sp.group, shard.contiguous(), dim=1)
        return shard[:, :rows]

    def decode(self, state: RequestState) -> list[np.ndarray]:
        self._maybe_fail("decode")
        x = state.tensors["latents"]
        image = ((x[:3].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
        return [image.contiguous().numpy()]

    def state_nbytes(self, params) -> int:
        return CHANNELS * (params.height // 8) * (params.width // 8) * 4 + 7 * 16 * 4

    def _maybe_fail(self, stage: str) -> None:
        if self.fail_stage == stage:
            raise RuntimeError(f"toy adapter told to fail in {stage}")
