"""The shipped lite and paper (ResNet-50) configurations build and run, at a reduced input size."""
import torch

from efficientmfd_ros.model import ModelConfig, build_model
from efficientmfd_ros.model.backbones import MOBILENET_PACKAGE, load_state_file, package_file


def _run(model, h, w):
    g = torch.Generator().manual_seed(0)
    rgb, thermal = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 1, h, w, generator=g)
    with torch.no_grad():
        return model(rgb, thermal, model.make_noise_boxes(1))


def test_lite_config(project_root):
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_lite.yaml')
    model = build_model(cfg).eval()
    source = load_state_file(package_file(*MOBILENET_PACKAGE))
    assert torch.equal(model.backbone.stages[0][0][0].weight, source['features.0.0.weight'])
    logits, boxes, fused = _run(model, 128, 160)
    n = cfg.head.num_proposals
    assert logits.shape == (1, n, 1) and boxes.shape == (1, n, 4)
    assert fused.shape == (1, 3, 128, 160)
    assert torch.isfinite(logits).all() and torch.isfinite(boxes).all()
    # Untrained, every score sits near the focal prior.
    assert torch.allclose(logits.sigmoid().mean(), torch.tensor(cfg.head.prior_prob), atol=0.05)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable < sum(p.numel() for p in model.parameters())


def test_r50_paper_config(project_root):
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_r50.yaml')
    model = build_model(cfg).eval()
    assert len(model.head.stages) == 6 and len(model.fusion.regions) == 3
    assert [r.num_prompts for r in model.fusion.regions] == [8, 8, 8]
    logits, boxes, fused = _run(model, 128, 160)
    assert logits.shape == (1, 500, 6) and boxes.shape == (1, 500, 4)
    assert fused.shape == (1, 3, 128, 160)
