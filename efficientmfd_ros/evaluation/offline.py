"""Offline bag evaluation: pair the bag's images exactly as the node would and run the detector.

Messages are fed to ``ApproximatePairer`` in bag (receive-time) order with their header stamps,
the order in which the node would receive them from a replay; each pair is converted as the node
converts it (``as_rgb8`` / ``as_thermal``) and goes through ``FusionDetector.infer``. Offline
``latency_ms`` is the wall time of that ``infer`` call: the compute cost alone, no transport and no
waiting for a partner. Deterministic for a deterministic detector.
"""
from dataclasses import dataclass
import time

from tqdm import tqdm

from efficientmfd_ros.bags.bagio import IMAGE, BagError
from efficientmfd_ros.bags.messages import image_array, stamp_ns
from efficientmfd_ros.core.image_codec import ImageConversionError, as_rgb8, thermal_input
from efficientmfd_ros.core.pairing import ApproximatePairer


@dataclass(frozen=True)
class SyncConfig:
    """The node's pairing parameters (defaults equal ``ros/params.py``'s, a test checks it)."""

    slop_s: float = 0.02  # approximate_sync_tolerance_s
    queue_size: int = 10  # queue_size
    max_backwards_s: float = 1.0  # max_backwards_s
    match_wait_s: float = 0.0  # approximate_sync_wait_s


def decode_pair(rgb_msg, thermal_msg, float_range=None):
    """(rgb (H,W,3) uint8, thermal (h,w) uint8|uint16) from two sensor_msgs/Image objects, the
    thermal as the node decodes it (``thermal_input``; ``float_range`` maps 32FC1)."""
    try:
        rgb = as_rgb8(*image_array(rgb_msg))
        thermal = thermal_input(*image_array(thermal_msg), float_range=float_range)
    except ImageConversionError as exc:
        raise BagError(f'image at stamp {stamp_ns(rgb_msg.header)} ns cannot be converted: '
                       f'{exc}') from exc
    return rgb, thermal


def pairing_stats(pairer, names=('rgb', 'thermal')):
    """Counts of a finished pairer: per input received / unpaired (evicted, discarded or still
    waiting at the end of the bag), and pairs."""
    snap = pairer.snapshot()
    unpaired = {name: snap['evicted'][i] + snap['unmatched'][i] + snap['pending'][i]
                for i, name in enumerate(names)}
    received = {name: snap['received'][i] for i, name in enumerate(names)}
    return {'received': received, 'unpaired': unpaired, 'pairs': snap['pairs'],
            'resets': snap['resets']}


def run_offline(reader, detector, collector, rgb_topic, thermal_topic, sync=SyncConfig(),
                float_range=None, progress=True):
    """Evaluate every pair of an open ``BagReader``; results go to ``collector``
    (a ``RunCollector``). Returns ``pairing_stats``."""
    rgb_info = reader.require(rgb_topic, IMAGE)
    reader.require(thermal_topic, IMAGE)
    pairer = ApproximatePairer(2, queue_size=sync.queue_size, slop_s=sync.slop_s,
                               max_backwards_s=sync.max_backwards_s,
                               match_wait_s=sync.match_wait_s)
    index = {rgb_topic: 0, thermal_topic: 1}
    bar = tqdm(total=rgb_info.count, desc='eval offline', unit='rgb', disable=not progress)
    for message in reader.messages([rgb_topic, thermal_topic]):
        image = reader.decode(message)
        if message.topic == rgb_topic:
            bar.update(1)
        for pair in pairer.add(index[message.topic], stamp_ns(image.header) / 1e9, image):
            rgb_msg, thermal_msg = pair.items
            rgb, thermal = decode_pair(rgb_msg, thermal_msg, float_range)
            start = time.perf_counter()
            result = detector.infer(rgb, thermal, fuse=True)
            latency = (time.perf_counter() - start) * 1e3
            collector.add(stamp_ns(rgb_msg.header), rgb, thermal, result.boxes, result.scores,
                          result.labels, result.fused, latency)
    bar.close()
    return pairing_stats(pairer)
