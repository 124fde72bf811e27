"""Cross-memory reads (shm's direct path), in one process: self-reads and refusals."""

from __future__ import annotations

import os

import pytest
import torch

from gfdit.comm import cma


def test_comm_cma_reads_bytes_into_several_buffers():
    if not cma.can_read(os.getpid(), torch.zeros(8, dtype=torch.uint8).data_ptr()):
        pytest.skip("process_vm_readv is not permitted here")
    src = torch.arange(100, dtype=torch.uint8)
    a, b = torch.zeros(30, dtype=torch.uint8), torch.zeros(70, dtype=torch.uint8)
    cma.read_into(os.getpid(), src.data_ptr() + 10, 60, [a, b], 20)
    assert torch.equal(a[20:], src[10:20]) and torch.equal(b[:50], src[20:70])
    assert not a[:20].any() and not b[50:].any()


def test_comm_cma_refuses_a_missing_process():
    gone = 2**22 + 4321  # above the default pid_max of 4194304
    assert not cma.can_read(gone, 4096)
    with pytest.raises(OSError, match="process_vm_readv from pid"):
        cma.read_into(gone, 4096, 8, [torch.empty(8, dtype=torch.uint8)], 0)
