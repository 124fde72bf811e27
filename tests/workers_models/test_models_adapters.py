"""Model adapters at width 1: the tiny model, save_pretrained -> load_adapter,
request state that survives serialization bit-exactly, and clear errors."""

from __future__ import annotations

import copy
import json

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
