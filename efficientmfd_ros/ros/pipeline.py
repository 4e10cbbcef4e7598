"""What the inference worker does with one job: decode, check, infer, publish.

Everything published carries the RGB input's header (a thermal-only job, in single-modality mode,
carries the thermal stamp with the last RGB frame_id seen, since boxes are in RGB pixels).

The fused image is on the RGB camera's pixel grid, so the RGB ``camera_info`` describes it: the
latest one received is republished on ``fused/camera_info`` with each fused image's header (none
until one arrives; one whose size differs from the fused image is counted and not sent, since its
intrinsics would not fit).

Policy for RGB/thermal images of different sizes: with the identity homography the pair is
rejected (counted ``size_mismatch``), because nothing says how the two images line up; with a
homography set, the inference core warps thermal onto the RGB image. Cameras sharing a field of
view need ``thermal_to_rgb_homography: [sx, 0, 0.5*sx-0.5, 0, sy, 0.5*sy-0.5, 0, 0, 1]``.
"""
import threading
import time

import numpy as np
from std_msgs.msg import Header

from efficientmfd_ros.core.image_codec import ImageConversionError, as_rgb8, thermal_input
from efficientmfd_ros.ros.conversions import (
    camera_info_with_header,
    compressed_msg_to_numpy,
    detections_to_msg,
    image_msg_to_numpy,
    numpy_to_image_msg,
)
from efficientmfd_ros.ros.diagnostics import INPUTS
from efficientmfd_ros.ros.overlay import draw_detections


class Outputs:
    """The publishers the worker writes to (lifecycle publishers: silent unless active), and the
    latest RGB camera_info (``set_camera_info`` from the subscription's thread)."""

    def __init__(self, detections, fused, debug, camera_info=None):
        self.detections = detections
        self.fused = fused
        self.debug = debug
        self.camera_info = camera_info
        self._info = None
        self._lock = threading.Lock()

    def set_camera_info(self, msg):
        with self._lock:
            self._info = msg

    def latest_camera_info(self):
        with self._lock:
            return self._info


class PairProcessor:
    """``process(job)`` for the ``InferenceWorker``; ``config`` is the node's live NodeConfig."""

    def __init__(self, detector, outputs, stats, problems, config, compressed):
        self._detector = detector
        self._out = outputs
        self._stats = stats
        self._problems = problems
        self._config = config
        self._compressed = compressed
        self._lock = threading.Lock()
        self._thresholds = {}
        self._pairs = 0
        self._rgb_frame_id = None
        self._shapes = [None, None]

    def set_thresholds(self, **thresholds):
        """Queue new thresholds; the worker applies them before its next inference."""
        with self._lock:
            self._thresholds.update(thresholds)

    def _apply_thresholds(self):
        with self._lock:
            pending, self._thresholds = self._thresholds, {}
        if pending:
            self._detector.set_thresholds(**pending)

    def _decode(self, index, msg):
        if self._compressed:
            image, encoding = compressed_msg_to_numpy(msg)
        else:
            image, encoding = image_msg_to_numpy(msg)
        if index == 0:
            return as_rgb8(image, encoding)
        if encoding == '32FC1' and self._config.thermal_float_range is None:
            raise ImageConversionError(
                '32FC1 thermal needs thermal_float_min < thermal_float_max (e.g. temperatures)')
        return thermal_input(image, encoding, self._config.thermal_float_range)

    def decode(self, payload):
        """Decoded ``(rgb HxWx3 uint8, thermal HxW uint8|uint16)``, a silent one blanked."""
        images = [None, None]
        for index, msg in enumerate((payload.rgb, payload.thermal)):
            if msg is None:
                continue
            try:
                images[index] = self._decode(index, msg)
            except ImageConversionError as exc:
                name = INPUTS[index]
                self._stats.count('bad_input', index)
                self._problems.report(f'bad_{name}', f'dropping {name} image: {exc}')
                return None
            self._shapes[index] = images[index].shape[:2]
        identity = self._config.homography_is_identity
        rgb, thermal = images
        if rgb is None:
            hw = thermal.shape if identity or self._shapes[0] is None else self._shapes[0]
            rgb = np.zeros((*hw, 3), np.uint8)
        if thermal is None:
            hw = rgb.shape[:2] if identity or self._shapes[1] is None else self._shapes[1]
            thermal = np.zeros(hw, np.uint8)
        if identity and rgb.shape[:2] != thermal.shape[:2]:
            self._stats.count('size_mismatch')
            self._problems.report(
                'size_mismatch', f'dropping pair: rgb {rgb.shape[1]}x{rgb.shape[0]} and thermal '
                f'{thermal.shape[1]}x{thermal.shape[0]} differ and thermal_to_rgb_homography is '
                'the identity; set it to register thermal onto rgb')
            return None
        return rgb, thermal

    def _header(self, payload):
        if payload.rgb is not None:
            self._rgb_frame_id = payload.rgb.header.frame_id
            return payload.rgb.header
        stamp = payload.thermal.header.stamp
        frame = self._rgb_frame_id if self._rgb_frame_id is not None else (
            payload.thermal.header.frame_id)
        return Header(stamp=stamp, frame_id=frame)

    def _publish_camera_info(self, hw, header):
        info = self._out.latest_camera_info()
        if info is None or self._out.camera_info is None:
            return
        if (info.height, info.width) != tuple(hw):
            self._stats.count('camera_info_mismatch')
            self._problems.report('camera_info', f'rgb camera_info is {info.width}x{info.height}'
                                  f' but the fused image is {hw[1]}x{hw[0]}: not republished')
            return
        self._out.camera_info.publish(camera_info_with_header(info, header))

    def process(self, job):
        start = time.perf_counter()
        payload = job.payload
        images = self.decode(payload)
        if images is None:
            return
        rgb, thermal = images
        header = self._header(payload)
        self._apply_thresholds()
        due = self._pairs % int(self._config.fused_image_every_n) == 0
        self._pairs += 1
        fuse = due and self._out.fused.get_subscription_count() > 0
        decoded = time.perf_counter()
        result = self._detector.infer(rgb, thermal, fuse=fuse)
        inferred = time.perf_counter()
        names = self._detector.class_names
        self._out.detections.publish(
            detections_to_msg(result, header, names, self._config.class_id_as_name))
        self._stats.count('published')
        if fuse and result.fused is not None:
            self._out.fused.publish(numpy_to_image_msg(result.fused, 'rgb8', header))
            self._stats.count('fused_published')
            self._publish_camera_info(result.fused.shape[:2], header)
        published = time.perf_counter()
        if self._out.debug.get_subscription_count() > 0:
            base = result.fused if result.fused is not None else rgb
            self._out.debug.publish(
                numpy_to_image_msg(draw_detections(base, result, names), 'rgb8', header))
            self._stats.count('debug_published')
        done = time.perf_counter()
        overhead = (decoded - start) + (published - inferred)
        self._stats.observe(
            convert_ms=(decoded - start) * 1e3, model_ms=(inferred - decoded) * 1e3,
            publish_ms=(published - inferred) * 1e3, debug_ms=(done - published) * 1e3,
            overhead_ms=overhead * 1e3, total_ms=(done - start) * 1e3)
