"""`build_model(cfg)` and checkpoints that carry their own model configuration.

A checkpoint is a dict `{model (state dict), model_config (ModelConfig.to_dict()), class_names,
input_size [h, w], normalization {mean, std}, train_config, code_version}` plus any extra keys the
trainer adds. It is written atomically and read with `torch.load(weights_only=True)`.
"""
import os
from pathlib import Path
import typing

import torch

from efficientmfd_ros import __version__
from efficientmfd_ros.model.config import ModelConfig, ModelConfigError
from efficientmfd_ros.model.efficientmfd import EfficientMFD
from efficientmfd_ros.model.safe_load import load_weights_only

REQUIRED_KEYS = ('model', 'model_config', 'class_names', 'input_size', 'normalization',
                 'train_config', 'code_version')


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not match the model it describes."""


def build_model(cfg: ModelConfig, load_backbone_weights: bool = True) -> EfficientMFD:
    """The network of `cfg`; `load_backbone_weights=False` skips pretrained backbone files
    (used when a checkpoint's weights follow)."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f'build_model needs a ModelConfig, got {type(cfg).__name__}')
    return EfficientMFD(cfg, load_backbone_weights=load_backbone_weights)


def save_checkpoint(path: str | Path, model: EfficientMFD, cfg: ModelConfig | None = None,
                    extra: dict | None = None, weights_dtype: torch.dtype | None = None) -> Path:
    """Write `model`'s weights and configuration to `path` atomically (temporary file + rename).

    `extra` may carry `train_config` (a plain dict) and further plain keys (iteration, metrics...);
    it cannot override the model's own entries. `weights_dtype=torch.float16` stores the floating
    tensors at half the size (a deployable file; `load_checkpoint` restores float32 modules); a
    value that float16 cannot hold raises ValueError instead of being written as inf.
    """
    cfg = cfg or model.cfg
    extra = dict(extra or {})
    clash = sorted(set(extra) & (set(REQUIRED_KEYS) - {'train_config'}))
    if clash:
        raise ValueError(f'extra must not override checkpoint keys {clash}')
    ckpt = {
        **extra,
        'model': _state_as(model.state_dict(), weights_dtype),
        'model_config': cfg.to_dict(),
        'class_names': list(cfg.class_names),
        'input_size': list(cfg.input_size),
        'normalization': cfg.normalization,
        'train_config': extra.get('train_config'),
        'code_version': __version__,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _state_as(state: dict, dtype: torch.dtype | None) -> dict:
    out = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            cast = value.to(dtype)
            if not torch.isfinite(cast).all() and torch.isfinite(value).all():
                raise ValueError(f'{key}: values beyond the range of {dtype}')
            value = cast
        out[key] = value
    return out


def read_checkpoint(path: str | Path, map_location: typing.Any = 'cpu') -> dict:
    """The checkpoint dict at `path`, checked for the required keys; CheckpointError otherwise."""
    ckpt = load_weights_only(path, CheckpointError, 'checkpoint not found',
                             'cannot read checkpoint (corrupt, truncated or not a weights-only '
                             'torch file)', map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a checkpoint dict, got {type(ckpt).__name__}')
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f'{path}: not an EfficientMFD checkpoint, missing keys {missing}')
    return ckpt


def load_checkpoint(path: str | Path,
                    map_location: typing.Any = 'cpu') -> tuple[EfficientMFD, ModelConfig, dict]:
    """Rebuild the model from a checkpoint alone: `(model in eval mode, ModelConfig, ckpt dict)`.

    The model is moved to `map_location` when that names a device.
    """
    ckpt = read_checkpoint(path, map_location)
    try:
        cfg = ModelConfig.from_dict(ckpt['model_config'])
    except ModelConfigError as exc:
        raise CheckpointError(f'{path}: invalid model_config: {exc}') from exc
    model = build_model(cfg, load_backbone_weights=False)
    state = ckpt['model']
    own = model.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: "model" is not a state dict')
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state)
                   if not torch.is_tensor(state[k]) or state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f'{path}: weights do not match the model its config describes: '
            f'{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected '
            f'(e.g. {unexpected[:3]}), {len(wrong)} of another shape (e.g. {wrong[:3]})')
    model.load_state_dict(state)
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval(), cfg, ckpt
