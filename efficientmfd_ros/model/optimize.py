"""Inference-only rewrites of a trained model: BatchNorm folding and memory layout.

On a CPU, the backbone of the lite model is dominated by memory traffic on its large early
activations; folding each BatchNorm into the convolution before it and running channels-last
removes most of it. The rewritten model computes the same function (to float rounding) but its
state dict no longer matches a checkpoint: never save it.
"""
import typing

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

_NORMS = (nn.BatchNorm2d, FrozenBatchNorm2d)


def _conv_norm_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, norm name) pairs where the norm is applied directly to the conv's output,
    found by running `example` through `module` once."""
    names = {id(m): n for n, m in module.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []
    hooks: list = []

    # Outputs are kept referenced so that no later tensor can reuse a recorded id.
    def on_conv(mod: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        produced[id(output)] = (names[id(mod)], output)

    def on_norm(mod: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        source = produced.get(id(inputs[0]))
        if source is not None and source[1] is inputs[0]:
            pairs.append((source[0], names[id(mod)]))

    for mod in module.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(on_conv))
        elif isinstance(mod, _NORMS):
            hooks.append(mod.register_forward_hook(on_norm))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    return pairs


@torch.no_grad()
def fold_batchnorm(module: nn.Module, example: torch.Tensor) -> int:
    """Fold every BatchNorm (in eval mode, or frozen) that directly follows a Conv2d into that
    conv and replace it by Identity. `example` is any valid input of `module` (small is fine).
    Returns the number of folded norms.

    Assumes, as in the ResNet, MobileNetV2 and EfficientNet backbones, that a conv whose output is
    normalized feeds nothing else.
    """
    module.eval()
    count = 0
    for conv_name, norm_name in _conv_norm_pairs(module, example):
        conv = typing.cast(nn.Conv2d, module.get_submodule(conv_name))
        norm: typing.Any = module.get_submodule(norm_name)  # BatchNorm2d or FrozenBatchNorm2d
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias,
                                 requires_grad=False)
        parent_name, _, attr = norm_name.rpartition('.')
        setattr(module.get_submodule(parent_name), attr, nn.Identity())
        count += 1
    return count
