"""Functions the width-correctness tests run inside each rank of a LocalPool.

Module-level so they pickle by reference. Each rank builds the tiny model of a
family once (same weights everywhere: fixed seed) and compares sharded denoising
against its own width-1 run of the same request.
"""

from __future__ import annotations

import copy
import itertools

import msgspec
import numpy
import torch

from gfdit.protocol import GenParams
from gfdit.workers.adapter import RequestState, SPContext

_ADAPTERS: dict[str, object] = {}


def adapter(family: str):
    if family not in _ADAPTERS:
        from gfdit.workers import models
        from gfdit.workers.tiny import build_tiny_pipeline

        _ADAPTERS[family] = models.adapter_for_pipeline(build_tiny_pipeline(family))
    return _ADAPTERS[family]


def _prepare(comm, rank_sets) -> None:
    """The static `newgroup` baseline needs its communicators made up front, by
    every rank with the same list; the group-free backends need nothing."""
    prepare = getattr(comm.backend, "prepare", None)
    if prepare is not None:
        pairs = itertools.combinations(range(comm.world_size), 2)
        prepare(sorted({tuple(sorted(r)) for r in [*rank_sets, *pairs] if len(r) > 1}))


def _finish(model, state) -> tuple:
    return state.tensors["latents"].clone(), model.decode_float(state)


def _errors(model, state, reference) -> dict[str, float]:
    latents, image = _finish(model, state)
    return {
        "latents": float((latents - reference[0]).abs().max()),
        "image": float(numpy.abs(image - reference[1]).max()),
    }


def widths(comm, family: str, params: dict, layouts: list[list[tuple[int, ...]]]) -> list[dict]:
    """For each layout (disjoint groups covering some ranks, all running at the
    same time), denoise the whole request on this rank's group and report the
    max abs error against width 1, or None where this rank is in no group."""
    _prepare(comm, [g for layout in layouts for g in layout])
    model = adapter(family)
    params = GenParams(**params)
    start = model.encode(params)
    reference = copy.deepcopy(start)
    model.denoise(reference, 0, params.steps, None)
    reference = _finish(model, reference)
    results = []
    for layout in layouts:
        mine = [g for g in layout if comm.rank in g]
        if not mine:
            results.append(None)
            continue
        state = copy.deepcopy(start)
        model.denoise(state, 0, params.steps, SPContext(comm, comm.group(mine[0])))
        results.append(_errors(model, state, reference))
    return results


def _move(comm, state, holders: tuple[int, ...], group: tuple[int, ...]):
    """Migrate the state to the members of ``group`` that lack it: each receives
    tensors + msgspec-encoded meta from a holder, over a two-rank group."""
    newcomers = [r for r in group if r not in holders]
    for i, dst in enumerate(newcomers):
        src = holders[i % len(holders)]
        if comm.rank not in (src, dst):
            continue
        pair = comm.group((src, dst))
        if comm.rank == src:
            payload = dict(state.tensors)
            payload["__meta__"] = torch.frombuffer(bytearray(msgspec.msgpack.encode(state.meta)), dtype=torch.uint8)
            comm.send_tensors(pair, payload, 1)
        else:
            payload = comm.recv_tensors(pair, 0)
            meta = msgspec.msgpack.decode(payload.pop("__meta__").numpy().tobytes())
            state = RequestState(payload, meta)
    return state if comm.rank in group else None


def trajectory(comm, family: str, params: dict, chunks: list[tuple[int, int, tuple[int, ...]]]) -> dict | None:
    """One request whose chunks run on changing groups; the state moves to new
    members before each chunk and is dropped by ranks that leave. Returns the
    error against width 1 on the last group's members, None elsewhere."""
    _prepare(comm, [group for _, _, group in chunks])
    model = adapter(family)
    params = GenParams(**params)
    first = chunks[0][2]
    state = model.encode(params) if comm.rank in first else None
    holders: tuple[int, ...] = first
    for begin, end, group in chunks:
        state = _move(comm, state, holders, group)
        if state is not None:
            model.denoise(state, begin, end, SPContext(comm, comm.group(group)))
        holders = group
    if state is None:
        return None
    reference = model.encode(params)
    model.denoise(reference, 0, params.steps, None)
    return _errors(model, state, _finish(model, reference))


def unplanned_attention(comm) -> str | None:
    """An attention call the plan does not cover, inside a sharded forward on
    (0, 1): it must refuse rather than attend over a shard."""
    from diffusers.models.transformers import transformer_flux

    from gfdit.workers.ulysses import SequenceParallelError, sharded

    if comm.rank not in (0, 1):
        return None
    adapter("flux")  # installs the dispatch interception
    q = torch.zeros(1, 4, 2, 8)
    with sharded(SPContext(comm, comm.group((0, 1)))):
        try:
            transformer_flux.dispatch_attention_fn(q, q, q)
        except SequenceParallelError as error:
            return str(error)
    return "attended"
