"""Model adapters at width 1: the tiny model, save_pretrained -> load_adapter,
request state that survives serialization bit-exactly, and clear errors."""

from __future__ import annotations

import copy
import json
import math

import msgspec
import numpy
import pytest
import torch

from gfdit.protocol import GenParams
from gfdit.workers import models
from gfdit.workers.adapter import AdapterError, ModelAdapter, RequestState, load_adapter
from gfdit.workers.tiny import build_tiny_pipeline

import sp_cases

pytestmark = pytest.mark.slow
IMAGE = GenParams(prompt="a lighthouse at dusk", height=20, width=28, steps=3, seed=3)
VIDEO = GenParams(prompt="waves", height=32, width=48, steps=3, seed=3, frames=5)
QWEN = GenParams(prompt="a lighthouse", height=40, width=56, steps=3, seed=3)
PARAMS = {"flux": IMAGE, "pixart": IMAGE, "wan": VIDEO, "qwenimage": QWEN}


def _generate(model, params: GenParams) -> numpy.ndarray:
    state = model.encode(params)
    model.denoise(state, 0, params.steps, None)
    return model.decode_float(state)


def test_tiny_model_is_complete_and_deterministic():
    first, second = load_adapter("tiny"), load_adapter("tiny")
    assert isinstance(first, ModelAdapter)
    state = first.encode(IMAGE)
    first.denoise(state, 0, IMAGE.steps, None)
    frames = first.decode(state)
    assert len(frames) == 1 and frames[0].shape == (20, 28, 3) and frames[0].dtype == numpy.uint8
    assert frames[0].std() > 0  # a real decode, not a constant image
    numpy.testing.assert_array_equal(_generate(second, IMAGE), first.decode_float(state))
    other = _generate(first, msgspec.structs.replace(IMAGE, seed=4))
    assert numpy.abs(other - first.decode_float(state)).max() > 1e-3  # the seed matters


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_saved_pipeline_loads_back_to_the_same_image(tmp_path, family):
    pipe = build_tiny_pipeline(family)
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == type(pipe).__name__
    in_memory = models.adapter_for_pipeline(pipe)
    loaded = load_adapter(str(tmp_path))
    assert loaded.family == family
    expected = _generate(in_memory, PARAMS[family])
    assert numpy.abs(_generate(loaded, PARAMS[family]) - expected).max() <= 1e-6


def _through_the_wire(state: RequestState) -> RequestState:
    """What another rank rebuilds: tensors as raw bytes, meta as msgpack."""
    tensors = {
        name: torch.frombuffer(bytearray(t.numpy().tobytes()), dtype=t.dtype).reshape(t.shape)
        for name, t in state.tensors.items()
    }
    return RequestState(tensors, msgspec.msgpack.decode(msgspec.msgpack.encode(state.meta)))


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_encode_runs_the_text_encoders_only_and_the_first_step_sets_the_dit_up(family):
    """Under disaggregation encode runs on the aux pool, denoise on the main one: the DiT's
    set-up (latents, timesteps) belongs with denoise, so the encoded state carries no latents."""
    params = PARAMS[family]
    aux, main = sp_cases.adapter(family), sp_cases.adapter(family)
    state = aux.encode(params)
    assert "latents" not in state.tensors and state.meta["prepared"] is False
    moved = _through_the_wire(state)  # to a rank of the denoise pool
    main.denoise(moved, 0, params.steps, None)
    assert moved.meta["prepared"] is True
    numpy.testing.assert_array_equal(main.decode_float(moved), _generate(aux, params))


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_state_resumes_bit_exactly_after_serialization(family):
    model = sp_cases.adapter(family)
    params = msgspec.structs.replace(PARAMS[family], steps=4)
    whole = model.encode(params)
    chunked = copy.deepcopy(whole)
    model.denoise(whole, 0, 4, None)
    for begin, end in [(0, 1), (1, 3), (3, 4)]:
        chunked = _through_the_wire(chunked)
        model.denoise(chunked, begin, end, None)
    assert torch.equal(chunked.tensors["latents"], whole.tensors["latents"])
    assert chunked.meta == whole.meta


def test_state_nbytes_tracks_the_real_state():
    model = sp_cases.adapter("pixart")
    state = model.encode(IMAGE)
    model.denoise(state, 0, 2, None)  # DPM-Solver history filled
    predicted = model.state_nbytes(IMAGE)
    assert 0.5 * state.nbytes() <= predicted <= 2 * state.nbytes()


def test_bad_requests_get_clear_errors():
    model = sp_cases.adapter("flux")
    with pytest.raises(AdapterError, match="multiples of 4"):
        model.encode(msgspec.structs.replace(IMAGE, height=21))
    with pytest.raises(AdapterError, match="frames must be 1"):
        model.encode(msgspec.structs.replace(IMAGE, frames=5))
    state = model.encode(IMAGE)
    before = copy.deepcopy(state)
    with pytest.raises(AdapterError, match="at step 0"):
        model.denoise(state, 1, 2, None)
    with pytest.raises(AdapterError, match="at step 0"):
        model.denoise(state, 0, IMAGE.steps + 1, None)
    with pytest.raises(AdapterError, match="decode at step 0"):
        model.decode(state)
    assert all(torch.equal(state.tensors[k], before.tensors[k]) for k in before.tensors)  # nothing lost
    model.denoise(state, 0, IMAGE.steps, None)
    assert model.decode(state)[0].shape == (20, 28, 3)


def test_unloadable_models_are_refused(tmp_path):
    with pytest.raises(AdapterError, match="no model_index.json"):
        load_adapter(str(tmp_path))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(AdapterError, match="FluxPipeline"):
        load_adapter(str(tmp_path))


def _plain_pipeline_call(family: str, pipe, params: GenParams) -> numpy.ndarray:
    """The diffusers pipeline's own __call__ with the adapter's defaults."""
    common = dict(prompt=params.prompt, height=params.height, width=params.width,
                  num_inference_steps=params.steps, output_type="np",
                  generator=torch.Generator().manual_seed(params.seed))
    extra = {
        "flux": lambda: dict(guidance_scale=3.5, max_sequence_length=pipe.tokenizer_2.model_max_length),
        "wan": lambda: dict(negative_prompt=params.negative_prompt, guidance_scale=5.0, num_frames=params.frames,
                            max_sequence_length=pipe.tokenizer.model_max_length),
        "qwenimage": lambda: dict(negative_prompt=params.negative_prompt or None, true_cfg_scale=4.0),
        "pixart": lambda: dict(negative_prompt=params.negative_prompt, guidance_scale=4.5,
                               use_resolution_binning=False, max_sequence_length=pipe.tokenizer.model_max_length),
    }[family]()
    return numpy.asarray(pipe(**common, **extra)[0], dtype=numpy.float32)


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_trajectory_tasks_equal_the_plain_diffusers_pipeline(family):
    """encode -> denoise chunks -> decode gives the pipeline's own image: the
    adapter re-cuts the loop without changing it, and width-1 hooks are inert."""
    model = sp_cases.adapter(family)
    params = msgspec.structs.replace(PARAMS[family], negative_prompt="blurry" if family == "qwenimage" else "")
    if family == "pixart":  # the PixArt pipeline insists on multiples of 8 whatever its VAE
        params = msgspec.structs.replace(params, height=24, width=32)
    state = model.encode(params)
    model.denoise(state, 0, 1, None)
    model.denoise(state, 1, params.steps, None)
    ours = model.decode_float(state)
    theirs = _plain_pipeline_call(family, model.pipe, params).reshape(ours.shape)
    assert numpy.abs(ours - theirs).max() <= 1e-6


def test_processor_swap_keeps_the_call_signature():
    import inspect

    from diffusers.models.attention_processor import AttnProcessor2_0

    from gfdit.workers.sp_attention import UlyssesAttnProcessor2_0

    ours = inspect.signature(UlyssesAttnProcessor2_0.__call__).parameters
    assert list(ours) == list(inspect.signature(AttnProcessor2_0.__call__).parameters)
    model = sp_cases.adapter("pixart")
    processors = {type(p) for p in model.pipe.transformer.attn_processors.values()}
    assert processors == {UlyssesAttnProcessor2_0}


@pytest.mark.parametrize("family", sorted(PARAMS))
def test_limits_state_what_check_refuses(family):
    # the server refuses at intake from these limits; they must agree with the adapter's own check
    from gfdit.server.config import ServerConfig
    from gfdit.server.intake import InvalidSubmit, build_request
    from gfdit.protocol import Submit

    model = sp_cases.adapter(family)
    limits = model.limits()
    assert limits.family == family and limits.video == model.video and limits.pixel_multiple == model.pixel_multiple()
    side = 2 * math.lcm(8, limits.pixel_multiple)  # the server's own rule: multiples of 8
    good = msgspec.structs.replace(PARAMS[family], height=side, width=side)
    wrong_frames = msgspec.structs.replace(good, frames=good.frames + 1)
    wrong_size = msgspec.structs.replace(good, height=good.height + 1)
    config = ServerConfig(max_pixels=1 << 30)
    for params in (wrong_frames, wrong_size):
        with pytest.raises(AdapterError):
            model.check(params)
        with pytest.raises(InvalidSubmit):
            build_request(Submit(params=params), 0.0, config, "r", limits=limits)
    model.check(good)
    build_request(Submit(params=good), 0.0, config, "r", limits=limits)
    if family == "wan":
        assert limits.frame_step == model.pipe.vae_scale_factor_temporal and limits.max_side > 0
