"""Turn the node's recorded live outputs into collector records, pair by pair.

The input bag is paired again with the node's policy (``ApproximatePairer``, same parameters) to
know each answered RGB image's thermal partner; an answer whose RGB image did not pair that way
(the node may pair differently under load) is still scored, without fusion metrics.
"""
import numpy as np

from efficientmfd_ros.bags.bagio import BagError
from efficientmfd_ros.bags.messages import detections_boxes, image_array, stamp_ns
from efficientmfd_ros.core.image_codec import ImageConversionError, as_rgb8
from efficientmfd_ros.core.pairing import ApproximatePairer
from efficientmfd_ros.evaluation.ground_truth import class_index
from efficientmfd_ros.evaluation.offline import decode_pair, pairing_stats


def _labels(class_ids, class_names):
    """Class indices of the node's class_id strings; unknown ids become -1 (never match)."""
    out = [class_index(c, class_names) for c in class_ids]
    return np.asarray([-1 if i is None else i for i in out], np.int64)


def _fused(message):
    if message is None:
        return None
    try:
        return as_rgb8(*image_array(message))
    except ImageConversionError as exc:
        raise BagError(f'fused image at {stamp_ns(message.header)} ns is malformed: {exc}') \
            from exc


def feed_live(reader, outputs, collector, rgb_topic, thermal_topic, sync, float_range=None):
    """Add every answered RGB image to ``collector``; return (pairing stats of the input bag,
    per-pair wait-free latencies in ms)."""
    pairer = ApproximatePairer(2, queue_size=sync.queue_size, slop_s=sync.slop_s,
                               max_backwards_s=sync.max_backwards_s,
                               match_wait_s=sync.match_wait_s)
    index = {rgb_topic: 0, thermal_topic: 1}
    after_pair = []

    def add(rgb_msg, thermal_msg):
        stamp = stamp_ns(rgb_msg.header)
        arrival, det_msg = outputs.detections[stamp]
        boxes = detections_boxes(det_msg)
        if thermal_msg is None:
            rgb, thermal = as_rgb8(*image_array(rgb_msg)), None
        else:
            rgb, thermal = decode_pair(rgb_msg, thermal_msg, float_range)
        sent_rgb = outputs.sent.get((rgb_topic, stamp))
        if sent_rgb is None:
            return
        if thermal_msg is not None:
            sent_th = outputs.sent.get((thermal_topic, stamp_ns(thermal_msg.header)), sent_rgb)
            after_pair.append((arrival - max(sent_rgb, sent_th)) / 1e6)
        collector.add(stamp, rgb, thermal, boxes.boxes, boxes.scores,
                      _labels(boxes.class_ids, collector.class_names),
                      _fused(outputs.fused.get(stamp)), (arrival - sent_rgb) / 1e6,
                      arrival_ns=arrival)

    for message in reader.messages([rgb_topic, thermal_topic]):
        image = reader.decode(message)
        for pair in pairer.add(index[message.topic], stamp_ns(image.header) / 1e9, image):
            if stamp_ns(pair.items[0].header) in outputs.detections:
                add(*pair.items)
    leftovers = set(outputs.detections) - set(collector.records)
    if leftovers:
        for message in reader.messages([rgb_topic]):
            image = reader.decode(message)
            if stamp_ns(image.header) in leftovers:
                add(image, None)
    return pairing_stats(pairer), after_pair
