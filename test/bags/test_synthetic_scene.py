"""The built-in RGB-thermal sequence: deterministic, boxes that hold warm bodies, night RGB."""
import numpy as np
import pytest

from efficientmfd_ros.bags.synthetic_scene import render_sequence


def test_same_seed_same_pixels_other_seed_other_scene():
    a = render_sequence(3, 128, 96, seed=7)
    b = render_sequence(3, 128, 96, seed=7)
    c = render_sequence(3, 128, 96, seed=8)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        np.testing.assert_array_equal(fa.thermal, fb.thermal)
        np.testing.assert_array_equal(fa.boxes, fb.boxes)
    assert not np.array_equal(a[0].rgb, c[0].rgb)


def test_boxes_hold_warm_moving_people():
    frames = render_sequence(12, 320, 256, seed=0, class_names=('person', 'car'))
    assert frames[0].rgb.shape == (256, 320, 3) and frames[0].thermal.shape == (256, 320)
    assert frames[0].rgb.dtype == np.uint8 and frames[0].thermal.dtype == np.uint8
    people = 0
    for frame in frames:
        assert set(frame.labels) <= {'person', 'car'}
        assert len(frame.labels) == len(frame.boxes)
        assert (frame.boxes[:, :2] >= 0).all() and (frame.boxes[:, 2] <= 320).all()
        assert (frame.boxes[:, 3] <= 256).all()
        assert (frame.boxes[:, 2:] > frame.boxes[:, :2]).all()
        for box, label in zip(frame.boxes.astype(int), frame.labels):
            if label != 'person':
                continue
            people += 1
            x1, y1, x2, y2 = box
            inside = frame.thermal[y1:y2, x1:x2]
            # the body is the hottest thing in its box, far above the street behind it
            assert inside.max() > np.median(frame.thermal) + 80
    assert people >= 12
    # night: the RGB view is dim; things move between frames
    assert frames[0].rgb.mean() < 70
    assert not np.array_equal(frames[0].boxes, frames[5].boxes)


def test_only_asked_classes_are_labelled():
    frames = render_sequence(4, 160, 128, seed=1, class_names=('person',))
    assert all(set(f.labels) <= {'person'} for f in frames)
    both = render_sequence(4, 160, 128, seed=1, class_names=('person', 'car'))
    assert sum(f.labels.count('car') for f in both) > 0
    # the cars are drawn either way: same pixels, only the labels differ
    np.testing.assert_array_equal(frames[2].rgb, both[2].rgb)


def test_bad_sizes_refused():
    with pytest.raises(ValueError, match='at least 32x32'):
        render_sequence(2, 16, 16)
    with pytest.raises(ValueError, match='num_frames'):
        render_sequence(0)
