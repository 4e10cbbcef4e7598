"""make_bag writes real ROS 2 bags: images, stamps and boxes read back unchanged, both storages."""
import numpy as np
import pytest
import yaml

from efficientmfd_ros.bags.bagio import DETECTIONS, DETECTIONS_RIHS01, IMAGE, BagReader
from efficientmfd_ros.bags.frame_source import synthetic_frames
from efficientmfd_ros.bags.make import GT_TOPIC, RGB_TOPIC, THERMAL_TOPIC, write_bag
from efficientmfd_ros.bags.messages import detections_boxes, image_array, stamp_ns
from efficientmfd_ros.core.image_codec import as_rgb8, as_thermal
from efficientmfd_ros.tools.make_bag import main

SIZE = (96, 64)


def _read_all(path):
    got = {RGB_TOPIC: [], THERMAL_TOPIC: [], GT_TOPIC: []}
    with BagReader(path) as reader:
        for message in reader.messages(list(got)):
            got[message.topic].append((message.log_time_ns, reader.decode(message)))
        return got, dict(reader.topics), reader.custom_data


@pytest.mark.parametrize('storage,rgb_enc,th_enc', [('mcap', 'rgb8', 'mono8'),
                                                    ('sqlite3', 'bgr8', 'mono16')])
def test_bag_reads_back_identical(tmp_path, storage, rgb_enc, th_enc):
    frames = list(synthetic_frames(5, SIZE, seed=3, class_names=('person', 'car')).frames)
    frame_set = synthetic_frames(5, SIZE, seed=3, class_names=('person', 'car'))
    records = write_bag(frame_set, tmp_path / 'bag', storage, rate_hz=20.0,
                        thermal_offset_ms=7.0, jitter_ms=4.0, rgb_encoding=rgb_enc,
                        thermal_encoding=th_enc, seed=5, progress=False)
    got, topics, custom = _read_all(tmp_path / 'bag')
    assert {t: (i.msgtype, i.count) for t, i in topics.items()} == {
        RGB_TOPIC: (IMAGE, 5), THERMAL_TOPIC: (IMAGE, 5), GT_TOPIC: (DETECTIONS, 5)}
    assert custom['class_names'] == 'person,car'
    for frame, (_, rgb_ns, th_ns), (rgb_log, rgb), (th_log, th), (gt_log, gt) in zip(
            frames, records, got[RGB_TOPIC], got[THERMAL_TOPIC], got[GT_TOPIC]):
        assert stamp_ns(rgb.header) == rgb_ns == rgb_log == gt_log == stamp_ns(gt.header)
        assert stamp_ns(th.header) == th_ns == th_log
        assert abs(th_ns - rgb_ns - 7_000_000) <= 8_000_000  # offset +- 2 x jitter
        array, encoding = image_array(rgb)
        assert encoding == rgb_enc
        np.testing.assert_array_equal(as_rgb8(array, encoding), frame.rgb)
        array, encoding = image_array(th)
        assert encoding == th_enc
        expected = frame.thermal.astype(np.uint16) * 257 if th_enc == 'mono16' else frame.thermal
        np.testing.assert_array_equal(as_thermal(array, encoding), expected)
        boxes = detections_boxes(gt)
        assert boxes.class_ids == frame.labels
        np.testing.assert_allclose(boxes.boxes, frame.boxes, atol=1e-4)
        np.testing.assert_array_equal(boxes.scores, np.ones(len(frame.labels), np.float32))
    # jitter and offset still leave messages in receive-time order in the bag
    logs = [m for topic in got.values() for m, _ in topic]
    assert len(set(logs)) >= 10


def test_metadata_type_hashes(tmp_path):
    assert main(['--synthetic', '2', '--size', '64x48', '--out', str(tmp_path / 'bag'),
                 '--quiet']) == 0
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = meta['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap'
    hashes = {t['topic_metadata']['name']: t['topic_metadata']['type_description_hash']
              for t in info['topics_with_message_count']}
    assert hashes[GT_TOPIC] == DETECTIONS_RIHS01
    assert hashes[RGB_TOPIC] == hashes[THERMAL_TOPIC]
    assert hashes[RGB_TOPIC].startswith('RIHS01_')
    assert info['message_count'] == 6


@pytest.mark.ros
def test_rclpy_decodes_the_bag_cdr(tmp_path):
    """The CDR rosbags wrote is what real ROS messages deserialize from."""
    serialization = pytest.importorskip('rclpy.serialization')
    vision = pytest.importorskip('vision_msgs.msg')
    sensor = pytest.importorskip('sensor_msgs.msg')
    frame_set = synthetic_frames(2, SIZE, seed=1, class_names=('person', 'car'))
    frames = list(synthetic_frames(2, SIZE, seed=1, class_names=('person', 'car')).frames)
    write_bag(frame_set, tmp_path / 'bag', progress=False)
    with BagReader(tmp_path / 'bag') as reader:
        gts = [m for m in reader.messages([GT_TOPIC])]
        rgbs = [m for m in reader.messages([RGB_TOPIC])]
    for frame, gt, rgb in zip(frames, gts, rgbs):
        msg = serialization.deserialize_message(gt.raw, vision.Detection2DArray)
        assert [d.results[0].hypothesis.class_id for d in msg.detections] == frame.labels
        for det, box in zip(msg.detections, frame.boxes):
            assert det.bbox.center.position.x == pytest.approx((box[0] + box[2]) / 2, abs=1e-4)
            assert det.bbox.size_y == pytest.approx(box[3] - box[1], abs=1e-4)
        image = serialization.deserialize_message(rgb.raw, sensor.Image)
        data = np.frombuffer(bytes(image.data), np.uint8).reshape(frame.rgb.shape)
        np.testing.assert_array_equal(data, frame.rgb)


@pytest.mark.data
def test_make_bag_from_llvip(llvip_person, tmp_path):
    from efficientmfd_ros.train.data.labels import parse_voc
    split = tmp_path / 'split.txt'
    split.write_text('010003\n010001\n')
    assert main(['--data', str(llvip_person), '--split', str(split), '--out',
                 str(tmp_path / 'bag'), '--size', '320x256', '--quiet']) == 0
    got, topics, custom = _read_all(tmp_path / 'bag')
    assert custom['class_names'] == 'person'
    assert topics[RGB_TOPIC].count == 2
    for name, (_, gt) in zip(('010003', '010001'), got[GT_TOPIC]):
        voc = np.array([c for _, c in parse_voc(llvip_person / 'Annotations' / f'{name}.xml')
                        .entries], np.float32) / 4  # 1280x1024 -> 320x256
        boxes = detections_boxes(gt)
        assert len(boxes) == len(voc)
        np.testing.assert_allclose(np.sort(boxes.boxes, 0), np.sort(voc, 0), atol=0.3)
