"""Fixtures for the runtime tests: a tiny random-weight checkpoint built here and saved to tmp."""
import numpy as np
import pytest
import torch

from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint

TINY = {
    'input_size': [64, 96],
    'class_names': ['person', 'car'],
    'backbone': {'name': 'resnet18', 'pretrained': False},
    'fpn': {'channels': 16, 'levels': ['p2', 'p3', 'p4', 'p5']},
    'fusion': {'pixel_channels': 4, 'pixel_layers': 2, 'rfrm_levels': ['p2', 'p3'],
               'prompts_per_level': [2, 2], 'region_channels': 8, 'reduce_channels': 4,
               'decoder_channels': [4], 'prior': 'laplacian'},
    'head': {'num_classes': 2, 'num_proposals': 12, 'num_stages': 2, 'hidden_dim': 16,
             'dim_feedforward': 32, 'nheads': 2, 'dynamic_dim': 4, 'pooler_resolution': 3},
}


def tiny_config(**overrides) -> ModelConfig:
    data = {**TINY, **overrides}
    return ModelConfig.from_dict(data)


def save_tiny(path, seed: int = 0, cfg: ModelConfig | None = None, box_step: float = 1.0):
    """Write a random-weight checkpoint of ``cfg`` (default: the tiny config) to ``path``.

    ``box_step`` scales the head's box-delta layers: random ones move boxes by large factors at
    every stage, which makes comparisons across precisions or runtimes chaotic; a trained head's
    refinements are small (0.1 is closer to it).
    """
    cfg = cfg or tiny_config()
    torch.manual_seed(seed)
    model = build_model(cfg, load_backbone_weights=False)
    with torch.no_grad():
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(box_step)
            stage.box_deltas.bias.mul_(box_step)
    return save_checkpoint(path, model, cfg)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tiny models run fastest on one thread, and OpenMP's spinning threads are very slow
    on a shared 2-core machine; restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_weights(tmp_path):
    """A fresh tiny checkpoint ``tiny.pt`` in this test's own tmp directory."""
    return save_tiny(tmp_path / 'tiny.pt')


@pytest.fixture
def frame_pair():
    """A fixed (rgb uint8 (120, 200, 3), thermal uint16 (120, 200)) pair."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    thermal = rng.integers(0, 65536, (120, 200), dtype=np.uint16)
    return rgb, thermal


@pytest.fixture
def make_tiny():
    """``make_tiny(path, seed=0, cfg=None, box_step=1.0)`` writes a tiny (or ``cfg``) checkpoint;
    ``make_tiny.config(**overrides)`` gives the tiny ModelConfig."""
    save_tiny.config = tiny_config
    return save_tiny
