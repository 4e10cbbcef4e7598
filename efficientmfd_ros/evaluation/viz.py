"""Bag drawing (efficientmfd_viz): a bag's images with its Detection2DArray boxes, for people
without RViz.

Every sensor_msgs/Image or CompressedImage topic (or those given with --image-topic) is drawn
with the boxes of every Detection2DArray topic carrying the same header stamp: topics whose name
contains 'ground_truth' in green, the others (predictions) in orange with scores. Class ids become
names through the bag's vision_msgs/LabelInfo, else its ``class_names`` custom data. Output:
DIR/<topic>/<stamp>.png per frame, or with --video one DIR/<topic>.mp4 per image topic.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from efficientmfd_ros.bags.bagio import DETECTIONS, IMAGE, BagError, BagReader
from efficientmfd_ros.bags.messages import detections_boxes, image_array, stamp_ns
from efficientmfd_ros.core.image_codec import (
    ImageConversionError,
    as_rgb8,
    compressed_to_numpy,
)
from efficientmfd_ros.evaluation.drawing import GT_COLOUR, PRED_COLOUR, VideoSink, draw_boxes

LABEL_INFO = 'vision_msgs/msg/LabelInfo'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE, COMPRESSED)


def build_parser():
    parser = argparse.ArgumentParser(prog='efficientmfd_viz', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--bag', required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--video', action='store_true', help='MP4 per image topic, not PNGs')
    parser.add_argument('--image-topic', action='append', help='only these image topics')
    parser.add_argument('--every', type=int, default=1, help='render one frame in N')
    parser.add_argument('--fps', type=float, default=10.0, help='video frame rate')
    parser.add_argument('--quiet', action='store_true')
    return parser


def display_rgb(array, encoding):
    """Any supported image as (H,W,3) uint8 RGB; 16-bit and float grey are min-max stretched."""
    if array.dtype != np.uint8:
        grey = array.astype(np.float64)
        low, high = np.nanmin(grey), np.nanmax(grey)
        grey = np.nan_to_num((grey - low) / (high - low if high > low else 1.0) * 255.0)
        return cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return as_rgb8(array, encoding)


def class_names_of(reader):
    names = {}
    label_topics = [t for t, i in reader.topics.items() if i.msgtype == LABEL_INFO]
    for message in reader.messages(label_topics):
        for entry in reader.decode(message).class_map:
            names[str(entry.class_id)] = entry.class_name
    return names


def load_detections(reader):
    """{topic: {stamp_ns: BoxSet}} of every Detection2DArray topic."""
    topics = [t for t, i in reader.topics.items() if i.msgtype == DETECTIONS]
    boxes = {t: {} for t in topics}
    for message in reader.messages(topics):
        found = detections_boxes(reader.decode(message))
        boxes[message.topic][found.stamp_ns] = found
    return boxes


def render(image, stamp, detections, names):
    for topic, per_stamp in detections.items():
        found = per_stamp.get(stamp)
        if found is None:
            continue
        labels = [names.get(c, c) for c in found.class_ids]
        if 'ground_truth' in topic:
            image = draw_boxes(image, found.boxes, labels, GT_COLOUR, below=True)
        else:
            image = draw_boxes(image, found.boxes, labels, PRED_COLOUR, scores=found.scores)
    return image


def _folder_name(topic):
    return topic.strip('/').replace('/', '_') or 'root'


def visualize(args):
    """Render the bag; return {image topic: frames written}."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with BagReader(args.bag) as reader:
        topics = args.image_topic or [t for t, i in reader.topics.items()
                                      if i.msgtype in IMAGE_TYPES]
        if not topics:
            raise BagError(f'bag {args.bag} has no sensor_msgs Image or CompressedImage topic; '
                           f'it contains: {reader.describe()}')
        for topic in topics:
            info = reader.topics.get(topic)
            reader.require(topic, info.msgtype if info and info.msgtype in IMAGE_TYPES else IMAGE)
        names = {str(i): n for i, n in enumerate(
            n for n in reader.custom_data.get('class_names', '').split(',') if n)}
        names.update(class_names_of(reader))
        detections = load_detections(reader)
        sinks = {t: VideoSink(out / f'{_folder_name(t)}.mp4', args.fps) for t in topics} \
            if args.video else {}
        seen = {t: 0 for t in topics}
        total = sum(reader.topics[t].count for t in topics)
        for message in tqdm(reader.messages(topics), total=total, desc='viz', unit='img',
                            disable=args.quiet):
            seen[message.topic] += 1
            if (seen[message.topic] - 1) % max(1, args.every):
                continue
            msg = reader.decode(message)
            try:
                image = display_rgb(*(compressed_to_numpy(msg.format, msg.data)
                                      if message.msgtype == COMPRESSED else image_array(msg)))
            except ImageConversionError as exc:
                raise BagError(f'{message.topic} at {message.log_time_ns} ns: {exc}') from exc
            stamp = stamp_ns(msg.header)
            image = render(image, stamp, detections, names)
            if args.video:
                sinks[message.topic].add(image)
            else:
                folder = out / _folder_name(message.topic)
                folder.mkdir(exist_ok=True)
                cv2.imwrite(str(folder / f'{stamp}.png'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            written[message.topic] = written.get(message.topic, 0) + 1
        for sink in sinks.values():
            sink.close()
    return written
