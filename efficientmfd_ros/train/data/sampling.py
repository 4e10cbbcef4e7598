"""A resumable, seeded, rank-sharded sampler over a MixedDataset's weighted items.

Epoch `e` draws `len(dataset)` items with replacement by the datasets' weights from a generator
seeded with `(seed, e)`, so the order depends only on the seed and the epoch: a resumed run skips
the items it already trained on (`set_epoch(e, start)`) and sees the same batches as an
uninterrupted one. Under DDP each rank takes every `world_size`-th item of the same draw.
"""
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    """Yields dataset indices; `weights` `(N,)` float64 per-item probabilities."""

    def __init__(self, weights: torch.Tensor, seed: int = 0, rank: int = 0, world_size: int = 1):
        if weights.dim() != 1 or weights.numel() == 0:
            raise ValueError('EpochSampler needs a non-empty 1-D weight vector')
        if not 0 <= rank < world_size:
            raise ValueError(f'rank {rank} outside world size {world_size}')
        self.weights = weights.double()
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.per_rank = -(-weights.numel() // world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0):
        """Draw epoch `epoch`'s order and skip its first `start` items (of this rank)."""
        if not 0 <= start <= self.per_rank:
            raise ValueError(f'start {start} outside [0, {self.per_rank}]')
        self.epoch = int(epoch)
        self.start = int(start)

    def order(self) -> torch.Tensor:
        """This rank's full index order `(per_rank,)` int64 for the current epoch."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        drawn = torch.multinomial(self.weights, self.per_rank * self.world_size,
                                  replacement=True, generator=gen)
        return drawn[self.rank::self.world_size]

    def __iter__(self):
        return iter(self.order()[self.start:].tolist())

    def __len__(self):
        return self.per_rank - self.start
