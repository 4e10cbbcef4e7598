"""Fusion and detection losses, and the dynamic-k matcher, on hand-made cases."""
import pytest
import torch

from efficientmfd_ros.train.losses_detection import (
    DetectionLoss,
    DetectionLossConfig,
    paired_iou,
    quality_focal_loss,
)
from efficientmfd_ros.train.losses_fusion import (
    FusionLoss,
    high_pass,
    object_mask,
    pixel_targets,
    saliency_map,
    saliency_weights,
    ssim,
)
from efficientmfd_ros.train.matcher import DynamicKMatcher


def _img(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, *torch.tensor(values).shape)


def test_ssim_of_identical_images_is_one_and_loss_is_zero():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 20)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert ssim(x, 1 - x).max() < 0.5
    total, parts = FusionLoss()(x, x, x)
    assert parts['ssim'] == 0
    assert total.item() == pytest.approx(0.0, abs=1e-6)


def test_saliency_of_a_hand_made_histogram():
    # Three pixels at 0 and one at 255: H(0) = 3/4, H(255) = 1/4.
    img = _img([[0.0, 0.0], [0.0, 1.0]])
    sal = saliency_map(img).flatten().tolist()
    assert sal == pytest.approx([63.75, 63.75, 63.75, 191.25])
    # A grey level absent from the histogram still gets S(v) = sum_i H(i) |v - i|.
    img = _img([[0.0, 0.0], [0.0, 1.0], [100 / 255, 0.0]])
    h0, h100, h255 = 4 / 6, 1 / 6, 1 / 6
    expected_100 = h0 * 100 + h255 * 155
    assert saliency_map(img)[0, 0, 2, 0].item() == pytest.approx(expected_100)
    assert saliency_map(img)[0, 0, 1, 1].item() == pytest.approx(h0 * 255 + h100 * 155)


def test_saliency_weights_sum_to_one_and_favour_the_rare_level():
    x = _img([[0.0, 0.0], [0.0, 1.0]])
    y = _img([[0.0, 1.0], [0.0, 1.0]])
    w_x, w_y = saliency_weights(x, y)
    assert torch.allclose(w_x + w_y, torch.ones_like(w_x))
    # Pixel (1,1): S_x = 191.25 (a rare bright pixel), S_y = 127.5.
    assert w_x[0, 0, 1, 1].item() == pytest.approx(191.25 / (191.25 + 127.5))
    flat = torch.zeros(1, 1, 2, 2)
    w_x, w_y = saliency_weights(flat, flat)
    assert torch.equal(w_x, torch.full_like(w_x, 0.5))


def test_pixel_loss_targets_inside_and_outside_the_object_mask():
    # x = 0.2 everywhere has S_x = 0 (one grey level); y = 0.8 on a 2x2 patch, 0 elsewhere.
    x = torch.full((1, 1, 4, 4), 0.2)
    y = torch.zeros(1, 1, 4, 4)
    y[..., :2, :2] = 0.8
    w_x, w_y = saliency_weights(x, y)
    inside, outside = pixel_targets(x, y)
    torch.testing.assert_close(outside, w_x * x + w_y * y)
    torch.testing.assert_close(inside, torch.maximum(2 * w_x * x, 2 * w_y * y).clamp(max=1))
    # x is constant so S_x = 0: every weight goes to y, the target is y itself.
    torch.testing.assert_close(outside, y)
    mask = object_mask([torch.tensor([[0.0, 0.0, 2.0, 2.0]])], 4, 4)
    assert mask.sum() == 4 and mask[0, 0, :2, :2].all()
    loss = FusionLoss(eta_ssim=0, eta_grad=0)
    u = torch.full((1, 1, 4, 4), 0.5)
    _, parts = loss(u, x, y, [torch.tensor([[0.0, 0.0, 2.0, 2.0]])])
    expected = (mask * (u - inside).abs() + (1 - mask) * (u - outside).abs()).mean()
    assert parts['pixel'].item() == pytest.approx(expected.item())
    # Inside: |0.5 - min(1, 1.6)| = 0.5 on 4 pixels; outside: |0.5 - 0| on 12 pixels.
    assert parts['pixel'].item() == pytest.approx((4 * 0.5 + 12 * 0.5) / 16)


def test_region_normalised_pixel_loss_weighs_objects_by_their_own_area():
    # Same case as above: inside 4 pixels off by 0.5, outside 12 pixels off by 0.5.
    x = torch.full((1, 1, 4, 4), 0.2)
    y = torch.zeros(1, 1, 4, 4)
    y[..., :2, :2] = 0.8
    boxes = [torch.tensor([[0.0, 0.0, 2.0, 2.0]])]
    u = torch.full((1, 1, 4, 4), 0.5)
    region = FusionLoss(eta_ssim=0, eta_grad=0, w1=2.0, w2=1.0, pixel_norm='region')
    _, parts = region(u, x, y, boxes)
    assert parts['pixel'].item() == pytest.approx(2.0 * 0.5 + 1.0 * 0.5)
    image = FusionLoss(eta_ssim=0, eta_grad=0, w1=2.0, w2=1.0, pixel_norm='image')
    _, parts = image(u, x, y, boxes)
    assert parts['pixel'].item() == pytest.approx((2.0 * 4 * 0.5 + 12 * 0.5) / 16)
    # A fused image equal to both targets has no pixel loss; no boxes: background only.
    inside, outside = pixel_targets(x, y)
    mask = object_mask(boxes, 4, 4)
    exact = mask * inside + (1 - mask) * outside
    assert region.pixel_loss(exact, x, y, mask).item() == pytest.approx(0.0, abs=1e-7)
    no_objects = torch.zeros_like(mask)
    assert region.pixel_loss(outside, x, y, no_objects).item() == pytest.approx(0.0, abs=1e-7)


def test_pixel_loss_inside_objects_is_zero_for_the_brighter_source():
    # Equal saliency (mirror images): inside objects the target is max(x, y) itself.
    x = _img([[0.0, 1.0], [0.0, 1.0]])
    y = _img([[1.0, 0.0], [1.0, 0.0]])
    everywhere = torch.ones_like(x)
    for norm in ('image', 'region'):
        loss = FusionLoss(eta_ssim=0, eta_grad=0, pixel_norm=norm)
        assert loss.pixel_loss(torch.maximum(x, y), x, y, everywhere).item() == 0.0


def test_pixel_targets_with_equal_saliency_are_max_and_mean():
    x = _img([[0.0, 1.0], [0.0, 1.0]])
    y = _img([[1.0, 0.0], [1.0, 0.0]])
    inside, outside = pixel_targets(x, y)
    torch.testing.assert_close(inside, torch.maximum(x, y))
    torch.testing.assert_close(outside, (x + y) / 2)


def test_object_mask_empty_images_and_clipping():
    mask = object_mask([torch.zeros(0, 4), None, torch.tensor([[-5.0, 2.4, 9.0, 3.6]])], 4, 6)
    assert mask.shape == (3, 1, 4, 6)
    assert mask[:2].sum() == 0
    assert mask[2, 0, 2:4].all() and mask[2].sum() == 12


def test_gradient_loss_zero_when_u_is_the_stronger_gradient_input():
    torch.manual_seed(1)
    x = torch.rand(1, 1, 16, 16)
    y = torch.full_like(x, 0.3)
    assert high_pass(y, 5).abs().max() < 1e-6
    loss = FusionLoss()
    assert loss.grad_loss(x, x, y).item() == pytest.approx(0.0, abs=1e-7)
    assert loss.grad_loss(y, x, y).item() > 0.01


def test_signed_gradient_target_keeps_edge_polarity():
    torch.manual_seed(2)
    x = torch.rand(1, 1, 16, 16)
    y = torch.full_like(x, 0.3)
    magnitude = FusionLoss(grad_target='magnitude')
    signed = FusionLoss(grad_target='signed')
    assert signed.grad_loss(x, x, y).item() == pytest.approx(0.0, abs=1e-7)
    # The negative image has the same edge magnitudes, with every edge inverted.
    inverted = 1 - x
    assert magnitude.grad_loss(inverted, x, y).item() == pytest.approx(0.0, abs=1e-6)
    assert signed.grad_loss(inverted, x, y).item() > 0.1
    with pytest.raises(ValueError, match='grad_target'):
        FusionLoss(grad_target='sobel')
    with pytest.raises(ValueError, match='pixel_norm'):
        FusionLoss(pixel_norm='area')


def test_fusion_loss_backpropagates_and_rejects_bad_shapes():
    u = torch.rand(2, 1, 16, 16, requires_grad=True)
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    total, parts = FusionLoss()(u, x, y, [torch.tensor([[1.0, 2.0, 8.0, 9.0]]), torch.zeros(0, 4)])
    total.backward()
    assert torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    assert set(parts) == {'ssim', 'pixel', 'grad'}
    with pytest.raises(ValueError, match='B,1,H,W'):
        FusionLoss()(u, torch.rand(2, 3, 16, 16), y)
    with pytest.raises(ValueError, match='box lists'):
        FusionLoss()(u, x, y, [None])
    with pytest.raises(ValueError, match='eta_grad'):
        FusionLoss(eta_grad=-1)


def _targets():
    return [
        {'labels': torch.tensor([0, 1]),
         'boxes': torch.tensor([[8.0, 8.0, 24.0, 40.0], [30.0, 20.0, 60.0, 50.0]])},
        {'labels': torch.zeros(0, dtype=torch.int64), 'boxes': torch.zeros(0, 4)},
    ]


def _random_predictions(batch, num, classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, num, 2, generator=gen) * 48
    wh = torch.rand(batch, num, 2, generator=gen) * 20 + 4
    return torch.randn(batch, num, classes, generator=gen), torch.cat([xy, xy + wh], -1)


def test_matcher_empty_targets_and_every_gt_gets_a_proposal():
    matcher = DynamicKMatcher()
    logits, boxes = _random_predictions(1, 12, 2)
    pred_idx, gt_idx = matcher(logits[0], boxes[0], torch.zeros(0, dtype=torch.int64),
                               torch.zeros(0, 4), (64, 64))
    assert pred_idx.numel() == 0 and gt_idx.numel() == 0
    for seed in range(20):
        logits, boxes = _random_predictions(1, 6, 2, seed)
        gen = torch.Generator().manual_seed(100 + seed)
        xy = torch.rand(5, 2, generator=gen) * 40
        gt = torch.cat([xy, xy + torch.rand(5, 2, generator=gen) * 20 + 2], 1)
        labels = torch.randint(0, 2, (5,), generator=gen)
        pred_idx, gt_idx = matcher(logits[0], boxes[0], labels, gt, (64, 64))
        assert set(gt_idx.tolist()) == set(range(5)), f'seed {seed}: a ground truth went unmatched'
        assert len(set(pred_idx.tolist())) == len(pred_idx), 'a proposal matched twice'
    # Fewer proposals than boxes: no crash, no proposal used twice.
    pred_idx, gt_idx = matcher(logits[0, :2], boxes[0, :2], labels, gt, (64, 64))
    assert len(pred_idx) == 2 and len(set(pred_idx.tolist())) == 2


def test_detection_loss_is_finite_with_empty_targets():
    logits, boxes = _random_predictions(2, 10, 2)
    logits.requires_grad_(True)
    boxes.requires_grad_(True)
    empty = [{'labels': torch.zeros(0, dtype=torch.int64), 'boxes': torch.zeros(0, 4)}] * 2
    total, parts = DetectionLoss(2)({'pred_logits': logits, 'pred_boxes': boxes}, empty, (64, 64))
    total.backward()
    assert torch.isfinite(total) and parts['l1'] == 0 and parts['matched'] == 0
    assert torch.isfinite(logits.grad).all() and torch.isfinite(boxes.grad).all()
    assert logits.grad.abs().sum() > 0


def test_detection_loss_decreases_when_fitting_predictions_with_deep_supervision():
    logits, boxes = _random_predictions(2, 16, 2, seed=3)
    logits = logits.clone().requires_grad_(True)
    boxes = boxes.clone().requires_grad_(True)
    aux_logits = (logits.detach() * 0.5).requires_grad_(True)
    criterion = DetectionLoss(2)
    optim = torch.optim.Adam([logits, boxes, aux_logits], lr=0.5)

    def loss():
        outputs = {'pred_logits': logits, 'pred_boxes': boxes,
                   'aux_outputs': [{'pred_logits': aux_logits, 'pred_boxes': boxes}]}
        return criterion(outputs, _targets(), (64, 64))

    first, parts = loss()
    assert torch.isfinite(first) and parts['matched'] >= 2
    for _ in range(30):
        optim.zero_grad()
        total, _ = loss()
        total.backward()
        optim.step()
    last, _ = loss()
    assert last.item() < 0.5 * first.item()
    assert aux_logits.grad.abs().sum() > 0


def test_detection_loss_rejects_bad_targets():
    logits, boxes = _random_predictions(1, 4, 2)
    with pytest.raises(ValueError, match='labels'):
        DetectionLoss(2)({'pred_logits': logits, 'pred_boxes': boxes},
                         [{'labels': torch.tensor([2]), 'boxes': torch.zeros(1, 4)}], (64, 64))
    with pytest.raises(ValueError, match='pred_logits'):
        DetectionLoss(3)({'pred_logits': logits, 'pred_boxes': boxes}, _targets()[:1], (64, 64))


def test_paired_iou_of_hand_made_pairs():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 9]])
    b = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10], [5, 5, 5, 9]])
    assert torch.allclose(paired_iou(a, b), torch.tensor([1.0, 0.0, 1 / 3, 0.0]))


def test_quality_focal_loss_is_smallest_where_the_score_equals_the_target():
    for target in (0.0, 0.3, 0.8):
        logits = torch.linspace(-6, 6, 1201)
        loss = quality_focal_loss(logits, torch.full_like(logits, target), beta=2.0)
        best = logits[loss.argmin()].sigmoid().item()
        assert abs(best - target) < 0.01, (target, best)
    logit = torch.tensor([0.4])
    score = logit.sigmoid()
    expected = -(0.7 * score.log() + 0.3 * (1 - score).log()) * (0.7 - score).abs() ** 2
    assert torch.allclose(quality_focal_loss(logit, torch.tensor([0.7]), 2.0), expected)


def test_quality_focal_detection_loss_pulls_an_overconfident_loose_box_down():
    # Every proposal is the ground truth shifted by a third of its width (IoU 0.5) and scores
    # 0.99: the focal loss raises the matched proposals' scores, the quality focal loss lowers
    # them towards their IoU.
    gt = torch.tensor([[12.0, 12.0, 36.0, 36.0]])
    boxes = (gt + torch.tensor([8.0, 0.0, 8.0, 0.0])).expand(1, 8, 4).clone()
    targets = [{'labels': torch.tensor([0]), 'boxes': gt}]
    grads = {}
    for name in ('focal', 'quality_focal'):
        logits = torch.full((1, 8, 1), 5.0, requires_grad=True)
        criterion = DetectionLoss(1, DetectionLossConfig(cls_loss=name))
        total, parts = criterion({'pred_logits': logits, 'pred_boxes': boxes}, targets, (64, 64))
        total.backward()
        assert parts['matched'] >= 1
        grads[name] = logits.grad.flatten()
    assert (grads['focal'] < 0).any(), 'focal: a matched proposal is pushed up'
    assert (grads['quality_focal'] > 0).all(), 'quality focal: every score is above its IoU'
    with pytest.raises(ValueError, match='cls_loss'):
        DetectionLoss(1, DetectionLossConfig(cls_loss='varifocal'))
