"""Qwen-Image (QwenImagePipeline): dual-stream joint attention, Qwen2.5-VL text encoder.

Sequence parallelism: image and text tokens are split at the first block's input
and the two rotary tables (``pos_embed`` outputs: image, text) alongside them;
every joint attention sees [text shard, image shard]; ``proj_out`` is gathered.
A text mask is refused under sequence parallelism (batch size 1 has none: the
pipeline trims the prompt to its real tokens). True CFG runs when a negative
prompt is given and ``guidance_scale`` (default 4.0) is above 1, with the
pipeline's norm rescaling.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers.models.transformers import transformer_qwenimage
from diffusers.pipelines.qwenimage.pipeline_qwenimage import calculate_shift, retrieve_timesteps

from gfdit.protocol import GenParams
from gfdit.workers import sp_attention
from gfdit.workers.adapter import SPContext
from gfdit.workers.models.base import LATENTS, DiffusersAdapter
from gfdit.workers.sp_plan import Gather, Split, SPPlan
from gfdit.workers.ulysses import sharded

DEFAULT_TRUE_CFG = 4.0
JOINT = ("text", "image")
TEXT_TOKENS_ESTIMATE = 256  # prompt length is data dependent; used only for state_nbytes

PLAN = SPPlan(
    splits=(
        Split("transformer_blocks.0", "hidden_states", 1, "image"),
        Split("transformer_blocks.0", "encoder_hidden_states", 1, "text"),
        Split("pos_embed", 0, 0, "image", output=True),
        Split("pos_embed", 1, 0, "text", output=True),
        Split("transformer_blocks.*", "modulate_index", 1, "image"),  # zero_cond_t models only
    ),
    gathers=(Gather("proj_out", 1, "image"),),
    attention={"transformer_blocks.*.attn": JOINT},
)


class QwenImageAdapter(DiffusersAdapter):
    family = "qwenimage"
    plan = PLAN

    def _install_attention(self) -> None:
        sp_attention.intercept_dispatch(transformer_qwenimage)

    def pixel_multiple(self) -> int:
        return self.pipe.vae_scale_factor * 2

    def true_cfg(self, params: GenParams) -> float:
        scale = DEFAULT_TRUE_CFG if params.guidance_scale is None else params.guidance_scale
        return scale if params.negative_prompt and scale > 1.0 else 1.0

    def _encode_text(self, prompt: str, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        embeds, mask = self.pipe.encode_prompt(prompt=prompt, device=self.device)
        tensors[prefix + "prompt_embeds"] = embeds
        if mask is not None:
            tensors[prefix + "prompt_embeds_mask"] = mask

    def _encode(self, params: GenParams) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        self._encode_text(params.prompt, tensors, "")
        if self.true_cfg(params) > 1.0:
            self._encode_text(params.negative_prompt, tensors, "negative_")
        return tensors

    def _prepare(self, params: GenParams, encoded, generator: torch.Generator, scheduler) -> dict[str, torch.Tensor]:
        pipe = self.pipe
        tensors: dict[str, torch.Tensor] = {}
        channels = pipe.transformer.config.in_channels // 4
        dtype = encoded["prompt_embeds"].dtype
        tensors[LATENTS] = pipe.prepare_latents(1, channels, params.height, params.width, dtype, self.device, generator)
        steps = params.steps
        config = scheduler.config
        mu = calculate_shift(
            tensors[LATENTS].shape[1], config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5), config.get("max_shift", 1.15),
        )
        retrieve_timesteps(scheduler, steps, self.device, sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        scheduler.set_begin_index(0)
        return tensors

    def _predict(self, tensors, params: GenParams, t: torch.Tensor, sp: SPContext | None) -> torch.Tensor:
        latents = tensors[LATENTS]
        scale = self.pipe.vae_scale_factor * 2
        shapes = [[(1, params.height // scale, params.width // scale)]]
        timestep = t.expand(latents.shape[0]).to(latents.dtype)

        def forward(prefix: str) -> torch.Tensor:
            with sharded(sp):
                return self.pipe.transformer(
                    hidden_states=latents, timestep=timestep / 1000, guidance=None,
                    encoder_hidden_states_mask=tensors.get(prefix + "prompt_embeds_mask"),
                    encoder_hidden_states=tensors[prefix + "prompt_embeds"], img_shapes=shapes, return_dict=False,
                )[0]

        noise = forward("")
        cfg = self.true_cfg(params)
        if cfg > 1.0:
            uncond = forward("negative_")
            combined = uncond + cfg * (noise - uncond)
            noise = combined * (torch.norm(noise, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))
        return noise

    def _decode_float(self, tensors, params: GenParams):
        pipe, vae = self.pipe, self.pipe.vae
        latents = pipe._unpack_latents(tensors[LATENTS], params.height, params.width, pipe.vae_scale_factor)
        latents = latents.to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        image = vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
        return pipe.image_processor.postprocess(image, output_type="np")

    def _latent_numel(self, params: GenParams) -> int:
        scale = self.pipe.vae_scale_factor
        return (params.height // scale) * (params.width // scale) * self.pipe.transformer.config.in_channels // 4

    def _text_numel(self, params: GenParams) -> int:
        copies = 2 if self.true_cfg(params) > 1.0 else 1
        return copies * TEXT_TOKENS_ESTIMATE * self.pipe.transformer.config.joint_attention_dim


def _tiny_text_encoder(vocab_size: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from gfdit.workers import tiny

    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 2, "vocab_size": vocab_size,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0, "bos_token_id": 0, "eos_token_id": 0,
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=vocab_size, vision_start_token_id=vocab_size - 3,
        vision_end_token_id=vocab_size - 2, vision_token_id=vocab_size - 1, image_token_id=vocab_size - 4,
        video_token_id=vocab_size - 5, bos_token_id=0, eos_token_id=0,
    )
    with tiny.seeded_weights(31):
        return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_pipeline():
    """A complete Qwen-Image pipeline at toy size: 3 heads of 16, two blocks, 4x VAE."""
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImagePipeline
    from diffusers import QwenImageTransformer2DModel
    from transformers import Qwen2Tokenizer

    from gfdit.workers import tiny

    vocab = tiny.byte_vocab(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=1024)
    with tiny.seeded_weights(30):
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
            num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4),
        ).eval()
        vae = AutoencoderKLQwenImage(
            base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1, temperal_downsample=[False, True],
            latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
        ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256, max_image_seq_len=8192,
        shift_terminal=0.02,
    )
    return QwenImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=_tiny_text_encoder(len(vocab) + 8), tokenizer=tokenizer,
        transformer=transformer,
    )
