"""An exponential moving average of the model's weights, the copy that is validated and saved.

On 32 labelled frames one AdamW step moves the head's AP by several points; the average over
the last ~1/(1 - decay) steps is steadier than any single step, so validation and the saved
checkpoints read the average. Floating-point parameters and buffers are averaged; integer
buffers (e.g. BatchNorm's step counter) are copied.
"""
import copy
from dataclasses import dataclass

import torch

from efficientmfd_ros.core.config_io import ConfigError


@dataclass
class EMAConfig:
    """`decay` 0 disables the average (the raw weights are validated and saved)."""

    decay: float = 0.0  # per-step decay of the average once warmed up, e.g. 0.998
    warmup_steps: int = 100  # the decay ramps as (1 + n) / (warmup_steps + n) up to `decay`

    def validate(self):
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f'ema.decay must be in [0, 1), got {self.decay}')
        if self.warmup_steps < 0:
            raise ConfigError(f'ema.warmup_steps must be >= 0, got {self.warmup_steps}')


class ModelEMA:
    """A frozen copy of `model` (in eval mode) updated by `update(model)` after each step."""

    def __init__(self, model: torch.nn.Module, cfg: EMAConfig):
        self.cfg = cfg
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def decay(self) -> float:
        """The decay used by the next update: small at first, so the average forgets the
        initial weights quickly, then `cfg.decay`."""
        n = self.updates
        ramp = (1 + n) / (self.cfg.warmup_steps + n) if self.cfg.warmup_steps else 1.0
        return min(self.cfg.decay, ramp)

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        d = self.decay()
        current = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = current[name].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value.to(avg.dtype), alpha=1 - d)
            else:
                avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return {'module': self.module.state_dict(), 'updates': self.updates}

    def load_state_dict(self, state: dict):
        self.module.load_state_dict(state['module'])
        self.updates = int(state['updates'])
