"""Tiny pipelines built from configs with random weights, for demos and tests.

Nothing is downloaded: tokenizers are built in memory from small vocabularies
(a byte-level BPE without merges for CLIP and Qwen, a character-level unigram
for T5), text encoders from small transformers configs, VAEs and transformers
from small diffusers configs. Weights come from a fixed seed, so a tiny model is
the same in every process. Each family module defines its ``tiny_pipeline()``;
`build_tiny_pipeline` picks one by family name.
"""

from __future__ import annotations

import importlib
import string
from collections.abc import Iterator
from contextlib import contextmanager

import torch

WEIGHT_SEED = 20240611
T5_MAX_LENGTH = 13  # deliberately not a multiple of 2 or 4: text shards get padded
CLIP_MAX_LENGTH = 16


@contextmanager
def seeded_weights(offset: int = 0) -> Iterator[None]:
    """Build modules with deterministic random weights without touching the
    caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED + offset)
        yield


def t5_tokenizer(max_length: int = T5_MAX_LENGTH):
    """A character-level T5 (unigram) tokenizer: lowercase letters and digits."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for char in string.ascii_lowercase + string.digits:
        pieces += [("▁" + char, -3.0), (char, -4.0)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def byte_vocab(specials: list[str]) -> dict[str, int]:
    """The 256 byte-level symbols, with and without CLIP's end-of-word mark, then specials."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in alphabet + [s + "</w>" for s in alphabet] + specials:
        vocab.setdefault(symbol, len(vocab))
    return vocab


def clip_tokenizer(max_length: int = CLIP_MAX_LENGTH):
    from transformers import CLIPTokenizer

    vocab = byte_vocab(["<|startoftext|>", "<|endoftext|>"])
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def t5_encoder(d_model: int = 32, vocab_size: int = 80, umt5: bool = False):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_cls, model_cls = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_cls(
        vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, dropout_rate=0.0,
    )
    with seeded_weights(1):
        return model_cls(config).eval()


def clip_encoder(hidden: int = 32, vocab_size: int = 514):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=CLIP_MAX_LENGTH, projection_dim=hidden,
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
    )
    with seeded_weights(2):
        return CLIPTextModel(config).eval()


def kl_vae(latent_channels: int = 4, **extra):
    """A two-level AutoencoderKL: 2x spatial compression."""
    from diffusers import AutoencoderKL

    with seeded_weights(3):
        return AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=latent_channels,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32, **extra,
        ).eval()


def build_tiny_pipeline(family: str):
    """The tiny diffusers pipeline of ``family`` (random weights, fixed seed)."""
    from gfdit.workers.models import FAMILIES

    if family not in FAMILIES:
        raise ValueError(f"no tiny pipeline for family {family!r}; known: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[family][0]).tiny_pipeline()
