"""Single-process or `torchrun` (DDP) setup for the trainer.

Under torchrun (`WORLD_SIZE` > 1 in the environment) each process joins the default group (NCCL
on CUDA, Gloo on CPU) and uses the GPU of its `LOCAL_RANK`; otherwise nothing is initialised.
"""
import math
import os

import torch
import torch.distributed as dist

from efficientmfd_ros.runtime.backend_torch import auto_device


class TrainForward(torch.nn.Module):
    """Makes `forward_train` the `forward` that DistributedDataParallel hooks."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, rgb, thermal, targets, generator):
        return self.model.forward_train(rgb, thermal, targets, generator)


def setup_distributed(device_name: str):
    """`(rank, world_size, device)` for `device_name` ('auto', 'cpu', 'cuda', 'cuda:1'...)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    device = torch.device(auto_device(device_name))
    if device.type == 'cuda' and (world > 1 or device.index is None):
        device = torch.device('cuda', local_rank if world > 1 else torch.cuda.current_device())
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    return (dist.get_rank() if world > 1 else 0), world, device


def all_finite(value: float, world_size: int, device) -> bool:
    """Whether `value` is finite on every rank (a collective under DDP), so that all ranks skip
    a step together and no rank waits on a collective another one skipped."""
    ok = math.isfinite(value)
    if world_size > 1:
        flag = torch.tensor(1.0 if ok else 0.0, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = bool(flag.item() > 0)
    return ok


def barrier(world_size: int):
    if world_size > 1:
        dist.barrier()


def shutdown(world_size: int):
    if world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
