"""TrainConfig parsing and overrides, the learning-rate schedule and the resumable sampler."""
import pytest
import torch
import yaml

from efficientmfd_ros.core.config_io import ConfigError, apply_overrides, parse_override
from efficientmfd_ros.train.config import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    load_train_config,
    read_model_config,
)
from efficientmfd_ros.train.data.sampling import EpochSampler
from efficientmfd_ros.train.optim import lr_factor, param_groups

MINIMAL = {'model_config': 'm.yaml', 'data': {'train': [{'root': '/data/a'}]}}


def test_shipped_configs_load(project_root):
    for name in ('lite_llvip.yaml', 'tiny_test.yaml'):
        cfg = load_train_config(project_root / 'config/train' / name)
        assert (project_root / cfg.model_config).is_file()
    lite = load_train_config(project_root / 'config/train/lite_llvip.yaml')
    assert lite.data.train[0]['split'] == '010001..010032'
    assert lite.data.val[0]['split'] == '010033..010040'
    assert [d.get('labelled', True) for d in lite.data.train] == [True, False, False]


def test_shipped_configs_all_load_with_their_models(project_root):
    for path in sorted((project_root / 'config/train').glob('*.yaml')):
        cfg = load_train_config(path)
        model = read_model_config(cfg)
        assert model.head.num_proposals > 0, path


def test_model_overrides_lay_nested_keys_over_the_model_yaml(project_root, tmp_path):
    path = tmp_path / 'c.yaml'
    model = str(project_root / 'config/model/efficientmfd_lite.yaml')
    path.write_text(yaml.safe_dump({**MINIMAL, 'model_config': model}))
    plain = read_model_config(load_train_config(path))
    cfg = load_train_config(path, ['--model_overrides={head: {num_proposals: 100}}'])
    changed = read_model_config(cfg)
    assert changed.head.num_proposals == 100 and plain.head.num_proposals == 50
    assert changed.head.hidden_dim == plain.head.hidden_dim and changed.fpn == plain.fpn
    bad = load_train_config(path, ['--model_overrides={head: {num_proposal: 100}}'])
    with pytest.raises(ConfigError, match='num_proposal'):
        read_model_config(bad)


def test_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump(MINIMAL))
    cfg = load_train_config(path, ['--optim.lr=1e-3', '--gmta.interval=0', '--task=fusion',
                                   '--schedule.milestones=[10, 20]', '--optim.backbone_lr=none',
                                   '--loss.fusion.eta_grad=2'])
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.gmta.interval == 0 and cfg.task == 'fusion'
    assert cfg.schedule.milestones == (10, 20) and cfg.optim.backbone_lr is None
    assert cfg.loss.fusion.eta_grad == 2.0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize('override, message', [
    ('--optim.lr=abc', 'optim.lr must be a number'),
    ('--gmta.interval=1.5', 'gmta.interval must be an integer'),
    ('--runtime.amp=maybe', 'runtime.amp must be true or false'),
    ('--optim.nope=1', "unknown key 'optim.nope'"),
    ('--task=segmentation', 'task must be one of'),
    ('--schedule.policy=linear', "schedule.policy must be 'step' or 'cosine'"),
    ('--gmta.omega=2', 'gmta.omega must be in [0, 1]'),
    ('--gmta.scale=max', "gmta.scale must be 'min' or 'rms'"),
    ('--eval.noise_seeds=[-1]', 'eval.noise_seeds must be non-negative integers'),
    ('--loss.detection.cls_loss=varifocal', 'loss.detection.cls_loss must be one of'),
    ('--loss.detection.quality_beta=0', 'loss.detection.quality_beta must be > 0'),
    ('optim.lr=1', 'must look like --key=value'),
])
def test_bad_values_name_the_key(tmp_path, override, message):
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(ConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
        load_train_config(path, [override])


def test_missing_and_unknown_keys():
    with pytest.raises(ConfigError, match='model_config'):
        TrainConfig.from_dict({'data': MINIMAL['data']})
    with pytest.raises(ConfigError, match=r"data.train\[0\]: unknown key\(s\) \['colour'\]"):
        TrainConfig.from_dict({**MINIMAL, 'data': {'train': [{'root': 'a', 'colour': 1}]}})
    with pytest.raises(ConfigError, match='data.train must list'):
        TrainConfig.from_dict({'model_config': 'm.yaml'})
    assert parse_override('--a.b=[1, 2]') == (['a', 'b'], [1, 2])
    assert apply_overrides(TrainConfig, {}, ['--eval.interval=5']) == {'eval': {'interval': 5}}


def test_lr_schedule_warmup_step_and_cosine():
    step = ScheduleConfig(iterations=100, warmup_iters=10, warmup_factor=0.1, milestones=(50, 80))
    assert lr_factor(0, step) == pytest.approx(0.1)
    assert lr_factor(5, step) == pytest.approx(0.55)
    assert lr_factor(10, step) == 1.0
    assert lr_factor(50, step) == pytest.approx(0.1)
    assert lr_factor(99, step) == pytest.approx(0.01)
    cos = ScheduleConfig(iterations=110, warmup_iters=10, policy='cosine', min_lr_factor=0.0)
    assert lr_factor(10, cos) == pytest.approx(1.0)
    assert lr_factor(60, cos) == pytest.approx(0.5)
    assert lr_factor(110, cos) == pytest.approx(0.0, abs=1e-12)


def test_param_groups_split_backbone_and_decay():
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.head = torch.nn.Linear(2, 2)
    model.frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    groups = param_groups(model, OptimConfig(lr=1e-3, backbone_lr=1e-4, weight_decay=0.1))
    by_name = {g['name']: g for g in groups}
    assert by_name['backbone']['lr'] == 1e-4 and by_name['rest']['lr'] == 1e-3
    assert by_name['rest_no_decay']['weight_decay'] == 0.0
    assert sum(len(g['params']) for g in groups) == 4


def test_sampler_is_seeded_resumable_and_sharded():
    weights = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64).repeat_interleave(
        torch.tensor([2, 3, 5])) / torch.tensor([2.0] * 2 + [3.0] * 3 + [5.0] * 5).double()
    sampler = EpochSampler(weights, seed=3)
    first = list(sampler)
    assert first == list(EpochSampler(weights, seed=3)) and len(first) == 10
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0, start=4)
    assert list(sampler) == first[4:] and len(sampler) == 6
    ranks = [list(EpochSampler(weights, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 5
    assert sorted(ranks[0] + ranks[1]) == sorted(first)
    with pytest.raises(ValueError):
        sampler.set_epoch(0, start=11)
