"""The resumable training state (`last.pt`): weights, optimizer, schedule, step and RNG states.

Written atomically (temporary file, then `os.replace`), so a run killed while saving keeps the
previous state; read with `torch.load(weights_only=True)`. This file is for resuming only; the
weights the runtime loads are written by `model.factory.save_checkpoint`.
"""
import os
from pathlib import Path
import random

import torch

from efficientmfd_ros.model.safe_load import load_weights_only

STATE_VERSION = 1


class TrainStateError(RuntimeError):
    """A training state file is missing, unreadable or from an incompatible run."""


def rng_state(noise_generator: torch.Generator) -> dict:
    state = {'python': random.getstate(), 'torch': torch.get_rng_state(),
             'noise': noise_generator.get_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, noise_generator: torch.Generator):
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state['torch'])
    noise_generator.set_state(state['noise'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_state(path, **state):
    """`torch.save(dict(version, **state))` to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    try:
        torch.save({'version': STATE_VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_state(path) -> dict:
    state = load_weights_only(path, TrainStateError, 'no training state to resume from at',
                              'cannot read training state')
    if not isinstance(state, dict) or state.get('version') != STATE_VERSION:
        raise TrainStateError(f'{path} is not a version-{STATE_VERSION} training state')
    return state
