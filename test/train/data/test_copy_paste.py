"""Copy-paste puts real copies of an image's objects into both cameras and keeps boxes honest."""
import numpy as np
import pytest

from efficientmfd_ros.train.data.augment import AugmentConfig, AugmentError, TrainAugment
from efficientmfd_ros.train.data.copy_paste import donors_of, hidden_share, paste_copies

H, W = 120, 200


def _scene(thermal_dtype=np.uint16):
    """A dark pair with two objects, each a distinct gradient in both cameras."""
    rgb = np.full((H, W, 3), 10, np.uint8)
    thermal = np.full((H, W), 100, thermal_dtype)
    boxes = np.array([[30, 40, 50, 100], [120, 50, 136, 90]], np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        rows = np.arange(y2 - y1)[:, None] + np.zeros(x2 - x1, int)[None]
        rgb[y1:y2, x1:x2] = (150 + 40 * k + rows % 50)[..., None].astype(np.uint8)
        thermal[y1:y2, x1:x2] = (3000 + 1000 * k + rows).astype(thermal_dtype)
    return rgb, thermal, boxes, np.array([0, 1], np.int64)


def test_a_paste_is_a_copy_of_a_source_object_in_both_cameras():
    rgb, thermal, boxes, labels = _scene()
    pasted = 0
    for seed in range(30):
        out_rgb, out_thermal, out_boxes, out_labels = paste_copies(
            rgb, thermal, boxes, labels, np.random.default_rng(seed), max_copies=1)
        assert out_rgb.dtype == rgb.dtype and out_thermal.dtype == thermal.dtype
        assert len(out_boxes) == len(out_labels) and out_labels.dtype == np.int64
        assert 0 <= out_boxes[:, 0].min() and out_boxes[:, 2].max() <= W
        assert 0 <= out_boxes[:, 1].min() and out_boxes[:, 3].max() <= H
        if np.array_equal(out_thermal, thermal):
            assert np.array_equal(out_boxes, boxes) and np.array_equal(out_rgb, rgb)
            continue
        pasted += 1
        x1, y1, x2, y2 = out_boxes[-1].astype(int)
        sx1, sy1, sx2, sy2 = boxes[out_labels[-1]].astype(int)  # label k is object k here
        assert (x2 - x1, y2 - y1) == (sx2 - sx1, sy2 - sy1)
        # past the feathered edge the paste is the source's pixels (maybe mirrored), both cameras
        for out, src in ((out_thermal, thermal), (out_rgb, rgb)):
            core, source = out[y1 + 3:y2 - 3, x1 + 3:x2 - 3], src[sy1 + 3:sy2 - 3, sx1 + 3:sx2 - 3]
            assert np.array_equal(core, source) or np.array_equal(core, source[:, ::-1])
        # the edge row is blended: strictly between what was there and the source's edge row
        edge, under = int(out_thermal[y1, (x1 + x2) // 2]), int(thermal[y1, (x1 + x2) // 2])
        lo, hi = sorted((under, int(thermal[sy1, sx1])))
        assert hi - lo < 10 or lo < edge < hi
    assert pasted >= 10
    assert np.array_equal(rgb, _scene()[0]) and np.array_equal(thermal, _scene()[1])


def test_an_object_hidden_by_a_paste_is_dropped_and_only_then():
    assert hidden_share(np.array([[10, 10, 30, 50], [100, 10, 120, 50]], np.float32),
                        np.array([15, 10, 35, 50], np.float32)).tolist() == [0.75, 0.0]
    rgb, thermal, boxes, labels = _scene()
    dropped = 0
    for seed in range(300):
        _, _, out_boxes, _ = paste_copies(rgb, thermal, boxes, labels,
                                          np.random.default_rng(seed), max_copies=1)
        for original in boxes:
            kept = (out_boxes == original).all(1).any()
            covered = len(out_boxes) > 0 and hidden_share(original[None], out_boxes[-1])[0] >= 0.7
            assert kept != covered or (out_boxes[-1] == original).all()
            dropped += not kept
    assert dropped >= 1


def test_no_boxes_no_paste():
    rgb, thermal, _, _ = _scene()
    out = paste_copies(rgb, thermal, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                       np.random.default_rng(0), max_copies=3)
    assert out[0] is rgb and out[1] is thermal and out[2].shape == (0, 4)


def test_train_augment_pastes_when_asked_and_is_reproducible():
    rgb, thermal, boxes, labels = _scene(np.uint8)
    sample = {'rgb': rgb, 'thermal': thermal, 'boxes': boxes, 'labels': labels, 'id': 'x'}
    cfg = AugmentConfig(size=(96, 160), scale_range=(1, 1), hflip_p=0.0, copy_paste_p=1.0)
    plain = AugmentConfig(size=(96, 160), scale_range=(1, 1), hflip_p=0.0)
    counts = [len(TrainAugment(cfg)(sample, np.random.default_rng(s))['boxes']) for s in range(20)]
    assert max(counts) > 2
    assert all(len(TrainAugment(plain)(sample, np.random.default_rng(s))['boxes']) == 2
               for s in range(5))
    a = TrainAugment(cfg)(sample, np.random.default_rng(7))
    b = TrainAugment(cfg)(sample, np.random.default_rng(7))
    assert np.array_equal(a['thermal'], b['thermal']) and np.array_equal(a['boxes'], b['boxes'])


def _donor_scene():
    """Another frame of the same camera: one tall object whose thermal is a constant 9000."""
    rgb = np.full((H, W, 3), 10, np.uint8)
    thermal = np.full((H, W), 100, np.uint16)
    rgb[20:100, 150:180] = 222
    thermal[20:100, 150:180] = 9000
    return {'rgb': rgb, 'thermal': thermal, 'boxes': np.array([[150, 20, 180, 100], [0, 0, 4, 4]],
            np.float32), 'labels': np.array([1, 0], np.int64), 'id': 'other'}


def test_donors_are_copies_of_a_frames_objects_big_enough_to_paste():
    frame = _donor_scene()
    donors = donors_of(frame)
    assert len(donors) == 1  # the 4 px box is left out
    (donor,) = donors
    assert donor.frame == 'other' and donor.label == 1
    assert donor.box.tolist() == [150, 20, 180, 100]
    assert donor.thermal.shape == (80, 30) and (donor.thermal == 9000).all()
    assert donor.rgb.shape == (80, 30, 3) and (donor.rgb == 222).all()
    frame['thermal'][:] = 0  # a copy, not a view of the frame
    assert (donor.thermal == 9000).all()


def test_donor_pastes_bring_the_other_frames_object_scaled_beside_or_on_its_own_row():
    rgb, thermal, boxes, labels = _scene()
    donors = donors_of(_donor_scene())
    heights = {int(b[3] - b[1]) for b in boxes}
    pasted = 0
    for seed in range(60):
        out_rgb, out_thermal, out_boxes, out_labels = paste_copies(
            rgb, thermal, boxes, labels, np.random.default_rng(seed), 1, donors, donor_p=1.0)
        if np.array_equal(out_thermal, thermal):
            continue
        pasted += 1
        x1, y1, x2, y2 = out_boxes[-1].astype(int)
        assert out_labels[-1] == 1
        # the core of the paste is the donor's pixels, in both cameras; not this frame's objects
        assert (out_thermal[y1 + 4:y2 - 4, x1 + 4:x2 - 4] == 9000).all()
        assert (out_rgb[y1 + 4:y2 - 4, x1 + 4:x2 - 4] == 222).all()
        h = y2 - y1
        # beside an object: that object's height +-10 %; on its own row: the donor's 80 px
        assert h == 80 or any(0.9 * a - 1 <= h <= 1.1 * a + 1 for a in heights)
    assert pasted >= 15


def test_without_donor_share_the_draws_are_those_of_own_copies():
    rgb, thermal, boxes, labels = _scene()
    donors = donors_of(_donor_scene())
    for seed in range(10):
        a = paste_copies(rgb, thermal, boxes, labels, np.random.default_rng(seed), 3)
        b = paste_copies(rgb, thermal, boxes, labels, np.random.default_rng(seed), 3, donors, 0.0)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_train_augment_takes_donors_of_the_samples_dataset_and_never_its_own_frame():
    rgb, thermal, boxes, labels = _scene()
    sample = {'rgb': rgb, 'thermal': thermal, 'boxes': boxes, 'labels': labels, 'id': 'x',
              'dataset': 'cam'}
    cfg = AugmentConfig(size=(H, W), scale_range=(1, 1), hflip_p=0.0, photometric_p=0.0,
                        copy_paste_p=1.0, copy_paste_donor_p=1.0, thermal_range=(0, 10000))
    hot = 9000 / 10000

    def hot_pixels(augment, sample):
        return sum(int((augment(sample, np.random.default_rng(s))['thermal'] >= hot - 1e-4).sum())
                   for s in range(20))

    other = donors_of(_donor_scene())
    assert hot_pixels(TrainAugment(cfg, donors={'cam': other}), sample) > 0
    assert hot_pixels(TrainAugment(cfg, donors={'elsewhere': other}), sample) == 0
    own = [d._replace(frame='x') for d in other]
    assert hot_pixels(TrainAugment(cfg, donors={'cam': own}), sample) == 0


@pytest.mark.parametrize('bad', [{'copy_paste_p': 1.5}, {'copy_paste_max': 0},
                                 {'copy_paste_donor_p': -0.1}])
def test_bad_copy_paste_settings_are_refused(bad):
    with pytest.raises(AugmentError):
        AugmentConfig(**bad)
