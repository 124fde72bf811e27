"""Where Ulysses attention enters diffusers' attention code.

Two hooks, both inert outside a sharded forward (`gfdit.workers.ulysses.sharded`):

* `intercept_dispatch(module)` replaces ``dispatch_attention_fn`` in a diffusers
  transformer module (Flux, Wan, QwenImage route every attention through it) by
  a function that runs the original on the exchanged q, k, v.
* `UlyssesAttnProcessor2_0` replaces diffusers' ``AttnProcessor2_0`` (which calls
  ``scaled_dot_product_attention`` directly: PixArt, DiT). It keeps the exact call
  signature of the processor it replaces: diffusers filters the keyword arguments
  it passes by that signature and silently drops the rest.

Which tokens an attention's q, k, v hold comes from the plan
(`gfdit.workers.sp_plan.current_layout`): an attention module the plan does not
name fails loudly under sequence parallelism instead of computing on a shard.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from gfdit.workers import sp_plan, ulysses

_ORIGINAL = "_gfdit_original_dispatch"


def _sharded_layout(run: ulysses.ShardedRun | None) -> tuple[str, ...] | None:
    """The layout to exchange over, or None to compute locally."""
    if run is None:
        return None
    layout = sp_plan.current_layout()
    if layout is None:
        raise ulysses.SequenceParallelError("attention module not named in the sequence-parallel plan")
    return layout or None


def intercept_dispatch(module: types.ModuleType) -> None:
    """Route ``module.dispatch_attention_fn`` through Ulysses when sharded (idempotent)."""
    if hasattr(module, _ORIGINAL):
        return
    original = module.dispatch_attention_fn
    setattr(module, _ORIGINAL, original)

    def dispatch_attention_fn(query, key, value, attn_mask=None, *args, **kwargs):
        layout = _sharded_layout(ulysses.active_run())
        if layout is None:
            return original(query, key, value, attn_mask, *args, **kwargs)
        if attn_mask is not None:
            raise ulysses.SequenceParallelError("attention masks over sharded tokens are not supported")

        def attend(q, k, v):
            return original(q, k, v, None, *args, **kwargs)

        return ulysses.active_run().attend(query, key, value, layout, attend)

    module.dispatch_attention_fn = dispatch_attention_fn


def _sdpa_bhsd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDPA on (B, S, H, D) tensors."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class UlyssesAttnProcessor2_0(AttnProcessor2_0):
    """``AttnProcessor2_0`` whose attention is Ulysses when the tokens are sharded."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        layout = _sharded_layout(ulysses.active_run())
        if layout is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if attention_mask is not None or encoder_hidden_states is not None:
            raise ulysses.SequenceParallelError("sharded self-attention takes no mask and no encoder states")
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ulysses.SequenceParallelError("sharded attention supports (B, S, C) inputs without extra norms")
        residual = hidden_states
        batch, _, _ = hidden_states.shape
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim) for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query.transpose(1, 2)).transpose(1, 2)
        if attn.norm_k is not None:
            key = attn.norm_k(key.transpose(1, 2)).transpose(1, 2)
        out = ulysses.active_run().attend(query, key, value, layout, _sdpa_bhsd)
        out = out.reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def swap_sdpa_processors(transformer: torch.nn.Module) -> None:
    """Replace every plain ``AttnProcessor2_0`` in ``transformer`` by the Ulysses one."""
    for module in transformer.modules():
        if isinstance(module, Attention) and type(module.processor) is AttnProcessor2_0:
            module.set_processor(UlyssesAttnProcessor2_0())
