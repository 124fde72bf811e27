"""Request shape arithmetic shared by the engine (pricing) and the workers (profiling,
emulated timing): what the cost of a request depends on, and its latent sequence length.

A neutral module: it imports nothing from gfdit, so every layer may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shape:
    """What the cost of a request depends on (all the cost model's x variables)."""

    tokens: int  # latent_seq_len
    text_tokens: int  # text_seq_len
    steps: int  # num_steps
    voxels: int  # height * width * frames of the output
    cfg: bool = False  # true classifier-free guidance (two passes per step)


def latent_tokens(height: int, width: int, frames: int = 1) -> int:
    """Latent sequence length of a DiT with an 8x VAE and 2x2 patches (4x in time for video).

    Images: H/16 * W/16 (1024x1024 -> 4096, the Qwen-Image convention). Videos
    (frames > 1): ((frames - 1) // 4 + 1) latent frames of that many tokens each.
    """
    latent_frames = 1 if frames <= 1 else (frames - 1) // 4 + 1
    return max(1, (height // 16) * (width // 16) * latent_frames)


def params_shape(params, text_tokens: int = 512, cfg: bool = False) -> Shape:
    """The cost `Shape` of generation parameters (`height`, `width`, `frames`, `steps`)."""
    tokens = latent_tokens(params.height, params.width, params.frames)
    return Shape(tokens, text_tokens, params.steps, params.height * params.width * params.frames, cfg)
