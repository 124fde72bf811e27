"""PixArt-Sigma / PixArt-Alpha: a DiT whose attention calls SDPA directly.

Sequence parallelism needs a processor swap here (`UlyssesAttnProcessor2_0`)
and a hand-written plan: the image tokens are split at the patch embedding's
output (after the positional embedding is added), self-attention (``attn1``)
exchanges all-to-all, cross-attention (``attn2``) attends from the local shard to
the replicated T5 tokens with their mask, and ``proj_out`` is gathered before
un-patchifying. CFG (``guidance_scale``, default 4.5) batches the negative and
positive prompt in one forward pass, as the pipeline does. The schedulers these
pipelines ship (DPM-Solver, UniPC, Euler flow) leave the model input unscaled.
"""

from __future__ import annotations

import torch

from gfdit.protocol import GenParams
from gfdit.workers import sp_attention
from gfdit.workers.adapter import SPContext
from gfdit.workers.models.base import LATENTS, DiffusersAdapter
from gfdit.workers.sp_plan import LOCAL, Gather, Split, SPPlan
from gfdit.workers.ulysses import sharded

DEFAULT_GUIDANCE = 4.5

PLAN = SPPlan(
    splits=(Split("pos_embed", None, 1, "image", output=True),),
    gathers=(Gather("proj_out", 1, "image"),),
    attention={"transformer_blocks.*.attn1": ("image",), "transformer_blocks.*.attn2": LOCAL},
)


class PixArtAdapter(DiffusersAdapter):
    family = "pixart"
    plan = PLAN

    def _install_attention(self) -> None:
        sp_attention.swap_sdpa_processors(self.pipe.transformer)

    def pixel_multiple(self) -> int:
        return self.pipe.vae_scale_factor * self.pipe.transformer.config.patch_size

    @property
    def max_sequence_length(self) -> int:
        return min(300, self.pipe.tokenizer.model_max_length)

    def guidance(self, params: GenParams) -> float:
        return DEFAULT_GUIDANCE if params.guidance_scale is None else params.guidance_scale

    def _encode(self, params: GenParams) -> dict[str, torch.Tensor]:
        cfg = self.guidance(params) > 1.0
        embeds, mask, negative, negative_mask = self.pipe.encode_prompt(
            params.prompt, cfg, negative_prompt=params.negative_prompt, device=self.device,
            max_sequence_length=self.max_sequence_length,
        )
        if cfg:
            embeds, mask = torch.cat([negative, embeds]), torch.cat([negative_mask, mask])
        return {"prompt_embeds": embeds, "prompt_attention_mask": mask}

    def _prepare(self, params: GenParams, encoded, generator: torch.Generator, scheduler) -> dict[str, torch.Tensor]:
        pipe = self.pipe
        scheduler.set_timesteps(params.steps, device=self.device)
        scheduler.set_begin_index(0)
        channels = pipe.transformer.config.in_channels
        dtype = encoded["prompt_embeds"].dtype
        return {LATENTS: pipe.prepare_latents(1, channels, params.height, params.width, dtype, self.device, generator)}

    def _added_conditions(self, params: GenParams, batch: int) -> dict[str, torch.Tensor | None]:
        if not self.pipe.transformer.use_additional_conditions:
            return {"resolution": None, "aspect_ratio": None}
        size = torch.tensor([params.height, params.width], dtype=self.dtype, device=self.device)
        ratio = torch.tensor([params.height / params.width], dtype=self.dtype, device=self.device)
        return {"resolution": size.repeat(batch, 1), "aspect_ratio": ratio.repeat(batch, 1)}

    def _predict(self, tensors, params: GenParams, t: torch.Tensor, sp: SPContext | None) -> torch.Tensor:
        latents, embeds = tensors[LATENTS], tensors["prompt_embeds"]
        cfg = embeds.shape[0] == 2
        model_input = torch.cat([latents] * 2) if cfg else latents
        timestep = t[None].to(self.device).expand(model_input.shape[0])
        with sharded(sp):
            noise = self.pipe.transformer(
                model_input, encoder_hidden_states=embeds, encoder_attention_mask=tensors["prompt_attention_mask"],
                timestep=timestep, added_cond_kwargs=self._added_conditions(params, model_input.shape[0]),
                return_dict=False,
            )[0]
        if cfg:
            uncond, text = noise.chunk(2)
            noise = uncond + self.guidance(params) * (text - uncond)
        if self.pipe.transformer.config.out_channels // 2 == latents.shape[1]:
            noise = noise.chunk(2, dim=1)[0]
        return noise

    def _decode_float(self, tensors, params: GenParams):
        vae = self.pipe.vae
        image = vae.decode(tensors[LATENTS].to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="np")

    def _latent_numel(self, params: GenParams) -> int:
        scale = self.pipe.vae_scale_factor
        return (params.height // scale) * (params.width // scale) * self.pipe.transformer.config.in_channels

    def _text_numel(self, params: GenParams) -> int:
        copies = 2 if self.guidance(params) > 1.0 else 1
        return copies * self.max_sequence_length * (self.pipe.transformer.config.caption_channels + 1)


def tiny_pipeline():
    """A complete PixArt-Sigma pipeline at toy size: 3 heads of 8, two blocks, DPM-Solver."""
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    from gfdit.workers import tiny

    with tiny.seeded_weights(40):
        transformer = PixArtTransformer2DModel(
            sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=3,
            caption_channels=32, in_channels=4, cross_attention_dim=24, out_channels=8, attention_bias=True,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
            norm_elementwise_affine=False, norm_eps=1e-6,
        ).eval()
    return PixArtSigmaPipeline(
        tokenizer=tiny.t5_tokenizer(), text_encoder=tiny.t5_encoder(), vae=tiny.kl_vae(),
        transformer=transformer, scheduler=DPMSolverMultistepScheduler(prediction_type="v_prediction"),
    )
