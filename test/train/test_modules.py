"""The top-level module helpers of train/modules.py on the tiny test model."""
from pathlib import Path

import pytest
import torch

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
from efficientmfd_ros.train.modules import (
    freeze_all_but,
    load_init_weights,
    module_params,
    top_modules,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tiny_cfg():
    return ModelConfig.from_yaml(ROOT / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')


def _model(cfg, seed):
    torch.manual_seed(seed)
    return build_model(cfg)


def test_top_modules_names_the_config_key(tiny_cfg):
    model = _model(tiny_cfg, 0)
    assert top_modules(model, ['head', 'fpn'], 'x') == [model.head, model.fpn]
    with pytest.raises(ConfigError, match="trainable_modules: the model has no module 'heads'"):
        top_modules(model, ['heads'], 'trainable_modules')


def test_freeze_all_but_leaves_only_the_named_modules_trainable(tiny_cfg):
    model = _model(tiny_cfg, 0)
    frozen = freeze_all_but(model, ['head'])
    assert model.head not in frozen and model.fpn in frozen
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.fpn.parameters())
    assert module_params(model, ['fpn']) == []
    assert len(module_params(model, ['head'])) == len(list(model.head.parameters()))


def test_load_init_weights_keeps_excluded_modules_fresh(tiny_cfg, tmp_path):
    source = _model(tiny_cfg, 1)
    path = save_checkpoint(tmp_path / 'w.pt', source)
    target = _model(tiny_cfg, 2)
    fresh_head = {k: v.clone() for k, v in target.head.state_dict().items()}
    load_init_weights(target, path, exclude=['head'])
    for key, value in target.fpn.state_dict().items():
        assert torch.equal(value, source.fpn.state_dict()[key])
    for key, value in target.head.state_dict().items():
        assert torch.equal(value, fresh_head[key])
    assert not torch.equal(fresh_head['stages.0.class_logits.weight'],
                           source.head.state_dict()['stages.0.class_logits.weight'])


def test_load_init_weights_rejects_a_misshapen_file(tiny_cfg, tmp_path):
    path = save_checkpoint(tmp_path / 'w.pt', _model(tiny_cfg, 1))
    wider = tiny_cfg.from_dict({**tiny_cfg.to_dict(),
                                'fpn': {**tiny_cfg.to_dict()['fpn'],
                                        'channels': tiny_cfg.fpn.channels * 2},
                                'head': {**tiny_cfg.to_dict()['head'],
                                         'hidden_dim': tiny_cfg.head.hidden_dim * 2}})
    with pytest.raises(ConfigError, match='init_weights'):
        load_init_weights(_model(wider, 0), path)
    with pytest.raises(ConfigError, match="init_exclude: the model has no module 'fuse'"):
        load_init_weights(_model(tiny_cfg, 0), path, exclude=['fuse'])
