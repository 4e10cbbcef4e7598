"""Bag making: a paired RGB-thermal dataset (or the synthetic scene) -> a ROS 2 bag.

Topics: ``/rgb/image_raw`` and ``/thermal/image_raw`` (sensor_msgs/Image) and
``/ground_truth/detections`` (vision_msgs/Detection2DArray: class_id = class name, score 1, boxes
in RGB pixels, stamped exactly as the RGB frame). Frame ``i`` is stamped
``start + i / rate`` on RGB and ``start + i / rate + thermal_offset`` on thermal, each plus a
uniform jitter in ``[-jitter, +jitter]`` drawn from ``--seed``; a message's bag (receive) time
equals its stamp. ``metadata.yaml`` carries ``custom_data`` ``class_names`` (comma separated) and
``source``.
"""
import heapq
import itertools

import numpy as np
from tqdm import tqdm

from efficientmfd_ros.bags.bagio import DETECTIONS, IMAGE, BagError, BagWriter
from efficientmfd_ros.bags.messages import detections_message, image_message
from efficientmfd_ros.core.image_codec import thermal_to_uint8

RGB_TOPIC = '/rgb/image_raw'
THERMAL_TOPIC = '/thermal/image_raw'
GT_TOPIC = '/ground_truth/detections'
# REP 103 optical frames; config/mfd.rviz uses RGB_FRAME as its fixed frame
RGB_FRAME = 'rgb_camera_optical_frame'
THERMAL_FRAME = 'thermal_camera_optical_frame'
START_NS = 1_700_000_000 * 1_000_000_000  # a fixed epoch so equal inputs give equal bags


def write_bag(frame_set, out, storage='mcap', rate_hz=10.0, thermal_offset_ms=0.0,
              jitter_ms=0.0, rgb_encoding='rgb8', thermal_encoding='mono8', seed=0,
              progress=True):
    """Write ``frame_set`` (a ``FrameSet``) as a bag at ``out``; return per-frame records
    ``[(name, rgb_stamp_ns, thermal_stamp_ns)]``."""
    if not rate_hz > 0:
        raise BagError(f'--rate-hz must be > 0, got {rate_hz}')
    if jitter_ms < 0 or jitter_ms * 2 >= 1000.0 / rate_hz:
        raise BagError(f'--jitter-ms {jitter_ms} must be >= 0 and under half the frame period '
                       f'({500.0 / rate_hz:.1f} ms), or frames would reorder')
    period_ns = round(1e9 / rate_hz)
    offset_ns = round(thermal_offset_ms * 1e6)
    start = START_NS + max(0, -offset_ns) + round(jitter_ms * 1e6)  # keeps stamps positive
    rng = np.random.default_rng(seed + 1)
    custom = {'class_names': ','.join(frame_set.class_names), 'source': frame_set.source}
    records, pending = [], []  # pending: a heap that writes messages in receive-time order
    order = itertools.count()
    with BagWriter(out, storage, custom_data=custom) as bag:
        bag.add_topic(RGB_TOPIC, IMAGE)
        bag.add_topic(THERMAL_TOPIC, IMAGE)
        bag.add_topic(GT_TOPIC, DETECTIONS)
        for index, frame in enumerate(tqdm(frame_set.frames, total=frame_set.count,
                                           desc='make_bag', unit='frame', disable=not progress)):
            jitter = np.rint(rng.uniform(-jitter_ms, jitter_ms, 2) * 1e6).astype(np.int64)
            rgb_ns = start + index * period_ns + int(jitter[0])
            th_ns = start + index * period_ns + offset_ns + int(jitter[1])
            rgb = frame.rgb[:, :, ::-1] if rgb_encoding == 'bgr8' else frame.rgb
            thermal = _thermal_as(frame.thermal, thermal_encoding)
            messages = [
                (rgb_ns, RGB_TOPIC, image_message(np.ascontiguousarray(rgb), rgb_encoding,
                                                  rgb_ns, RGB_FRAME)),
                (rgb_ns, GT_TOPIC, detections_message(rgb_ns, frame.boxes, frame.labels,
                                                      frame_id=RGB_FRAME)),
                (th_ns, THERMAL_TOPIC, image_message(thermal, thermal_encoding, th_ns,
                                                     THERMAL_FRAME))]
            for log_ns, topic, message in messages:
                heapq.heappush(pending, (log_ns, next(order), topic, message))
            # no later frame has a message before this bound: write what precedes it
            bound = start + index * period_ns - abs(offset_ns) - round(jitter_ms * 1e6)
            while pending and pending[0][0] < bound:
                _flush_one(bag, pending)
            records.append((frame.name, rgb_ns, th_ns))
        while pending:
            _flush_one(bag, pending)
    return records


def _thermal_as(thermal, encoding):
    """8-bit thermal scaled by 257 for mono16 (and back), so both span the full range."""
    if encoding == 'mono16' and thermal.dtype == np.uint8:
        return thermal.astype(np.uint16) * 257
    if encoding == 'mono8' and thermal.dtype == np.uint16:
        return thermal_to_uint8(thermal)
    return thermal


def _flush_one(bag, pending):
    log_ns, _, topic, message = heapq.heappop(pending)
    bag.write(topic, log_ns, message)
