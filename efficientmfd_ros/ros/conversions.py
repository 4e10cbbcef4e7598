"""Messages <-> numpy and detector outputs -> vision_msgs / diagnostic_msgs.

Image decoding and encoding go through ``core.image_codec`` (the cv_bridge job); this module only
moves fields between messages and that codec. Box convention of ``Detections.boxes``: ``xyxy``
float32 pixels of the RGB image; vision_msgs wants centre + size in the same pixels.
"""
from array import array

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)

from efficientmfd_ros.core.image_codec import (
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image,
)


def camera_info_with_header(info: CameraInfo, header) -> CameraInfo:
    """A copy of ``info`` carrying ``header`` (the fused image's), every other field kept."""
    out = CameraInfo()
    for name in info.get_fields_and_field_types():
        setattr(out, name, getattr(info, name))
    out.header = header
    return out


LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR, 'stale': DiagnosticStatus.STALE}


def image_msg_to_numpy(msg):
    """sensor_msgs/Image -> ``(array, encoding)``; array HxW or HxWxC in the encoding's dtype.

    Raises ``ImageConversionError`` for an unsupported encoding or a data length that does not
    match ``height * step``.
    """
    array_ = image_to_numpy(msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step,
                            msg.data)
    return array_, msg.encoding


def compressed_msg_to_numpy(msg):
    """sensor_msgs/CompressedImage -> ``(array, encoding)`` ('rgb8', 'mono8' or 'mono16')."""
    return compressed_to_numpy(msg.format, msg.data)


def numpy_to_image_msg(image, encoding, header):
    """An array -> sensor_msgs/Image with ``header`` (copied by reference, never restamped)."""
    fields = numpy_to_image(image, encoding)
    msg = Image(header=header, height=fields.height, width=fields.width,
                encoding=fields.encoding, is_bigendian=fields.is_bigendian, step=fields.step)
    # array('B', bytes) is one memcpy; assigning bytes or a list is checked value by value
    msg.data = array('B', fields.data)
    return msg


def class_id_text(label, class_names, as_name):
    """The hypothesis class_id: the index as text, or its name when ``as_name``."""
    label = int(label)
    if as_name and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def detections_to_msg(detections, header, class_names, class_id_as_name=False):
    """Detections -> vision_msgs/Detection2DArray stamped with ``header`` (the RGB input's).

    ``detections.boxes`` (K,4) float32 xyxy RGB pixels, ``scores`` (K,), ``labels`` (K,) int.
    Each Detection2D carries the same header; ``bbox.center.position`` is the box centre and
    ``size_x``/``size_y`` its width/height, in RGB pixels. K = 0 gives an empty array.
    """
    out = Detection2DArray(header=header)
    boxes = detections.boxes.tolist()
    scores = detections.scores.tolist()
    labels = detections.labels.tolist()
    for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels):
        det = Detection2D(header=header)
        det.bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        det.bbox.center.position.x = (x1 + x2) / 2.0
        det.bbox.center.position.y = (y1 + y2) / 2.0
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = class_id_text(label, class_names, class_id_as_name)
        hyp.hypothesis.score = float(score)
        det.results = [hyp]
        out.detections.append(det)
    return out


def label_info_msg(class_names, threshold, header):
    """vision_msgs/LabelInfo: class index -> name, and the score threshold in use."""
    return LabelInfo(
        header=header,
        class_map=[VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(class_names)],
        threshold=float(threshold))


def diagnostic_status(name, level, message, hardware_id, values):
    """A DiagnosticStatus; ``level`` is 'ok' | 'warn' | 'error' | 'stale', ``values`` a dict
    whose values are formatted as text (floats with 3 decimals)."""
    pairs = []
    for key, value in values.items():
        text = f'{value:.3f}' if isinstance(value, float) else str(value)
        pairs.append(KeyValue(key=str(key), value=text))
    return DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                            hardware_id=hardware_id, values=pairs)
