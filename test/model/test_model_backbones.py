"""Backbones: C2..C5 strides and widths, offline pretrained weights, freezing, BN folding."""
import pytest
import torch
from torch import nn
import torchvision
from torchvision.ops import FrozenBatchNorm2d

from efficientmfd_ros.model.backbones import (
    EFFICIENTNET_PACKAGE,
    MOBILENET_PACKAGE,
    BackboneWeightsError,
    build_backbone,
    load_state_file,
    mobilenet_state_from_package,
    package_file,
)
from efficientmfd_ros.model.config import BackboneConfig
from efficientmfd_ros.model.optimize import fold_batchnorm

WIDTHS = {'resnet18': [64, 128, 256, 512], 'resnet34': [64, 128, 256, 512],
          'resnet50': [256, 512, 1024, 2048], 'mobilenet_v2': [24, 32, 96, 320],
          'efficientnet_lite0': [24, 40, 112, 320]}


@pytest.mark.parametrize('name', sorted(WIDTHS))
def test_strides_and_channels(name):
    backbone = build_backbone(BackboneConfig(name=name)).eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 64, 96))
    assert backbone.out_channels == WIDTHS[name]
    assert [tuple(f.shape) for f in feats] == [(1, c, 64 // s, 96 // s)
                                               for c, s in zip(WIDTHS[name], (4, 8, 16, 32))]


def test_mobilenet_weights_come_from_the_package():
    path = package_file(*MOBILENET_PACKAGE)
    source = load_state_file(path)
    torch.manual_seed(0)
    backbone = build_backbone(BackboneConfig(name='mobilenet_v2', pretrained=True))
    torch.manual_seed(0)
    random = build_backbone(BackboneConfig(name='mobilenet_v2', pretrained=False))
    stem_conv = backbone.stages[0][0][0].weight
    assert torch.equal(stem_conv, source['features.0.0.weight'])
    assert not torch.equal(stem_conv, random.stages[0][0][0].weight)
    # The last tensor of the package file lands on features[18], which C5 does not use; the last
    # conv of features[17] must equal its package counterpart.
    mapped = mobilenet_state_from_package(torchvision.models.mobilenet_v2(), path)
    last = backbone.stages[4][-1].conv[2].weight
    assert torch.equal(last, mapped['features.17.conv.2.weight'])
    assert torch.equal(last, source['features.17.conv.6.weight'])


def test_efficientnet_lite0_weights_come_from_the_package():
    source = load_state_file(package_file(*EFFICIENTNET_PACKAGE))
    torch.manual_seed(0)
    backbone = build_backbone(BackboneConfig(name='efficientnet_lite0', pretrained=True))
    torch.manual_seed(0)
    random = build_backbone(BackboneConfig(name='efficientnet_lite0', pretrained=False))
    assert torch.equal(backbone.stages[0][0].weight, source['_conv_stem.weight'])
    last = backbone.stages[4][-1]._project_conv.weight
    assert torch.equal(last, source['_blocks.15._project_conv.weight'])
    assert not torch.equal(last, random.stages[4][-1]._project_conv.weight)
    bn = backbone.stages[1][0]._bn1
    assert torch.equal(bn.running_var, source['_blocks.1._bn1.running_var'])


def test_missing_package_names_it():
    with pytest.raises(BackboneWeightsError, match='no-such-weights-package'):
        package_file('no-such-weights-package', 'no_such_weights_package', 'w.pt')


@pytest.mark.parametrize('name', ['mobilenet_v2', 'efficientnet_lite0', 'resnet18'])
def test_bad_weights_path_is_named(tmp_path, name):
    missing = tmp_path / 'absent.pt'
    with pytest.raises(BackboneWeightsError, match='absent.pt'):
        build_backbone(BackboneConfig(name=name, pretrained=True, weights_path=str(missing)))
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'not a torch file')
    with pytest.raises(BackboneWeightsError, match='corrupt.pt'):
        build_backbone(BackboneConfig(name=name, pretrained=True, weights_path=str(corrupt)))


def test_resnet_user_weights_load_and_mismatch_is_refused(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / 'r18.pt'
    torch.save(reference.state_dict(), path)
    backbone = build_backbone(BackboneConfig(name='resnet18', weights_path=str(path)))
    assert torch.equal(backbone.stages[4][1].conv2.weight, reference.layer4[1].conv2.weight)
    with pytest.raises(BackboneWeightsError, match='does not fit'):
        build_backbone(BackboneConfig(name='resnet34', weights_path=str(path)))


def test_load_weights_false_skips_files():
    cfg = BackboneConfig(name='mobilenet_v2', pretrained=True, weights_path='/nonexistent.pt')
    assert build_backbone(cfg, load_weights=False).out_channels == WIDTHS['mobilenet_v2']


def test_frozen_stages_and_frozen_bn():
    backbone = build_backbone(BackboneConfig(name='resnet18', frozen_stages=2))
    assert not any(p.requires_grad for s in backbone.stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in backbone.stages[2:] for p in s.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.stages[:2].modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in backbone.stages[2].modules())
    frozen = build_backbone(BackboneConfig(name='mobilenet_v2', norm='frozen_bn'))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules())


@pytest.mark.parametrize('name', ['resnet18', 'mobilenet_v2', 'efficientnet_lite0'])
def test_fold_batchnorm_keeps_outputs(name):
    torch.manual_seed(2)
    backbone = build_backbone(BackboneConfig(name=name, norm='frozen_bn')).eval()
    for mod in backbone.modules():
        if isinstance(mod, FrozenBatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = backbone(x)
        folded = fold_batchnorm(backbone, x)
        after = backbone(x)
    assert folded > 10
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())
    for a, b in zip(before, after):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * a.abs().max().item())
