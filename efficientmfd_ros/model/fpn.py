"""Feature pyramid network over the backbone's C2..C5."""
import torch
from torch import nn
import torch.nn.functional as F

from efficientmfd_ros.model.config import LEVELS, FPNConfig


class FPN(nn.Module):
    """Top-down pyramid: 1x1 lateral convs, nearest 2x upsampling and addition, 3x3 output convs.

    `forward([C2, C3, C4, C5]) -> [P_k for k in cfg.levels]`, each `(B, channels, H/2**k, W/2**k)`.
    Only the C levels behind the configured P levels are read.
    The whole module is linear (no activation), which `EfficientMFD.extract` relies on.
    """

    def __init__(self, cfg: FPNConfig, in_channels: list[int]):
        super().__init__()
        self.first = LEVELS.index(cfg.levels[0])
        used = in_channels[self.first:self.first + len(cfg.levels)]
        self.lateral = nn.ModuleList(nn.Conv2d(c, cfg.channels, 1) for c in used)
        self.output = nn.ModuleList(nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1)
                                    for _ in used)
        for conv in [*self.lateral, *self.output]:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        feats = feats[self.first:self.first + len(self.lateral)]
        top = self.lateral[-1](feats[-1])
        outs = [self.output[-1](top)]
        for index in range(len(feats) - 2, -1, -1):
            lateral = self.lateral[index](feats[index])
            top = lateral + F.interpolate(top, size=lateral.shape[-2:], mode='nearest')
            outs.insert(0, self.output[index](top))
        return outs
