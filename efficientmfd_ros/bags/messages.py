"""sensor_msgs/Image and vision_msgs/Detection2DArray as rosbags message objects <-> numpy.

Boxes are ``xyxy`` float pixels of the image the detections refer to; a Detection2D stores them as
centre + full size (``bbox.center.position.{x,y}``, ``size_x``, ``size_y``), theta 0. Each
detection carries one hypothesis: ``class_id`` (a string; class names for ground truth written by
``make_bag``, whatever the node publishes for predictions) and ``score``.
"""
from dataclasses import dataclass

import numpy as np

from efficientmfd_ros.bags.bagio import typestore
from efficientmfd_ros.core.image_codec import image_to_numpy, numpy_to_image

_NS = 1_000_000_000


def stamp_ns(header):
    """Header stamp as integer nanoseconds."""
    return int(header.stamp.sec) * _NS + int(header.stamp.nanosec)


def make_header(stamp, frame_id=''):
    """A std_msgs/Header stamped ``stamp`` integer nanoseconds."""
    types = typestore().types
    sec, nanosec = divmod(int(stamp), _NS)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_message(array, encoding, stamp, frame_id=''):
    """A sensor_msgs/Image of ``array`` (HxW or HxWxC, as ``encoding`` needs), stamped
    ``stamp`` ns."""
    fields = numpy_to_image(array, encoding)
    return typestore().types['sensor_msgs/msg/Image'](
        header=make_header(stamp, frame_id), height=fields.height, width=fields.width,
        encoding=fields.encoding, is_bigendian=fields.is_bigendian, step=fields.step,
        data=np.frombuffer(fields.data, dtype=np.uint8))


def image_array(message):
    """``(array, encoding)`` of a sensor_msgs/Image; raises ImageConversionError if malformed."""
    return image_to_numpy(message.height, message.width, message.encoding,
                          message.is_bigendian, message.step, message.data), message.encoding


@dataclass
class BoxSet:
    """Detections of one image: ``boxes`` (K,4) float32 xyxy pixels, ``class_ids`` list of K
    strings, ``scores`` (K,) float32, ``stamp_ns`` of the image."""

    stamp_ns: int
    boxes: np.ndarray
    class_ids: list
    scores: np.ndarray

    def __len__(self):
        return len(self.class_ids)


def detections_message(stamp, boxes, class_ids, scores=None, frame_id=''):
    """A vision_msgs/Detection2DArray stamped ``stamp`` ns from ``boxes`` (K,4) xyxy pixels,
    ``class_ids`` (K strings) and ``scores`` (K,), default 1.0 (ground truth)."""
    types = typestore().types
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(class_ids) != len(boxes):
        raise ValueError(f'{len(boxes)} boxes but {len(class_ids)} class ids')
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=np.float64)
    header = make_header(stamp, frame_id)
    detections = []
    for (x0, y0, x1, y1), class_id, score in zip(boxes, class_ids, scores):
        pose = types['geometry_msgs/msg/PoseWithCovariance'](
            pose=types['geometry_msgs/msg/Pose'](
                position=types['geometry_msgs/msg/Point'](x=0.0, y=0.0, z=0.0),
                orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36))
        hypothesis = types['vision_msgs/msg/ObjectHypothesisWithPose'](
            hypothesis=types['vision_msgs/msg/ObjectHypothesis'](
                class_id=str(class_id), score=float(score)), pose=pose)
        bbox = types['vision_msgs/msg/BoundingBox2D'](
            center=types['vision_msgs/msg/Pose2D'](
                position=types['vision_msgs/msg/Point2D'](x=(x0 + x1) / 2, y=(y0 + y1) / 2),
                theta=0.0),
            size_x=float(x1 - x0), size_y=float(y1 - y0))
        detections.append(types['vision_msgs/msg/Detection2D'](
            header=header, results=[hypothesis], bbox=bbox, id=''))
    return types['vision_msgs/msg/Detection2DArray'](header=header, detections=detections)


def detections_boxes(message):
    """``BoxSet`` of a Detection2DArray; a detection's class is its best-scoring hypothesis
    (one without hypotheses gets class id '' and score 0)."""
    boxes, class_ids, scores = [], [], []
    for det in message.detections:
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        half_w, half_h = det.bbox.size_x / 2, det.bbox.size_y / 2
        boxes.append((cx - half_w, cy - half_h, cx + half_w, cy + half_h))
        best = max(det.results, key=lambda r: r.hypothesis.score, default=None)
        class_ids.append(best.hypothesis.class_id if best else '')
        scores.append(best.hypothesis.score if best else 0.0)
    return BoxSet(stamp_ns(message.header), np.asarray(boxes, np.float32).reshape(-1, 4),
                  class_ids, np.asarray(scores, np.float32))
