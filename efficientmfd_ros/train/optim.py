"""AdamW parameter groups and the warmup + step/cosine learning-rate factor."""
import math

import torch

from efficientmfd_ros.train.config import OptimConfig, ScheduleConfig


def param_groups(model: torch.nn.Module, cfg: OptimConfig, backbone_prefix='backbone.'):
    """AdamW groups: backbone / rest x decayed (weights with >= 2 dims) / not decayed (biases,
    norm scales, 1-D prompts). Frozen parameters are left out; empty groups are dropped."""
    backbone_lr = cfg.lr if cfg.backbone_lr is None else cfg.backbone_lr
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = 'backbone' if name.startswith(backbone_prefix) else 'rest'
        decay = param.dim() >= 2
        key = (part, decay)
        if key not in groups:
            groups[key] = {'params': [], 'name': f'{part}{"" if decay else "_no_decay"}',
                           'lr': backbone_lr if part == 'backbone' else cfg.lr,
                           'weight_decay': cfg.weight_decay if decay else 0.0}
        groups[key]['params'].append(param)
    return [g for g in groups.values() if g['params'] and g['lr'] > 0]


def build_optimizer(model, cfg: OptimConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg)
    if not groups:
        raise ValueError('the model has no trainable parameters')
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas),
                             weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: ScheduleConfig) -> float:
    """Multiplier of every group's base lr at optimizer step `step` (0-based)."""
    if step < cfg.warmup_iters:
        alpha = step / cfg.warmup_iters
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if cfg.policy == 'step':
        decay = cfg.gamma ** sum(1 for m in cfg.milestones if step >= m)
    else:
        span = max(cfg.iterations - cfg.warmup_iters, 1)
        progress = min(max(step - cfg.warmup_iters, 0) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        decay = cfg.min_lr_factor + (1 - cfg.min_lr_factor) * cosine
    return warm * decay


def build_scheduler(optimizer, cfg: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
