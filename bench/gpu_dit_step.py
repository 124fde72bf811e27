"""GPU check: time a full-size Flux DiT step (random weights, bf16) at width 1.

Builds FLUX.1-dev's transformer (12B), T5-XXL text encoder and VAE from their
published configs directly on the GPU with random weights (nothing is
downloaded), times each stage at several resolutions and writes the cost-model
layout file it measured, in the cost-model format (gfdit/costmodel_file.py):

    OUT/tp1_ulysses1_ring1_cfg1.json   stages fitted as a*x^2 + b*x + c (ms)
    OUT/gpu_dit_step.md                the samples as a table

Run on a GPU machine (about 2-3 minutes on an H100/H200):

    python3 bench/gpu_dit_step.py --out "$OUT"

and here, on CPU, with toy configs (same code path, seconds):

    python3 bench/gpu_dit_step.py --tiny --out bench/results/gpu_dit_step_tiny
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, when gfdit is not installed
from gfdit.costmodel_file import layout_doc, layout_filename, write_cost_model  # noqa: E402

FLUX_DEV = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
T5_XXL = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, dropout_rate=0.0,
)
FLUX_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False,
)
TINY_FLUX = dict(FLUX_DEV, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=3,
                 in_channels=16, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(2, 2, 4))
TINY_T5 = dict(T5_XXL, vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8)
TINY_VAE = dict(FLUX_VAE, latent_channels=4, block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=4)
LAYOUT_FILE = layout_filename(1)


class Timer:
    """Median wall time of a CUDA (or CPU) callable after warm-up."""

    def __init__(self, device: torch.device, warmup: int, repeat: int) -> None:
        self.device, self.warmup, self.repeat = device, warmup, repeat

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def ms(self, fn) -> float:
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeat):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)


def build(cls, config: dict, device: torch.device, dtype: torch.dtype):
    """A module built straight on the device in the target dtype (random init)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return cls(**config).eval()
    finally:
        torch.set_default_dtype(previous)


def fit(samples: list[tuple[float, float]], x_name: str) -> dict:
    """One cost-model stage entry: quadratic (or lower, with fewer points) fit in ms."""
    xs = numpy.array([s[0] for s in samples], dtype=float)
    ys = numpy.array([s[1] for s in samples], dtype=float)
    degree = min(2, len(set(xs.tolist())) - 1)
    coeffs = numpy.polyfit(xs, ys, degree) if degree > 0 else numpy.array([ys.mean()])
    coeffs = numpy.concatenate([numpy.zeros(3 - len(coeffs)), coeffs])
    predicted = numpy.polyval(coeffs, xs)
    spread = ((ys - ys.mean()) ** 2).sum()
    r2 = 1.0 - ((ys - predicted) ** 2).sum() / spread if spread > 0 else 1.0
    a, b, c = (float(v) for v in coeffs)
    return {"x_name": x_name, "coeffs": {"a": a, "b": b, "c": c}, "r2": float(r2),
            "samples": [[float(x), float(y)] for x, y in samples]}


@torch.no_grad()
def time_text_encoder(args, timer: Timer, dtype: torch.dtype) -> list[tuple[float, float]]:
    from transformers import T5Config, T5EncoderModel

    encoder = build(T5EncoderModel, {"config": T5Config(**(TINY_T5 if args.tiny else T5_XXL))}, args.device, dtype)
    vocab = encoder.config.vocab_size
    samples = []
    for tokens in (args.text_tokens // 2, args.text_tokens):
        ids = torch.randint(0, vocab, (1, tokens), device=args.device)
        samples.append((tokens, timer.ms(functools.partial(encoder, ids))))
    del encoder
    return samples


@torch.no_grad()
def time_dit_steps(args, timer: Timer, dtype: torch.dtype) -> list[tuple[float, float]]:
    from diffusers import FluxTransformer2DModel

    config = TINY_FLUX if args.tiny else FLUX_DEV
    model = build(FluxTransformer2DModel, config, args.device, dtype)
    text = torch.randn(1, args.text_tokens, config["joint_attention_dim"], device=args.device, dtype=dtype)
    pooled = torch.randn(1, config["pooled_projection_dim"], device=args.device, dtype=dtype)
    txt_ids = torch.zeros(args.text_tokens, 3, device=args.device, dtype=dtype)
    samples = []
    for side in args.resolutions:
        grid = side // 16  # VAE 8x, then 2x2 packing
        tokens = grid * grid
        latents = torch.randn(1, tokens, config["in_channels"], device=args.device, dtype=dtype)
        ids = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"), -1).reshape(-1, 2)
        img_ids = torch.cat([torch.zeros(tokens, 1), ids], 1).to(args.device, dtype)
        t = torch.full((1,), 0.5, device=args.device, dtype=dtype)
        guidance = torch.full((1,), 3.5, device=args.device, dtype=torch.float32)
        step = functools.partial(model, hidden_states=latents, encoder_hidden_states=text, pooled_projections=pooled,
                                 timestep=t, img_ids=img_ids, txt_ids=txt_ids, guidance=guidance, return_dict=False)
        samples.append((tokens, timer.ms(step)))
        print(f"dit step  {side}x{side}  {tokens:6d} tokens  {samples[-1][1]:9.2f} ms", flush=True)
    del model
    return samples


@torch.no_grad()
def time_vae_decode(args, timer: Timer, dtype: torch.dtype) -> list[tuple[float, float]]:
    from diffusers import AutoencoderKL

    config = TINY_VAE if args.tiny else FLUX_VAE
    vae = build(AutoencoderKL, config, args.device, dtype)
    scale = 2 ** (len(config["block_out_channels"]) - 1)
    samples = []
    for side in args.resolutions:
        latents = torch.randn(1, config["latent_channels"], side // scale, side // scale, device=args.device, dtype=dtype)
        samples.append((side * side, timer.ms(functools.partial(vae.decode, latents, return_dict=False))))
    del vae
    return samples


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy configs on CPU (a test of this script)")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/results/gpu_dit_step"))
    parser.add_argument("--resolutions", type=int, nargs="+", default=None, help="square image sides in pixels")
    parser.add_argument("--text-tokens", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    args.resolutions = args.resolutions or ([32, 64, 96] if args.tiny else [512, 1024, 1536])
    args.text_tokens = args.text_tokens or (16 if args.tiny else 512)
    args.device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    return args


def main() -> int:
    args = parse()
    dtype = torch.float32 if args.device.type == "cpu" else torch.bfloat16
    torch.set_num_threads(1 if args.tiny else torch.get_num_threads())
    timer = Timer(args.device, args.warmup, args.repeat)
    began = time.perf_counter()
    step = fit(time_dit_steps(args, timer, dtype), "latent_seq_len")
    stages = {
        "text_encode": fit(time_text_encoder(args, timer, dtype), "text_seq_len"),
        "dit_prepare": fit([(1.0, 0.0)], "latent_seq_len"),
        "timestep_prepare": fit([(1.0, 0.0)], "num_steps"),
        "dit_step_chunk": step,
        "dit_step_chunk_nocfg": step,
        "vae_decode": fit(time_vae_decode(args, timer, dtype), "voxels"),
        "finalize": fit([(1.0, 0.0)], "ones"),
    }
    device = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu"
    layout = layout_doc("flux-dev-random" if not args.tiny else "flux-tiny-random", 1, stages, {
        "hardware": device, "dtype": str(dtype).removeprefix("torch."), "source": "bench/gpu_dit_step.py",
        "weights": "random (built from config)", "warmup": args.warmup, "repeat": args.repeat,
        "unmeasured": "dit_prepare, timestep_prepare, finalize set to 0 ms",
        "seconds": round(time.perf_counter() - began, 1)})
    out = write_cost_model(args.out, {1: layout})
    rows = [f"| {name} | {x:g} | {ms:.2f} |" for name in ("dit_step_chunk", "text_encode", "vae_decode")
            for x, ms in stages[name]["samples"]]
    table = "\n".join([f"# Flux DiT stage times on {device} ({layout['options']['dtype']}, width 1)", "",
                       "| stage | x | ms |", "|---|---|---|", *rows, ""])
    (out / "gpu_dit_step.md").write_text(table)
    print(table)
    print(f"wrote {out / LAYOUT_FILE} in {layout['options']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
