"""Typed model configuration: dataclasses with YAML/dict round trip and validation.

`ModelConfig.from_yaml(path)`, `ModelConfig.from_dict(d)` and `cfg.to_dict()` round-trip exactly
(`from_dict(cfg.to_dict()) == cfg`); an unknown key or a bad value raises `ModelConfigError` naming
the section and field (read by the project's one typed reader, `core/config_io.py`). Sequences are
stored as tuples and written back as lists.
"""
from dataclasses import dataclass, field, replace
import math
from pathlib import Path
import typing

import yaml

from efficientmfd_ros.core.config_io import ConfigError, from_plain, to_plain

BACKBONES = ('resnet18', 'resnet34', 'resnet50', 'mobilenet_v2', 'efficientnet_lite0')
NORMS = ('bn', 'frozen_bn')
LEVELS = ('p2', 'p3', 'p4', 'p5')
FUSION_PRIORS = ('none', 'laplacian')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelConfigError(ConfigError):
    """A model configuration key or value is invalid."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ModelConfigError(message)


@dataclass
class BackboneConfig:
    """The shared RGB/thermal backbone; it returns C2..C5 (strides 4, 8, 16, 32)."""

    name: str = 'resnet50'  # one of BACKBONES
    pretrained: bool = False  # ImageNet weights (bundled for mobilenet_v2, efficientnet_lite0)
    weights_path: str | None = None  # a local state dict; overrides the bundled weights
    frozen_stages: int = 0  # 0: train all; 1: freeze the stem; k: stem and C2..C(k) too (max 5)
    norm: str = 'bn'  # 'bn' trains BatchNorm; 'frozen_bn' fixes its statistics and affine

    def validate(self) -> None:
        _check(self.name in BACKBONES,
               f'backbone.name must be one of {BACKBONES}, got {self.name!r}')
        _check(self.norm in NORMS, f'backbone.norm must be one of {NORMS}, got {self.norm!r}')
        _check(0 <= self.frozen_stages <= 5,
               f'backbone.frozen_stages must be in [0, 5], got {self.frozen_stages}')
        _check(not (self.name.startswith('resnet') and self.pretrained and not self.weights_path),
               f'backbone {self.name}: no bundled weights; pretrained needs backbone.weights_path')


@dataclass
class FPNConfig:
    """Feature pyramid over consecutive levels of p2..p5 (stride 2**k for level pk)."""

    channels: int = 256  # width of every pyramid level
    levels: tuple = ('p2', 'p3', 'p4', 'p5')  # consecutive, ascending

    def validate(self) -> None:
        _check(self.channels > 0, f'fpn.channels must be positive, got {self.channels}')
        _check(len(self.levels) > 0 and all(lv in LEVELS for lv in self.levels),
               f'fpn.levels must be drawn from {LEVELS}, got {self.levels}')
        idx = [LEVELS.index(lv) for lv in self.levels]
        _check(idx == list(range(idx[0], idx[0] + len(idx))),
               f'fpn.levels must be consecutive and ascending, got {self.levels}')


@dataclass
class FusionConfig:
    """ORPPT fusion: pixel branch (PFMM), region branches (RFRM) on FPN levels, decoder."""

    pixel_channels: int = 32  # PFMM width on the full-resolution (Y, thermal) input
    pixel_layers: int = 2  # 3x3 conv + ReLU layers in the PFMM
    rfrm_levels: tuple = ('p2', 'p3', 'p4')  # one RFRM branch per listed FPN level
    prompts_per_level: tuple = (8, 8, 8)  # M_l learnable region prompts per branch
    region_channels: int = 64  # width of phi_l(o_l) and of each prompt R_l
    reduce_channels: int = 32  # width after the 1x1 conv + ReLU that reduces the region features
    decoder_channels: tuple = (32, 32, 16, 16)  # 3x3 conv + ReLU layers before the final 3x3 conv
    # 'laplacian': the decoder predicts a correction to an in-network Laplacian-pyramid fusion of
    # (Y, thermal) (`model/pyramid.py`), which the PFMM also sees; 'none': it predicts Y outright
    # (the default, so checkpoints written before the option load as they were trained).
    prior: str = 'none'
    prior_levels: int = 5  # detail bands of the prior (capped by the image size)
    prior_base: str = 'max'  # 'max' or 'mean' of the two low-pass bases

    def validate(self, fpn: FPNConfig) -> None:
        _check(self.pixel_channels > 0 and self.pixel_layers > 0,
               'fusion.pixel_channels and fusion.pixel_layers must be positive')
        _check(len(self.rfrm_levels) > 0, 'fusion.rfrm_levels must name at least one FPN level')
        for lv in self.rfrm_levels:
            _check(lv in fpn.levels,
                   f'fusion.rfrm_levels: {lv!r} is not in fpn.levels {fpn.levels}')
        _check(len(set(self.rfrm_levels)) == len(self.rfrm_levels),
               f'fusion.rfrm_levels has duplicates: {self.rfrm_levels}')
        _check(len(self.prompts_per_level) == len(self.rfrm_levels),
               f'fusion.prompts_per_level needs one M_l per RFRM level ({len(self.rfrm_levels)}), '
               f'got {self.prompts_per_level}')
        _check(all(m > 0 for m in self.prompts_per_level),
               'fusion.prompts_per_level must be positive')
        _check(self.region_channels > 0 and self.reduce_channels > 0,
               'fusion.region_channels and fusion.reduce_channels must be positive')
        _check(all(c > 0 for c in self.decoder_channels),
               f'fusion.decoder_channels must be positive, got {self.decoder_channels}')
        _check(self.prior in FUSION_PRIORS,
               f'fusion.prior must be one of {FUSION_PRIORS}, got {self.prior!r}')
        _check(self.prior_levels > 0,
               f'fusion.prior_levels must be positive, got {self.prior_levels}')
        _check(self.prior_base in ('max', 'mean'),
               f"fusion.prior_base must be 'max' or 'mean', got {self.prior_base!r}")


@dataclass
class HeadConfig:
    """CFDP head (DiffusionDet-style) and its box diffusion process."""

    num_classes: int = 6  # must equal len(class_names); logits are per-class sigmoid scores
    num_proposals: int = 500  # N boxes per image
    num_stages: int = 6  # iterative refinement stages
    hidden_dim: int = 256  # proposal feature width; must equal fpn.channels
    dim_feedforward: int = 2048  # FFN width in each stage
    nheads: int = 8  # self-attention heads among proposals
    dropout: float = 0.0  # dropout in attention and FFN
    dynamic_dim: int = 64  # inner width of the dynamic instance interaction
    dynamic_num: int = 2  # generated dynamic layers (fixed at 2: in -> dynamic_dim -> out)
    num_cls_layers: int = 1  # Linear + LayerNorm + ReLU layers before the class logits
    num_reg_layers: int = 3  # Linear + LayerNorm + ReLU layers before the box deltas
    pooler_resolution: int = 7  # RoIAlign output side
    pooler_sampling_ratio: int = 2  # RoIAlign samples per bin side
    pooler_canonical_size: int = 224  # a box of this side pools from p4 (one level per octave)
    prior_prob: float = 0.01  # initial foreground probability (focal-loss bias init)
    bbox_weights: tuple = (2.0, 2.0, 1.0, 1.0)  # delta weights (dx, dy, dw, dh)
    timesteps: int = 1000  # diffusion steps T of the cosine schedule
    sampling_steps: int = 1  # DDIM steps at inference
    signal_scale: float = 2.0  # boxes mapped to [-scale, scale] before noising
    box_renewal: bool = False  # between DDIM steps, re-seed boxes scoring below the threshold
    renewal_threshold: float = 0.5  # score under which a box is re-seeded
    noise_seed: int = 0  # seed of the default noise-box generator (deterministic inference)

    def validate(self) -> None:
        for name in ('num_classes', 'num_proposals', 'num_stages', 'hidden_dim', 'dim_feedforward',
                     'nheads', 'dynamic_dim', 'num_cls_layers', 'num_reg_layers',
                     'pooler_resolution', 'pooler_canonical_size', 'timesteps',
                     'sampling_steps'):
            _check(getattr(self, name) > 0,
                   f'head.{name} must be positive, got {getattr(self, name)}')
        _check(self.hidden_dim % self.nheads == 0,
               f'head.hidden_dim ({self.hidden_dim}) must be divisible by head.nheads '
               f'({self.nheads})')
        _check(self.dynamic_num == 2, f'head.dynamic_num must be 2, got {self.dynamic_num}')
        _check(0.0 < self.prior_prob < 1.0,
               f'head.prior_prob must be in (0, 1), got {self.prior_prob}')
        _check(len(self.bbox_weights) == 4, 'head.bbox_weights needs 4 values')
        _check(self.sampling_steps <= self.timesteps,
               'head.sampling_steps must be <= head.timesteps')
        _check(self.signal_scale > 0 and math.isfinite(self.signal_scale),
               'head.signal_scale must be positive')
        _check(0.0 <= self.dropout < 1.0, f'head.dropout must be in [0, 1), got {self.dropout}')


@dataclass
class ModelConfig:
    """The whole network; `input_size` is the network input `(h, w)`, both multiples of 32."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fpn: FPNConfig = field(default_factory=FPNConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    input_size: tuple = (768, 1024)  # (h, w) of the network input
    class_names: tuple = ('People', 'Car', 'Bus', 'Lamp', 'Motorcycle', 'Truck')
    pixel_mean: tuple = IMAGENET_MEAN  # applied inside the model to RGB and replicated thermal
    pixel_std: tuple = IMAGENET_STD

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.backbone.validate()
        self.fpn.validate()
        self.fusion.validate(self.fpn)
        self.head.validate()
        _check(len(self.input_size) == 2 and all(s > 0 and s % 32 == 0 for s in self.input_size),
               f'input_size must be (h, w), both positive multiples of 32, got {self.input_size}')
        _check(len(self.class_names) == self.head.num_classes,
               f'head.num_classes ({self.head.num_classes}) must equal len(class_names) '
               f'({len(self.class_names)})')
        _check(self.head.hidden_dim == self.fpn.channels,
               f'head.hidden_dim ({self.head.hidden_dim}) must equal fpn.channels '
               f'({self.fpn.channels})')
        _check(len(self.pixel_mean) == 3 and len(self.pixel_std) == 3
               and all(s > 0 for s in self.pixel_std),
               'pixel_mean and pixel_std need 3 values, std positive')

    @property
    def normalization(self) -> dict:
        return {'mean': list(self.pixel_mean), 'std': list(self.pixel_std)}

    def with_num_proposals(self, num: int) -> 'ModelConfig':
        """A copy drawing `num` noise boxes per image (the head's weights do not depend on it)."""
        return replace(self, head=replace(self.head, num_proposals=int(num)))

    def with_input_size(self, size: typing.Sequence[int]) -> 'ModelConfig':
        """A copy run at network input `size = (h, w)` (the network is convolutional; its
        weights do not depend on it). ModelConfigError unless both are multiples of 32."""
        return replace(self, input_size=tuple(int(v) for v in size))

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'ModelConfig':
        return from_plain(cls, data, 'model', error=ModelConfigError)

    @classmethod
    def from_yaml(cls, path: str | Path) -> 'ModelConfig':
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ModelConfigError(f'cannot read model config {path}: {exc}') from exc
        return cls.from_dict(data or {})

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
