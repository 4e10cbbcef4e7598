"""Augmentation keeps RGB, thermal and boxes aligned; the collate builds the model's batch."""
import numpy as np
import pytest
import torch

from efficientmfd_ros.train.data.augment import (
    AugmentConfig,
    AugmentError,
    PairCollate,
    TrainAugment,
    boxes_to_original,
    collate_pairs,
    resize_to,
)

H, W = 120, 160
BOXES = np.array([[20, 30, 60, 90], [100, 10, 140, 50]], np.float32)


def _sample(thermal_dtype=np.uint8):
    rgb = np.full((H, W, 3), 20, np.uint8)
    thermal = np.full((H, W), 10, thermal_dtype)
    for x1, y1, x2, y2 in BOXES.astype(int):
        rgb[y1:y2, x1:x2] = 250
        thermal[y1:y2, x1:x2] = 240 if thermal_dtype == np.uint8 else 60000
    return {'rgb': rgb, 'thermal': thermal, 'boxes': BOXES.copy(), 'labels': np.array([0, 1]),
            'id': 'synthetic', 'labelled': True}


def _fraction_bright(image, x1, y1, x2, y2, margin):
    """Share of pixels brighter than mid-grey in the box grown by ``margin`` (shrunk if < 0)."""
    h, w = image.shape[:2]
    xa, ya = int(np.clip(np.floor(x1 - margin), 0, w)), int(np.clip(np.floor(y1 - margin), 0, h))
    xb, yb = int(np.clip(np.ceil(x2 + margin), 0, w)), int(np.clip(np.ceil(y2 + margin), 0, h))
    region = image[ya:yb, xa:xb]
    return float((region > 0.5).mean()) if region.size else 1.0


@pytest.mark.parametrize('seed', range(12))
def test_boxes_stay_on_the_bright_objects_in_both_modalities(seed):
    cfg = AugmentConfig(size=(96, 128), scale_range=(0.6, 1.6), photometric_p=0.0)
    out = TrainAugment(cfg)(_sample(), np.random.default_rng(seed))
    assert out['rgb'].shape == (96, 128, 3) and out['thermal'].shape == (96, 128)
    assert out['rgb'].dtype == np.float32 and out['thermal'].dtype == np.float32
    for image in (out['rgb'].max(axis=2), out['thermal']):
        for x1, y1, x2, y2 in out['boxes']:
            assert _fraction_bright(image, x1, y1, x2, y2, margin=-1.5) > 0.97
        # the object ends at its box: the box grown by 2 pixels is mostly the box itself
        for x1, y1, x2, y2 in out['boxes']:
            share_of_box = (x2 - x1) * (y2 - y1) / ((x2 - x1 + 4) * (y2 - y1 + 4))
            assert _fraction_bright(image, x1, y1, x2, y2, margin=2.0) < share_of_box + 0.12


def test_boxes_survive_most_augmentations_and_map_labels():
    cfg = AugmentConfig(size=(96, 128), scale_range=(0.8, 1.2))
    aug = TrainAugment(cfg)
    kept = [aug(_sample(), np.random.default_rng(s)) for s in range(20)]
    assert sum(len(o['boxes']) for o in kept) >= 30
    for out in kept:
        assert out['labels'].dtype == np.int64 and len(out['labels']) == len(out['boxes'])


def test_horizontal_flip_math():
    cfg = AugmentConfig(size=(H, W), hflip_p=1.0, scale_range=(1.0, 1.0), photometric_p=0.0)
    sample = _sample()
    out = TrainAugment(cfg)(sample, np.random.default_rng(0))
    assert out['flipped'] and out['scale'] == (1.0, 1.0) and out['offset'] == (0.0, 0.0)
    np.testing.assert_allclose(out['rgb'], sample['rgb'][:, ::-1] / 255.0, atol=1e-6)
    np.testing.assert_allclose(out['thermal'], sample['thermal'][:, ::-1] / 255.0, atol=1e-6)
    expected = np.array([[W - 60, 30, W - 20, 90], [W - 140, 10, W - 100, 50]], np.float32)
    np.testing.assert_allclose(out['boxes'], expected)


def test_crop_drops_boxes_mostly_outside_and_clips_the_rest():
    # the image fits exactly at scale 1; a 2x jitter then crops a quarter of it
    cfg = AugmentConfig(size=(H, W), hflip_p=0.0, scale_range=(2.0, 2.0), photometric_p=0.0,
                        min_visible=0.3)
    for seed in range(10):
        out = TrainAugment(cfg)(_sample(), np.random.default_rng(seed))
        assert out['scale'] == (2.0, 2.0)
        dx, dy = out['offset']
        moved = BOXES * 2 + np.array([dx, dy, dx, dy], np.float32)
        clipped = np.clip(moved, 0, [W, H, W, H])
        area = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1)
        visible = area / np.prod(moved[:, 2:] - moved[:, :2], axis=1)
        expected = clipped[(visible >= 0.3) & np.all(clipped[:, 2:] - clipped[:, :2] >= 2, axis=1)]
        np.testing.assert_allclose(out['boxes'], expected, atol=1e-4)


def test_modality_dropout_blanks_exactly_one_modality():
    cfg = AugmentConfig(size=(64, 80), modality_dropout_p=1.0)
    seen = set()
    for seed in range(16):
        out = TrainAugment(cfg)(_sample(), np.random.default_rng(seed))
        seen.add(out['dropped'])
        blank, kept = ('rgb', 'thermal') if out['dropped'] == 'rgb' else ('thermal', 'rgb')
        assert not out[blank].any() and out[kept].max() > 0.5
    assert seen == {'rgb', 'thermal'}
    out = TrainAugment(AugmentConfig(size=(64, 80)))(_sample(), np.random.default_rng(0))
    assert out['dropped'] is None


@pytest.mark.parametrize('share', [0.0, 0.25, 1.0])
def test_dropout_rgb_share_sets_which_camera_is_blanked(share):
    cfg = AugmentConfig(size=(64, 80), modality_dropout_p=1.0, dropout_rgb_share=share)
    drops = [TrainAugment(cfg)(_sample(), np.random.default_rng(seed))['dropped']
             for seed in range(200)]
    rgb = drops.count('rgb') / len(drops)
    assert drops.count(None) == 0
    assert rgb == share if share in (0.0, 1.0) else 0.15 < rgb < 0.35


def test_dropout_rgb_share_outside_0_1_is_refused():
    with pytest.raises(AugmentError, match='dropout_rgb_share'):
        AugmentConfig(dropout_rgb_share=1.5)


def test_photometric_jitter_is_independent_per_modality():
    cfg = AugmentConfig(size=(H, W), hflip_p=0.0, scale_range=(1.0, 1.0), photometric_p=1.0,
                        brightness=0.2, contrast=0.3, gamma=1.5)
    grey = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    sample = {'rgb': np.dstack([grey] * 3), 'thermal': grey.copy(), 'boxes': np.zeros((0, 4)),
              'labels': np.zeros(0, np.int64)}
    differs = 0
    for seed in range(8):
        out = TrainAugment(cfg)(sample, np.random.default_rng(seed))
        assert not np.allclose(out['rgb'][:, :, 0], grey / 255.0, atol=0.02)
        differs += not np.allclose(out['rgb'][:, :, 0], out['thermal'], atol=0.02)
    assert differs == 8


def test_seeded_generator_reproduces_the_augmentation():
    aug = TrainAugment(AugmentConfig(size=(64, 80), modality_dropout_p=0.5))
    a = aug(_sample(), np.random.default_rng(5))
    b = aug(_sample(), np.random.default_rng(5))
    c = aug(_sample(), np.random.default_rng(6))
    np.testing.assert_array_equal(a['rgb'], b['rgb'])
    np.testing.assert_array_equal(a['boxes'], b['boxes'])
    assert not (np.array_equal(a['rgb'], c['rgb']) and np.array_equal(a['boxes'], c['boxes']))


@pytest.mark.parametrize('keep_ratio', [False, True])
def test_resize_to_is_deterministic_and_maps_back(keep_ratio):
    sample = _sample(np.uint16)
    out = resize_to((60, 100), keep_ratio=keep_ratio)(sample)
    assert out['rgb'].shape == (60, 100, 3) and out['thermal'].shape == (60, 100)
    assert out['thermal'].dtype == np.uint16 and out['rgb'].dtype == np.uint8
    sx, sy = out['scale']
    if keep_ratio:
        assert sx == sy == pytest.approx(0.5)
        assert not out['rgb'][:, 80:].any()
    else:
        assert (sx, sy) == pytest.approx((100 / W, 60 / H))
    np.testing.assert_allclose(boxes_to_original(out['boxes'], out['scale'], out['offset']),
                               BOXES, atol=1e-4)


def test_collate_builds_model_batch():
    samples = [resize_to((64, 80))(_sample()), resize_to((64, 80))(_sample())]
    samples[1]['labelled'] = False
    samples[1]['boxes'], samples[1]['labels'] = np.zeros((0, 4)), np.zeros(0, np.int64)
    batch = collate_pairs(samples)
    assert batch['rgb'].shape == (2, 3, 64, 80) and batch['rgb'].dtype == torch.float32
    assert batch['thermal'].shape == (2, 1, 64, 80) and batch['thermal'].dtype == torch.float32
    assert 0.0 <= float(batch['rgb'].min()) and float(batch['rgb'].max()) <= 1.0
    assert batch['labelled'].tolist() == [True, False]
    assert batch['targets'][0]['boxes'].shape == (2, 4)
    assert batch['targets'][0]['labels'].dtype == torch.int64
    assert batch['targets'][1]['boxes'].shape == (0, 4)
    assert batch['orig_sizes'].tolist() == [[H, W], [H, W]]
    assert batch['scales'][0].tolist() == pytest.approx([80 / W, 64 / H])
    assert batch['ids'] == ['synthetic', 'synthetic']
    # the channel order stays RGB: a red-only image has only channel 0 set
    red = {'rgb': np.zeros((4, 4, 3), np.uint8), 'thermal': np.zeros((4, 4), np.uint8),
           'boxes': np.zeros((0, 4)), 'labels': np.zeros(0)}
    red['rgb'][:, :, 0] = 255
    assert collate_pairs([red])['rgb'][0].sum(dim=(1, 2)).tolist() == [16.0, 0.0, 0.0]


def test_collate_scales_uint16_thermal_by_configured_range():
    sample = {'rgb': np.zeros((4, 4, 3), np.uint8), 'thermal': np.full((4, 4), 2000, np.uint16),
              'boxes': np.zeros((0, 4)), 'labels': np.zeros(0)}
    sample['thermal'][0, 0] = 5000
    batch = PairCollate(thermal_range=(1000, 3000))([sample])
    assert float(batch['thermal'][0, 0, 1, 1]) == pytest.approx(0.5)
    assert float(batch['thermal'][0, 0, 0, 0]) == 1.0


def test_bad_inputs_raise_augment_error():
    with pytest.raises(AugmentError, match='differ in size'):
        collate_pairs([_sample(), resize_to((64, 80))(_sample())])
    with pytest.raises(AugmentError, match='hflip_p'):
        AugmentConfig(hflip_p=1.5)
    with pytest.raises(AugmentError, match='augment.hflip_p must be a number'):
        AugmentConfig.from_dict({'hflip_p': 'often'})
    with pytest.raises(AugmentError, match=r'augment: unknown key\(s\) \[.flip.\]'):
        AugmentConfig.from_dict({'flip': 0.5})
    bad = _sample()
    bad['thermal'] = bad['thermal'][:-1]
    with pytest.raises(AugmentError, match='same size'):
        TrainAugment()(bad, np.random.default_rng(0))
