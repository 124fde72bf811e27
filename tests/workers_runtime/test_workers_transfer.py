"""The state transfer itself, over a real 2-process gloo world: every dtype and
shape arrives bit-exact with its meta, and a sender without the state makes the
receiver fail with a clear error instead of hanging."""

import os
import tempfile
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gfdit.workers.migration import MigrationError, PendingSends, post_send, receive

pytestmark = pytest.mark.slow


def state():
    g = torch.Generator().manual_seed(5)
    return {
        "latents": torch.randn(1, 37, 16, generator=g),
        "half": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "ids": torch.arange(12, dtype=torch.int64).reshape(3, 4),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
        "strided": torch.randn(6, 4, generator=g).t(),  # not contiguous
        "generator": g.get_state(),
    }


META = {"step": 3, "steps": 8, "params": {"prompt": "p", "seed": 1}, "scheduler": {"shift": 3.0}}


def _worker(rank, init_file, out_file):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    try:
        if rank == 0:
            pending = PendingSends()
            post_send(1, 7, state(), META, pending)
            post_send(1, 8, None, None, pending, missing_reason="rank 0 holds no state for 'x'")
            pending.wait_all(timeout_s=30)
            return
        tensors, meta, _ = receive(0, 7)
        expected = state()
        same = meta == META and set(tensors) == set(expected) and all(
            tensors[k].dtype == v.dtype and tensors[k].shape == v.shape and torch.equal(tensors[k], v)
            for k, v in expected.items())
        try:
            receive(0, 8)
            missing = "no error"
        except MigrationError as exc:
            missing = str(exc)
        with open(out_file, "w") as f:
            f.write(f"{same}\n{missing}\n")
    finally:
        dist.destroy_process_group()


def test_state_moves_bit_exact_and_a_missing_state_is_a_clear_error():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        mp.start_processes(_worker, args=(os.path.join(tmp, "init"), out), nprocs=2, start_method="spawn")
        same, missing = open(out).read().splitlines()
    assert same == "True"
    assert missing == "rank 0 could not send the state: rank 0 holds no state for 'x'"
