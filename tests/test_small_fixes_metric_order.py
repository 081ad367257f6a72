"""Metrics averaged across torchrun processes keep the trainer's order (the console shows them "in your order")."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from genframe.training.distributed import mean_across


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="this PyTorch build has no torch.distributed with gloo")
def test_metrics_averaged_across_processes_keep_the_trainers_order():
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # one process: a real collective
    try:
        averaged = mean_across({"loss": 1.5, "reg": 0.25, "cdiv": -2.0, "real": 3.0, "fake": 0.5},
                               torch.device("cpu"))
    finally:
        dist.destroy_process_group()
    assert list(averaged) == ["loss", "reg", "cdiv", "real", "fake"]  # not sorted: cdiv, fake, loss, real, reg
    assert averaged == {"loss": 1.5, "reg": 0.25, "cdiv": -2.0, "real": 3.0, "fake": 0.5}
