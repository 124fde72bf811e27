"""Flux (FluxPipeline): joint text+image attention, rotary ids, flow matching.

Sequence parallelism: the transformer's image tokens (``hidden_states``,
``img_ids``) and text tokens (``encoder_hidden_states``, ``txt_ids``) are split
at its input, so the rotary embedding it computes from the local ids matches the
local tokens; every attention (double- and single-stream blocks) sees
[text shard, image shard]; ``proj_out`` is gathered. Guidance is the distilled
guidance embedding (``guidance_scale``, default 3.5) when the model has one; no
true CFG.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.models.transformers import transformer_flux
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

from gfdit.protocol import GenParams
from gfdit.workers import sp_attention
from gfdit.workers.adapter import SPContext
from gfdit.workers.models.base import LATENTS, DiffusersAdapter
from gfdit.workers.sp_plan import Gather, Split, SPPlan
from gfdit.workers.ulysses import sharded

DEFAULT_GUIDANCE = 3.5
JOINT = ("text", "image")

PLAN = SPPlan(
    splits=(
        Split("", "hidden_states", 1, "image"),
        Split("", "img_ids", 0, "image"),
        Split("", "encoder_hidden_states", 1, "text"),
        Split("", "txt_ids", 0, "text"),
    ),
    gathers=(Gather("proj_out", 1, "image"),),
    attention={"transformer_blocks.*.attn": JOINT, "single_transformer_blocks.*.attn": JOINT},
)


class FluxAdapter(DiffusersAdapter):
    family = "flux"
    plan = PLAN

    def _install_attention(self) -> None:
        sp_attention.intercept_dispatch(transformer_flux)

    def pixel_multiple(self) -> int:
        return self.pipe.vae_scale_factor * 2

    @property
    def max_sequence_length(self) -> int:
        return min(512, self.pipe.tokenizer_2.model_max_length)

    def _encode(self, params: GenParams) -> dict[str, torch.Tensor]:
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt=params.prompt, prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
        )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled, "text_ids": text_ids}

    def _prepare(self, params: GenParams, encoded, generator: torch.Generator, scheduler) -> dict[str, torch.Tensor]:
        pipe = self.pipe
        channels = pipe.transformer.config.in_channels // 4
        latents, image_ids = pipe.prepare_latents(
            1, channels, params.height, params.width, encoded["prompt_embeds"].dtype, self.device, generator
        )
        steps = params.steps
        sigmas = np.linspace(1.0, 1 / steps, steps)
        config = scheduler.config
        mu = calculate_shift(
            latents.shape[1], config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5), config.get("max_shift", 1.15),
        )
        if config.get("use_flow_sigmas", False):
            sigmas = None
        retrieve_timesteps(scheduler, steps, self.device, sigmas=sigmas, mu=mu)
        scheduler.set_begin_index(0)
        tensors = {LATENTS: latents, "image_ids": image_ids}
        if pipe.transformer.config.guidance_embeds:
            scale = DEFAULT_GUIDANCE if params.guidance_scale is None else params.guidance_scale
            tensors["guidance"] = torch.full([1], scale, device=self.device, dtype=torch.float32)
        return tensors

    def _predict(self, tensors, params: GenParams, t: torch.Tensor, sp: SPContext | None) -> torch.Tensor:
        latents = tensors[LATENTS]
        timestep = t.expand(latents.shape[0]).to(latents.dtype)
        with sharded(sp):
            return self.pipe.transformer(
                hidden_states=latents,
                timestep=timestep / 1000,
                guidance=tensors.get("guidance"),
                pooled_projections=tensors["pooled_prompt_embeds"],
                encoder_hidden_states=tensors["prompt_embeds"],
                txt_ids=tensors["text_ids"],
                img_ids=tensors["image_ids"],
                return_dict=False,
            )[0]

    def _decode_float(self, tensors, params: GenParams):
        pipe, vae = self.pipe, self.pipe.vae
        latents = pipe._unpack_latents(tensors[LATENTS], params.height, params.width, pipe.vae_scale_factor)
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        image = vae.decode(latents, return_dict=False)[0]
        return pipe.image_processor.postprocess(image, output_type="np")

    def _latent_numel(self, params: GenParams) -> int:
        scale = self.pipe.vae_scale_factor
        return (params.height // scale) * (params.width // scale) * self.pipe.transformer.config.in_channels // 4

    def _text_numel(self, params: GenParams) -> int:
        config = self.pipe.transformer.config
        return self.max_sequence_length * (config.joint_attention_dim + 3) + config.pooled_projection_dim


def tiny_pipeline():
    """A complete Flux pipeline at toy size: 3 heads of 8, one double and one single block."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from gfdit.workers import tiny

    with tiny.seeded_weights(10):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
            num_attention_heads=3, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
            axes_dims_rope=(2, 2, 4),
        ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=tiny.kl_vae(shift_factor=0.0609, scaling_factor=0.3611, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=tiny.clip_encoder(),
        tokenizer=tiny.clip_tokenizer(),
        text_encoder_2=tiny.t5_encoder(),
        tokenizer_2=tiny.t5_tokenizer(),
        transformer=transformer,
    )
