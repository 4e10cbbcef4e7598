"""efficientmfd_viz renders any bag's images with its Detection2DArray boxes."""
import cv2
import numpy as np
import pytest

from efficientmfd_ros.bags.bagio import DETECTIONS, BagWriter, typestore
from efficientmfd_ros.bags.messages import detections_message, make_header
from efficientmfd_ros.core.image_codec import numpy_to_compressed
from efficientmfd_ros.tools.viz import main as viz_main

ORANGE_BGR = ((0, 90, 200), (90, 180, 256))  # per-channel [low, high) of the prediction colour


def _orange(image):
    (b0, g0, r0), (b1, g1, r1) = ORANGE_BGR
    return ((image[:, :, 0] < b1) & (image[:, :, 1] >= g0) & (image[:, :, 1] < g1)
            & (image[:, :, 2] >= r0)).sum()


def test_viz_renders_pngs_and_video(tiny_bag, tmp_path):
    assert viz_main(['--bag', str(tiny_bag), '--out', str(tmp_path / 'png'), '--quiet']) == 0
    pngs = sorted((tmp_path / 'png' / 'rgb_image_raw').glob('*.png'))
    assert len(pngs) == 6 and len(list((tmp_path / 'png' / 'thermal_image_raw').glob('*'))) == 6
    image = cv2.imread(str(pngs[0]))
    assert image.shape == (64, 96, 3)
    # the green ground-truth boxes are drawn on the RGB frames
    green = (image[:, :, 1] > 180) & (image[:, :, 2] < 120) & (image[:, :, 0] < 150)
    assert green.sum() > 20
    assert viz_main(['--bag', str(tiny_bag), '--out', str(tmp_path / 'mp4'), '--video',
                     '--quiet']) == 0
    assert (tmp_path / 'mp4' / 'rgb_image_raw.mp4').stat().st_size > 1000


def test_viz_compressed_images_with_predictions(tmp_path):
    types = typestore().types
    stamp = 5_000_000_000
    image = np.full((120, 160, 3), 40, np.uint8)
    fmt, data = numpy_to_compressed(image, 'rgb8', 'png')
    with BagWriter(tmp_path / 'bag', 'sqlite3') as bag:
        bag.add_topic('/cam/compressed', 'sensor_msgs/msg/CompressedImage')
        bag.add_topic('/detections', DETECTIONS)
        bag.write('/cam/compressed', stamp, types['sensor_msgs/msg/CompressedImage'](
            header=make_header(stamp, 'cam'), format=fmt, data=np.frombuffer(data, np.uint8)))
        bag.write('/detections', stamp, detections_message(
            stamp, [[20, 30, 90, 100]], ['0'], [0.75], 'cam'))
    assert viz_main(['--bag', str(tmp_path / 'bag'), '--out', str(tmp_path / 'out'),
                     '--quiet']) == 0
    drawn = cv2.imread(str(tmp_path / 'out' / 'cam_compressed' / f'{stamp}.png'))
    assert drawn.shape == (120, 160, 3) and _orange(drawn) > 100
    assert (drawn[60:90, 40:80] == 40).all()  # inside the box the image is untouched


def test_viz_bag_without_images(tmp_path, capsys):
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/detections', DETECTIONS)
        bag.write('/detections', 1, detections_message(1, [], []))
    assert viz_main(['--bag', str(tmp_path / 'bag'), '--out', str(tmp_path / 'out')]) == 2
    assert 'no sensor_msgs Image or CompressedImage topic; it contains: /detections' in \
        capsys.readouterr().err


@pytest.mark.parametrize('encoding', ['mono16'])
def test_display_stretches_16_bit(encoding):
    from efficientmfd_ros.evaluation.viz import display_rgb
    thermal = np.linspace(30000, 31000, 64 * 48).reshape(48, 64).astype(np.uint16)
    shown = display_rgb(thermal, encoding)
    assert shown.shape == (48, 64, 3) and shown.min() == 0 and shown.max() == 255
