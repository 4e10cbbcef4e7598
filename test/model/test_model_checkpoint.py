"""Checkpoints: round trip, self-describing contents, atomic write, clear errors."""
import pytest
import torch

from efficientmfd_ros.model import (
    CheckpointError,
    ModelConfig,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _outputs(model, inputs):
    rgb, thermal = inputs
    model.eval()
    with torch.no_grad():
        return model(rgb, thermal, model.make_noise_boxes(rgb.shape[0]))


def test_round_trip(tiny_model, tiny_cfg, tiny_inputs, tmp_path):
    path = tmp_path / 'sub' / 'model.pt'
    save_checkpoint(path, tiny_model, extra={'train_config': {'lr': 0.001}, 'iteration': 7})
    assert sorted(p.name for p in path.parent.iterdir()) == ['model.pt']
    model, cfg, ckpt = load_checkpoint(path)
    assert cfg == tiny_cfg and not model.training
    assert ckpt['class_names'] == ['person', 'car'] and ckpt['input_size'] == [64, 96]
    assert ckpt['normalization']['mean'] == [0.485, 0.456, 0.406]
    assert ckpt['train_config'] == {'lr': 0.001} and ckpt['iteration'] == 7
    assert isinstance(ckpt['code_version'], str)
    for a, b in zip(_outputs(tiny_model, tiny_inputs), _outputs(model, tiny_inputs)):
        assert torch.equal(a, b)


def test_restoring_needs_no_pretrained_files(tmp_path, tiny_cfg):
    data = tiny_cfg.to_dict()
    data['backbone'].update(name='mobilenet_v2', pretrained=True,
                            weights_path=str(tmp_path / 'gone.pt'))
    cfg = ModelConfig.from_dict(data)
    model = build_model(cfg, load_backbone_weights=False)
    save_checkpoint(tmp_path / 'm.pt', model)
    restored, _, _ = load_checkpoint(tmp_path / 'm.pt')
    assert torch.equal(restored.backbone.stages[0][0][0].weight,
                       model.backbone.stages[0][0][0].weight)


def test_corrupt_and_missing_files(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(tmp_path / 'absent.pt')
    good = save_checkpoint(tmp_path / 'good.pt', tiny_model)
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match='truncated.pt'):
        load_checkpoint(truncated)
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'\x00' * 64)
    with pytest.raises(CheckpointError, match='cannot read'):
        load_checkpoint(junk)
    plain = tmp_path / 'plain.pt'
    torch.save({'model': tiny_model.state_dict()}, plain)
    with pytest.raises(CheckpointError, match='missing keys'):
        read_checkpoint(plain)


def test_weights_not_matching_the_config(tiny_model, tiny_cfg, tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', tiny_model)
    ckpt = torch.load(path, weights_only=True)
    ckpt['model_config']['fusion']['pixel_channels'] = 6
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match='do not match'):
        load_checkpoint(path)
    ckpt['model_config']['fusion']['pixel_channels'] = tiny_cfg.fusion.pixel_channels
    del ckpt['model']['head.stages.0.box_deltas.bias']
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match='1 missing'):
        load_checkpoint(path)
    ckpt['model_config']['head']['hidden'] = 3
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match='model_config'):
        load_checkpoint(path)


def test_extra_cannot_override_the_model(tiny_model, tmp_path):
    with pytest.raises(ValueError, match='class_names'):
        save_checkpoint(tmp_path / 'm.pt', tiny_model, extra={'class_names': ['x']})
