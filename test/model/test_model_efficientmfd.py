"""EfficientMFD on the tiny config: shapes, determinism, gradients, input errors, fast paths."""
import pytest
import torch

from efficientmfd_ros.model import build_model


def _targets():
    return [{'boxes': torch.tensor([[3.0, 4.0, 30.0, 40.0], [50.0, 10.0, 90.0, 60.0]]),
             'labels': torch.tensor([0, 1])},
            {'boxes': torch.zeros(0, 4), 'labels': torch.zeros(0, dtype=torch.int64)}]


def test_forward_shapes_and_conventions(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    tiny_model.eval()
    noise = tiny_model.make_noise_boxes(2)
    with torch.no_grad():
        logits, boxes, fused = tiny_model(rgb, thermal, noise)
        feats = tiny_model.extract(rgb, thermal)
    assert logits.shape == (2, 10, 2) and boxes.shape == (2, 10, 4)
    assert fused.shape == (2, 3, 64, 96) and fused.min() >= 0 and fused.max() <= 1
    assert [tuple(f.shape) for f in feats] == [(2, 16, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    assert noise.shape == (2, 10, 4) and noise.dtype == torch.float32


def test_inference_is_deterministic_and_batch_independent(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    tiny_model.eval()
    assert torch.equal(tiny_model.make_noise_boxes(2), tiny_model.make_noise_boxes(2))
    with torch.no_grad():
        first = tiny_model(rgb, thermal, tiny_model.make_noise_boxes(2))
        second = tiny_model(rgb, thermal, tiny_model.make_noise_boxes(2))
        single = tiny_model(rgb[1:], thermal[1:], tiny_model.make_noise_boxes(1))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert torch.allclose(single[0][0], first[0][1], atol=1e-5)
    assert torch.allclose(single[1][0], first[1][1], atol=1e-3)
    seeded = tiny_model.make_noise_boxes(2, torch.Generator().manual_seed(9))
    assert not torch.equal(seeded[0], seeded[1])
    own = tiny_model.cfg.head.noise_seed
    assert torch.equal(tiny_model.make_noise_boxes(2, seed=own), tiny_model.make_noise_boxes(2))
    other = tiny_model.make_noise_boxes(2, seed=own + 1)
    assert torch.equal(other[0], other[1])  # one draw shared by the batch
    assert not torch.equal(other, tiny_model.make_noise_boxes(2))


def test_detection_does_not_need_fusion(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    tiny_model.eval()
    noise = tiny_model.make_noise_boxes(2)
    with torch.no_grad():
        with_fusion = tiny_model(rgb, thermal, noise, run_fusion=True)
        without = tiny_model(rgb, thermal, noise, run_fusion=False)
    assert without[2] is None
    assert torch.equal(with_fusion[0], without[0]) and torch.equal(with_fusion[1], without[1])


def test_every_parameter_gets_a_gradient(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    tiny_model.train()
    final = tiny_model.fusion.decoder[-1]
    assert tiny_model.fusion.uses_prior and final.weight.abs().sum() == 0
    # The correction of the prior starts at zero (no gradient reaches the layers before it until
    # it moves): move it as one optimizer step would.
    with torch.no_grad():
        final.weight.normal_(0.0, 0.01, generator=torch.Generator().manual_seed(0))
    out = tiny_model.forward_train(rgb, thermal, _targets(), torch.Generator().manual_seed(0))
    assert out['fused'].shape == (2, 1, 64, 96)
    assert out['pred_logits'].shape == (2, 10, 2) and out['pred_boxes'].shape == (2, 10, 4)
    assert len(out['aux_outputs']) == 1 and out['t'].shape == (2,)
    loss = out['fused'].sum() + out['pred_logits'].sum() + out['pred_boxes'].sum() * 1e-2
    for aux in out['aux_outputs']:
        loss = loss + aux['pred_logits'].sum() + aux['pred_boxes'].sum() * 1e-2
    loss.backward()
    params = dict(tiny_model.named_parameters())
    assert any(name.startswith('fusion.pixel') for name in params)
    dead = [n for n, p in params.items()
            if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert dead == []


def test_an_untrained_fusion_branch_outputs_its_laplacian_prior(tiny_cfg):
    from efficientmfd_ros.model import build_model
    from efficientmfd_ros.model.color import rgb_to_luma
    from efficientmfd_ros.model.pyramid import laplacian_fuse
    model = build_model(tiny_cfg).eval()
    gen = torch.Generator().manual_seed(3)
    rgb, thermal = torch.rand(1, 3, 64, 96, generator=gen), torch.rand(1, 1, 64, 96, generator=gen)
    with torch.no_grad():
        fused = model.fuse(rgb, thermal, model.extract(rgb, thermal))
    cfg = tiny_cfg.fusion
    want = laplacian_fuse(rgb_to_luma(rgb), thermal, cfg.prior_levels, cfg.prior_base)
    torch.testing.assert_close(fused, want)


def test_forward_train_is_seeded(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    tiny_model.eval()
    with torch.no_grad():
        a = tiny_model.forward_train(rgb, thermal, _targets(), torch.Generator().manual_seed(4))
        b = tiny_model.forward_train(rgb, thermal, _targets(), torch.Generator().manual_seed(4))
    assert torch.equal(a['noised_boxes'], b['noised_boxes']) and torch.equal(a['t'], b['t'])
    assert torch.equal(a['pred_boxes'], b['pred_boxes'])


@pytest.mark.parametrize('rgb_shape, thermal_shape, dtype, word', [
    ((1, 1, 64, 96), (1, 1, 64, 96), torch.float32, 'rgb'),
    ((1, 3, 64, 96), (1, 3, 64, 96), torch.float32, 'thermal'),
    ((1, 3, 64, 96), (1, 1, 64, 96), torch.uint8, 'float'),
    ((1, 3, 60, 96), (1, 1, 60, 96), torch.float32, 'multiples of 32'),
    ((1, 3, 64, 96), (1, 1, 32, 96), torch.float32, 'share'),
    ((1, 3, 0, 96), (1, 1, 0, 96), torch.float32, 'multiples of 32'),
])
def test_bad_inputs_raise_value_error(tiny_model, rgb_shape, thermal_shape, dtype, word):
    rgb, thermal = torch.zeros(rgb_shape, dtype=dtype), torch.zeros(thermal_shape, dtype=dtype)
    with pytest.raises(ValueError, match=word):
        tiny_model(rgb, thermal, tiny_model.make_noise_boxes(1))


def test_bad_noise_and_targets(tiny_model, tiny_inputs):
    rgb, thermal = tiny_inputs
    with pytest.raises(ValueError, match='noise_boxes'):
        tiny_model(rgb, thermal, torch.zeros(1, 10, 4))
    with pytest.raises(ValueError, match='targets'):
        tiny_model.forward_train(rgb, thermal, _targets()[:1])
    with pytest.raises(ValueError, match='boxes'):
        tiny_model.forward_train(rgb, thermal, [{'boxes': torch.zeros(4)}] * 2)


def test_optimize_for_inference_keeps_outputs(tiny_cfg, tiny_inputs):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    rgb, thermal = tiny_inputs
    model.train()
    with torch.no_grad():  # give BatchNorm running statistics worth folding
        for _ in range(3):
            model.extract(rgb, thermal)
    model.eval()
    noise = model.make_noise_boxes(2)
    with torch.no_grad():
        reference = model(rgb, thermal, noise)
        model.optimize_for_inference()
        fast = model(rgb, thermal, noise)
    assert not model.batch_modalities and model.channels_last
    assert torch.allclose(fast[0], reference[0], atol=1e-3)
    assert torch.allclose(fast[1], reference[1], atol=0.05, rtol=1e-3)
    assert torch.allclose(fast[2], reference[2], atol=1e-4)
