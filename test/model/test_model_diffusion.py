"""Box diffusion: schedule, q(z_t|z_0), training boxes and DDIM sampling."""
import math

import pytest
import torch

from efficientmfd_ros.model.diffusion import (
    BoxDiffusion,
    cosine_beta_schedule,
    cxcywh_to_xyxy,
    pixel_scale,
    xyxy_to_cxcywh,
)


def test_cosine_schedule():
    betas = cosine_beta_schedule(1000)
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert (betas > 0).all() and (betas <= 0.999).all()
    abar = torch.cumprod(1 - betas, 0)
    assert (abar[1:] < abar[:-1]).all()
    assert abar[0] > 0.9999 and abar[-1] < 1e-4
    assert abs(abar[499].item() - math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) ** 2) < 0.01


def test_box_conversions_and_signal_round_trip():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 96.0, 64.0]])
    assert torch.allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)
    diffusion = BoxDiffusion()
    z = diffusion.boxes_to_signal(boxes, (64, 96))
    assert torch.allclose(z[1], torch.tensor([0.0, 0.0, 2.0, 2.0]))
    assert torch.allclose(diffusion.signal_to_boxes(z, (64, 96)), boxes, atol=1e-4)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_pixel_scale_matches_a_host_made_scale(dtype):
    z = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    scale = pixel_scale(z, (64, 96))
    assert scale.dtype == dtype and scale.device == z.device
    assert torch.equal(scale, torch.tensor([96.0, 64.0, 96.0, 64.0], dtype=dtype))
    diffusion = BoxDiffusion()
    boxes = diffusion.signal_to_boxes(z, (64, 96))
    expected = cxcywh_to_xyxy((z.clamp(-2, 2) / 2 + 1) * 0.5) * scale
    assert boxes.dtype == dtype and torch.equal(boxes, expected)
    signal = diffusion.boxes_to_signal(boxes, (64, 96))
    assert torch.equal(signal, ((xyxy_to_cxcywh(boxes / scale) * 2 - 1) * 2).clamp(-2, 2))


def test_q_sample_endpoints():
    diffusion = BoxDiffusion(timesteps=1000, signal_scale=2.0)
    z0, noise = torch.full((3, 4), 1.5), torch.randn(3, 4)
    start = diffusion.q_sample(z0, torch.zeros(3, dtype=torch.int64), noise)
    end = diffusion.q_sample(z0, torch.full((3,), 999), noise)
    assert torch.allclose(start, z0, atol=0.02)
    assert torch.allclose(end, noise, atol=0.01)


def test_prepare_train_boxes_is_seeded_and_keeps_gt_at_small_t():
    diffusion = BoxDiffusion()
    gt = torch.tensor([[10.0, 12.0, 40.0, 50.0], [60.0, 5.0, 90.0, 30.0]])
    a = diffusion.prepare_train_boxes(gt, (64, 96), 7, torch.Generator().manual_seed(5))
    b = diffusion.prepare_train_boxes(gt, (64, 96), 7, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (7, 4) and a[1].dtype == torch.int64 and a[1].dim() == 0
    found = False
    for seed in range(3000):
        g = torch.Generator().manual_seed(seed)
        boxes, t = diffusion.prepare_train_boxes(gt, (64, 96), 7, g)
        if t < 10:
            assert torch.allclose(boxes[:2], gt, atol=3.0)
            found = True
            break
    assert found


@pytest.mark.parametrize('count', [0, 3, 12])
def test_prepare_train_boxes_any_gt_count(count):
    diffusion = BoxDiffusion()
    gt = torch.tensor([[4.0, 4.0, 20.0, 30.0]]).repeat(count, 1)
    boxes, t = diffusion.prepare_train_boxes(gt, (64, 96), 10, torch.Generator().manual_seed(0))
    assert boxes.shape == (10, 4) and 0 <= t < 1000
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes.min() >= -96 and boxes.max() <= 2 * 96


def test_time_pairs():
    assert BoxDiffusion(sampling_steps=1).time_pairs == [(999, -1)]
    pairs = BoxDiffusion(sampling_steps=4).time_pairs
    assert pairs[0][0] == 999 and pairs[-1][1] == -1 and len(pairs) == 4
    assert all(t > t_next for t, t_next in pairs)


def test_ddim_sampling_follows_the_predictions():
    """With a predictor that always answers the same boxes, every DDIM step lands on them and the
    sampler returns the last prediction; each step sees boxes closer to the answer."""
    diffusion = BoxDiffusion(sampling_steps=3)
    target = torch.tensor([[[10.0, 10.0, 40.0, 30.0]]]).repeat(1, 5, 1)
    seen = []

    def predictor(boxes, t):
        seen.append((boxes.clone(), t.clone()))
        return torch.zeros(1, 5, 2), target

    noise = torch.randn(1, 5, 4, generator=torch.Generator().manual_seed(0))
    logits, boxes = diffusion.sample(predictor, noise, (64, 96))
    assert torch.equal(boxes, target) and len(seen) == 3
    assert [int(t[0]) for _, t in seen] == [p[0] for p in diffusion.time_pairs]
    errors = [(b - target).abs().mean().item() for b, _ in seen]
    assert errors[2] < errors[1] < errors[0]


def test_box_renewal_reseeds_low_scores():
    diffusion = BoxDiffusion(sampling_steps=2, box_renewal=True, renewal_threshold=0.5)
    target = torch.tensor([[[10.0, 10.0, 40.0, 30.0]]]).repeat(1, 4, 1)
    logits = torch.tensor([[[5.0], [-5.0], [5.0], [-5.0]]])
    seen = []

    def predictor(boxes, t):
        seen.append(boxes.clone())
        return logits, target

    noise = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(1))
    diffusion.sample(predictor, noise, (64, 96))
    restarted = diffusion.signal_to_boxes(noise, (64, 96))
    assert torch.allclose(seen[1][0, 1], restarted[0, 1]) and torch.allclose(seen[1][0, 3],
                                                                             restarted[0, 3])
    assert not torch.allclose(seen[1][0, 0], restarted[0, 0])
