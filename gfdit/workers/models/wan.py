"""Wan text-to-video (WanPipeline, Wan 2.1 and Wan 2.2 with two experts).

Sequence parallelism: the video tokens are split at the first block's input and
the rotary tables (``rope`` outputs) alongside them; self-attention (``attn1``)
exchanges all-to-all, cross-attention (``attn2``) attends from the local video
shard to the replicated text and needs no exchange; ``proj_out`` is gathered
before un-patchifying. Classifier-free guidance (``guidance_scale``, default
5.0) runs the negative prompt as a second forward pass.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers import transformer_wan

from gfdit.protocol import GenParams
from gfdit.workers import sp_attention
from gfdit.workers.adapter import AdapterError, SPContext
from gfdit.workers.models.base import LATENTS, DiffusersAdapter
from gfdit.workers.sp_plan import LOCAL, Gather, Split, SPPlan, install_plan
from gfdit.workers.ulysses import sharded

DEFAULT_GUIDANCE = 5.0

PLAN = SPPlan(
    splits=(
        Split("rope", 0, 1, "video", output=True),
        Split("rope", 1, 1, "video", output=True),
        Split("blocks.0", "hidden_states", 1, "video"),
    ),
    gathers=(Gather("proj_out", 1, "video"),),
    attention={"blocks.*.attn1": ("video",), "blocks.*.attn2": LOCAL},
)


class WanAdapter(DiffusersAdapter):
    family = "wan"
    plan = PLAN
    video = True

    def __init__(self, pipe, **kwargs) -> None:
        if pipe.config.expand_timesteps:
            raise AdapterError("wan: per-token timesteps (Wan 2.2 TI2V, expand_timesteps) are not supported")
        super().__init__(pipe, **kwargs)
        if pipe.transformer_2 is not None:
            install_plan(pipe.transformer_2, self.plan)

    def _install_attention(self) -> None:
        sp_attention.intercept_dispatch(transformer_wan)

    def pixel_multiple(self) -> int:
        return self.pipe.vae_scale_factor_spatial * self.pipe.transformer.config.patch_size[1]

    def check(self, params: GenParams) -> None:
        super().check(params)
        if (params.frames - 1) % self.pipe.vae_scale_factor_temporal:
            raise AdapterError(f"wan: frames must be 1 more than a multiple of {self.pipe.vae_scale_factor_temporal}")

    def frame_step(self) -> int:
        return self.pipe.vae_scale_factor_temporal

    def max_side(self) -> int:
        """RoPE positions per axis (rope_max_seq_len), in pixels."""
        positions = int(getattr(self.pipe.transformer.config, "rope_max_seq_len", 0) or 0)
        return positions * self.pixel_multiple()

    @property
    def max_sequence_length(self) -> int:
        return min(512, self.pipe.tokenizer.model_max_length)

    def guidance(self, params: GenParams) -> float:
        return DEFAULT_GUIDANCE if params.guidance_scale is None else params.guidance_scale

    def _encode(self, params: GenParams) -> dict[str, torch.Tensor]:
        cfg = self.guidance(params) > 1.0
        embeds, negative = self.pipe.encode_prompt(
            prompt=params.prompt, negative_prompt=params.negative_prompt, do_classifier_free_guidance=cfg,
            max_sequence_length=self.max_sequence_length, device=self.device,
        )
        tensors = {"prompt_embeds": embeds.to(self.dtype)}
        if cfg:
            tensors["negative_prompt_embeds"] = negative.to(self.dtype)
        return tensors

    def _prepare(self, params: GenParams, encoded, generator: torch.Generator, scheduler) -> dict[str, torch.Tensor]:
        pipe = self.pipe
        scheduler.set_timesteps(params.steps, device=self.device)
        scheduler.set_begin_index(0)
        channels = pipe.transformer.config.in_channels
        latents = pipe.prepare_latents(
            1, channels, params.height, params.width, params.frames, torch.float32, self.device, generator
        )
        return {LATENTS: latents}

    def _model_for(self, t: torch.Tensor):
        ratio = self.pipe.config.boundary_ratio
        if ratio is None or t >= ratio * self.pipe.scheduler.config.num_train_timesteps:
            return self.pipe.transformer
        return self.pipe.transformer_2

    def _predict(self, tensors, params: GenParams, t: torch.Tensor, sp: SPContext | None) -> torch.Tensor:
        model = self._model_for(t)
        latents = tensors[LATENTS].to(self.dtype)
        timestep = t.expand(latents.shape[0])

        def forward(embeds: torch.Tensor) -> torch.Tensor:
            with sharded(sp):
                return model(hidden_states=latents, timestep=timestep, encoder_hidden_states=embeds, return_dict=False)[0]

        noise = forward(tensors["prompt_embeds"])
        if "negative_prompt_embeds" in tensors:
            uncond = forward(tensors["negative_prompt_embeds"])
            noise = uncond + self.guidance(params) * (noise - uncond)
        return noise

    def _decode_float(self, tensors, params: GenParams):
        vae = self.pipe.vae
        latents = tensors[LATENTS].to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        video = vae.decode(latents * std + mean, return_dict=False)[0]
        return self.pipe.video_processor.postprocess_video(video, output_type="np")

    def _latent_numel(self, params: GenParams) -> int:
        spatial, temporal = self.pipe.vae_scale_factor_spatial, self.pipe.vae_scale_factor_temporal
        frames = (params.frames - 1) // temporal + 1
        channels = self.pipe.transformer.config.in_channels
        return channels * frames * (params.height // spatial) * (params.width // spatial)

    def _text_numel(self, params: GenParams) -> int:
        copies = 2 if self.guidance(params) > 1.0 else 1
        return copies * self.max_sequence_length * self.pipe.transformer.config.text_dim


def tiny_pipeline():
    """A complete Wan pipeline at toy size: 3 heads of 12, two blocks, a 3-channel video VAE."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    from gfdit.workers import tiny

    with tiny.seeded_weights(20):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=12, in_channels=16, out_channels=16,
            text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
        ).eval()
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        ).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return WanPipeline(
        tokenizer=tiny.t5_tokenizer(), text_encoder=tiny.t5_encoder(umt5=True), vae=vae,
        scheduler=scheduler, transformer=transformer,
    )
