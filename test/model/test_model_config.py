"""ModelConfig: YAML/dict round trip, shipped configs, and clear errors on bad keys or values."""
import dataclasses

import pytest

from efficientmfd_ros.model import ModelConfig, ModelConfigError

SHIPPED = ('efficientmfd_r50.yaml', 'efficientmfd_lite.yaml', 'efficientmfd_tiny_test.yaml')


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_config_round_trips(project_root, tmp_path, name):
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / name)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    cfg.to_yaml(tmp_path / 'again.yaml')
    assert ModelConfig.from_yaml(tmp_path / 'again.yaml') == cfg
    plain = cfg.to_dict()
    assert isinstance(plain['input_size'], list) and isinstance(plain['fpn']['levels'], list)


def test_paper_and_lite_settings(project_root):
    r50 = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_r50.yaml')
    assert r50.backbone.name == 'resnet50' and r50.head.num_proposals == 500
    assert r50.fusion.rfrm_levels == ('p2', 'p3', 'p4') and r50.input_size == (768, 1024)
    assert r50.class_names == ('People', 'Car', 'Bus', 'Lamp', 'Motorcycle', 'Truck')
    lite = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_lite.yaml')
    assert lite.backbone.name == 'mobilenet_v2' and lite.backbone.pretrained
    assert lite.input_size == (384, 480) and lite.class_names == ('person',)
    assert lite.head.num_proposals < r50.head.num_proposals
    assert lite.normalization == {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}


@pytest.mark.parametrize('patch, words', [
    ({'colour': 1}, ['colour']),
    ({'head': {'num_proposal': 5}}, ['head', 'num_proposal']),
    ({'fusion': {'prompts': [1]}}, ['fusion', 'prompts']),
])
def test_unknown_keys_are_named(tiny_cfg, patch, words):
    data = tiny_cfg.to_dict()
    for key, value in patch.items():
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    with pytest.raises(ModelConfigError) as err:
        ModelConfig.from_dict(data)
    assert all(w in str(err.value) for w in words)


@pytest.mark.parametrize('section, key, value, word', [
    ('head', 'num_classes', 3, 'num_classes'),
    ('head', 'hidden_dim', 32, 'hidden_dim'),
    ('head', 'num_proposals', 2.5, 'num_proposals'),
    ('head', 'box_renewal', 'yes', 'box_renewal'),
    ('backbone', 'name', 'vgg16', 'backbone.name'),
    ('backbone', 'norm', 'gn', 'backbone.norm'),
    ('fpn', 'levels', ['p2', 'p4'], 'consecutive'),
    ('fusion', 'rfrm_levels', ['p6'], 'rfrm_levels'),
    ('fusion', 'prompts_per_level', [2], 'prompts_per_level'),
    (None, 'input_size', [60, 96], 'input_size'),
    (None, 'class_names', 'person', 'class_names'),
])
def test_bad_values_raise_clear_errors(tiny_cfg, section, key, value, word):
    data = tiny_cfg.to_dict()
    (data[section] if section else data)[key] = value
    with pytest.raises(ModelConfigError, match=word):
        ModelConfig.from_dict(data)


def test_pretrained_resnet_needs_a_weights_file(tiny_cfg):
    data = tiny_cfg.to_dict()
    data['backbone']['pretrained'] = True
    with pytest.raises(ModelConfigError, match='weights_path'):
        ModelConfig.from_dict(data)


def test_unreadable_yaml(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('backbone: [unclosed\n')
    with pytest.raises(ModelConfigError, match='bad.yaml'):
        ModelConfig.from_yaml(path)
    with pytest.raises(ModelConfigError, match='missing.yaml'):
        ModelConfig.from_yaml(tmp_path / 'missing.yaml')


def test_defaults_are_a_valid_paper_config():
    cfg = ModelConfig()
    assert cfg.head.num_stages == 6 and cfg.head.sampling_steps == 1
    assert dataclasses.asdict(cfg)['head']['signal_scale'] == 2.0
