"""ORPPT fusion network (paper §3.2): pixel feature mining, region feature refinement, decoder.

The fused result is a luminance image; colour is restored from the RGB input (`model/color.py`).
With `prior: laplacian` the network starts from a classical Laplacian-pyramid fusion of the two
inputs and its decoder predicts a correction to it (zero at initialisation): the pyramid keeps
every edge of either camera at no training cost, and the learned part spends its capacity on what
the pyramid cannot know, the object-aware intensity of the paper's loss (warm targets bright).
"""
import typing

import torch
from torch import nn
import torch.nn.functional as F

from efficientmfd_ros.model.config import FusionConfig
from efficientmfd_ros.model.pyramid import expand, laplacian_fuse


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class PixelFeatureMining(nn.Module):
    """PFMM: `forward(images (B,K,H,W)) -> (B, pixel_channels, H, W)` features of the stacked
    full-resolution inputs (Y, thermal and, with a prior, the prior image)."""

    def __init__(self, in_channels: int, channels: int, layers: int):
        super().__init__()
        self.body = nn.Sequential(_conv_relu(in_channels, channels),
                                  *[_conv_relu(channels, channels) for _ in range(layers - 1)])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class RegionFeatureRefine(nn.Module):
    """One RFRM branch on an FPN level `o_l (B,C,h,w)`.

    phi = phi_l(o_l) `(B,Cr,h,w)`; masks A_l = ReLU(BN(R_l . phi)) `(B,M,h,w)` with the M learnable
    region prompts R_l `(M,Cr)` (Eq. 3); region features b_m = a_m * phi (Eq. 4), concatenated over
    m to `(B, M*Cr, h, w)`. `forward` returns this branch's share W_l . b of the 1x1 reduce conv,
    `(B, reduce_channels, h, w)`, before bias and ReLU.

    W_l . concat_m(a_m * phi) equals sum_m a_m * (W_l,m . phi), so the M*Cr-channel concatenation
    is never materialised; a 1x1 conv and bilinear upsampling commute, so reducing before
    upsampling gives what reducing the upsampled, summed branches would give, at a fraction of the
    memory.
    """

    def __init__(self, in_channels: int, region_channels: int, num_prompts: int,
                 out_channels: int):
        super().__init__()
        self.num_prompts = num_prompts
        self.out_channels = out_channels
        self.phi = nn.Conv2d(in_channels, region_channels, 3, padding=1)
        prompts = torch.randn(num_prompts, region_channels) / region_channels ** 0.5
        self.prompts = nn.Parameter(prompts)
        self.mask_norm = nn.BatchNorm2d(num_prompts)
        # The per-prompt blocks of W_l: (M * reduce_channels, Cr, 1, 1).
        self.reduce = nn.Conv2d(region_channels, num_prompts * out_channels, 1, bias=False)

    def masks(self, phi: torch.Tensor) -> torch.Tensor:
        """A_l = ReLU(BN(R_l . phi)): `(B,Cr,h,w) -> (B,M,h,w)`."""
        logits = F.conv2d(phi, self.prompts[:, :, None, None])
        return F.relu(self.mask_norm(logits))

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        phi = self.phi(level)
        masks = self.masks(phi)
        per_prompt = self.reduce(phi)
        b, _, h, w = per_prompt.shape
        per_prompt = per_prompt.reshape(b, self.num_prompts, self.out_channels, h, w)
        return (per_prompt * masks.unsqueeze(2)).sum(dim=1)


class ORPPTFusion(nn.Module):
    """`forward(y (B,1,H,W), thermal (B,1,H,W), levels [o_l (B,C,h_l,w_l)]) -> (B,1,H,W)` in [0,1].

    `y` is the RGB input's luminance and `thermal` the thermal image, both in [0,1]; `levels` are
    the FPN maps named by `cfg.rfrm_levels`, in that order.
    """

    def __init__(self, cfg: FusionConfig, fpn_channels: int):
        super().__init__()
        self.cfg = cfg
        self.uses_prior = cfg.prior != 'none'
        inputs = 3 if self.uses_prior else 2
        self.pixel = PixelFeatureMining(inputs, cfg.pixel_channels, cfg.pixel_layers)
        self.regions = nn.ModuleList(
            RegionFeatureRefine(fpn_channels, cfg.region_channels, m, cfg.reduce_channels)
            for m in cfg.prompts_per_level)
        self.reduce_bias = nn.Parameter(torch.zeros(1, cfg.reduce_channels, 1, 1))
        self.highlight = nn.Conv2d(cfg.reduce_channels, cfg.pixel_channels, 1)
        widths = [cfg.pixel_channels, *cfg.decoder_channels]
        self.decoder = nn.Sequential(*[_conv_relu(a, b) for a, b in zip(widths[:-1], widths[1:])],
                                     nn.Conv2d(widths[-1], 1, 3, padding=1))
        if self.uses_prior:
            # The untrained network outputs the prior itself.
            last = typing.cast(nn.Conv2d, self.decoder[-1])
            nn.init.zeros_(last.weight)
            nn.init.zeros_(typing.cast(torch.Tensor, last.bias))

    def prior(self, y: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
        """The classical fusion the decoder corrects, `(B,1,H,W)` in [0,1]."""
        return laplacian_fuse(y, thermal, self.cfg.prior_levels, self.cfg.prior_base)

    def region_features(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Reduced region features `(B, reduce_channels, h, w)` at the finest listed level."""
        size = max(((int(lv.shape[-2]), int(lv.shape[-1])) for lv in levels),
                   key=lambda hw: hw[0] * hw[1])
        total = None
        for branch, level in zip(self.regions, levels):
            part = branch(level)
            if part.shape[-2:] != size:
                part = expand(part, size)
            total = part if total is None else total + part
        assert total is not None  # at least one region level (FusionConfig.validate)
        return F.relu(total + self.reduce_bias)

    def highlight_gate(self, levels: list[torch.Tensor],
                       size: typing.Sequence[int]) -> torch.Tensor:
        """`1 + sigmoid(highlight(regions))`, `(B, pixel_channels, H, W)`: the PFMM features are
        scaled by it (`p * h + p`). Computed at the region features' resolution and upsampled
        once, which costs a fraction of working on full-resolution region features."""
        gate = 1.0 + torch.sigmoid(self.highlight(self.region_features(levels)))
        return expand(gate, size)

    def forward(self, y: torch.Tensor, thermal: torch.Tensor,
                levels: list[torch.Tensor]) -> torch.Tensor:
        prior = self.prior(y, thermal) if self.uses_prior else None
        stacked = torch.cat([y, thermal] + ([] if prior is None else [prior]), dim=1)
        pixels = self.pixel(stacked)
        out = self.decoder(pixels * self.highlight_gate(levels, pixels.shape[-2:]))
        if not self.uses_prior:
            return torch.sigmoid(out)
        return (prior + out).clamp(0.0, 1.0)
