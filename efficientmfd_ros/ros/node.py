"""``efficientmfd_node``: a lifecycle node pairing RGB + thermal, publishing fusion and detections.

Topics (relative names, remapped in launch):
- in: ``rgb/image_raw``, ``thermal/image_raw`` (sensor_msgs/Image), or ``.../compressed``
  (sensor_msgs/CompressedImage) with ``input_transport: compressed``; sensor-data QoS.
- in (optional): ``rgb/camera_info`` (sensor_msgs/CameraInfo of the RGB camera).
- out: ``detections`` (vision_msgs/Detection2DArray), ``fused/image`` (rgb8),
  ``fused/camera_info`` (the RGB camera_info with the fused image's header, once one arrived),
  ``label_info`` (latched), ``~/debug/image`` (boxes drawn), ``/diagnostics``. Reliable QoS.

Lifecycle: configure loads the model and creates the publishers; activate subscribes and starts
the inference worker; deactivate unsubscribes and stops it; cleanup frees the model.

The autostart and diagnostics timers run on the steady clock, not the node clock: under
``use_sim_time`` the node clock stands still until ``/clock`` arrives and after a bag ends, and a
silent camera must still be reported (and the node started) then.
"""
import gc
import re

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from efficientmfd_ros.ros import qos
from efficientmfd_ros.ros.conversions import diagnostic_status, label_info_msg
from efficientmfd_ros.ros.diagnostics import DiagnosticsReporter, NodeStats, ProblemLog
from efficientmfd_ros.ros.inference_worker import InferenceWorker
from efficientmfd_ros.ros.intake import Intake
from efficientmfd_ros.ros.model_loader import ModelLoadError, load_model
from efficientmfd_ros.ros.params import declare_parameters, read_config
from efficientmfd_ros.ros.pipeline import Outputs, PairProcessor

NODE_NAME = 'efficientmfd_node'
INPUT_TOPICS = ('rgb/image_raw', 'thermal/image_raw')
CAMERA_INFO_TOPIC = 'rgb/camera_info'
OUTPUT_TOPICS = ('detections', 'fused/image', 'fused/camera_info', 'label_info', '~/debug/image',
                 '/diagnostics')
SYNC_PARAMS = ('approximate_sync_tolerance_s', 'approximate_sync_wait_s', 'queue_size',
               'max_backwards_s')
THRESHOLD_PARAMS = {'score_threshold': 'score_threshold', 'nms_iou_threshold': 'nms_iou',
                    'max_detections': 'max_detections'}


class MfdNode(Node):
    """RGB-thermal fusion + detection as a managed (lifecycle) node."""

    def __init__(self, node_name=NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._configured = False
        self._active = False
        declare_parameters(self, on_change=self._on_params,
                           is_unconfigured=lambda: not self._configured)
        self.config = read_config(self)
        self._qos = qos.QosCache(self)
        self._problems = ProblemLog(self.get_logger().warning)
        # conditions seen in diagnostics (a silent camera, slow inference) last: log them rarely
        self._conditions = ProblemLog(self.get_logger().warning, period_s=30.0)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._detector = None
        self._subs = []
        self._pubs = {}
        if self.config.autostart:
            self._autostart_timer = self.create_timer(0.0, self._autostart,
                                                      clock=self._steady)

    def _autostart(self):
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # ---- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the model, create publishers. SUCCESS -> inactive; FAILURE -> unconfigured."""
        self.config = read_config(self)
        try:
            self._detector, path = load_model(self.config)
        except ModelLoadError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        for note in self._detector.selection_notes:
            self.get_logger().info(note)
        self.get_logger().info(
            f'loaded {path} on {self._detector.describe()}, input '
            f'{"x".join(map(str, self._detector.input_size))}; '
            f'classes: {", ".join(map(str, self._detector.class_names))}')
        self._create_outputs()
        self._stats = NodeStats()
        self._reporter = DiagnosticsReporter()
        compressed = self.config.input_transport == 'compressed'
        self._outputs = Outputs(self._pubs['detections'], self._pubs['fused'],
                                self._pubs['debug'], self._pubs['fused_camera_info'])
        self._processor = PairProcessor(
            self._detector, self._outputs,
            self._stats, self._problems, self.config, compressed)
        self._worker = InferenceWorker(self._processor.process, on_error=self._on_worker_error,
                                       max_waiting=self.config.max_waiting_pairs)
        self._intake = Intake(self.config, self._stats, self._worker, self._problems, compressed)
        self._diag_timer = self.create_timer(self.config.diagnostics_period_s, self._diagnose,
                                             clock=self._steady)
        self._configured = True
        _collect_and_freeze()
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Enable publishers, latch label_info, subscribe. SUCCESS -> active."""
        result = super().on_activate(state)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._publish_label_info()
        self._stats.reset_arrivals()
        self._worker.start()
        compressed = self.config.input_transport == 'compressed'
        msg_type = CompressedImage if compressed else Image
        for index, topic in enumerate(INPUT_TOPICS):
            name = topic + '/compressed' if compressed else topic
            self._subs.append(self._qos.subscription(
                msg_type, name, lambda msg, i=index: self._intake.on_message(i, msg),
                qos.sensor_data()))
        # Camera drivers publish camera_info reliable or best effort: best effort takes both.
        self._subs.append(self._qos.subscription(
            CameraInfo, CAMERA_INFO_TOPIC, self._outputs.set_camera_info,
            qos.sensor_data()))
        self._active = True
        self.get_logger().info(
            'active: subscribed to ' + ', '.join(s.topic_name for s in self._subs))
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe, finish the pair in flight. SUCCESS -> inactive."""
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Destroy publishers, free the model. SUCCESS -> unconfigured."""
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything from any state. SUCCESS -> finalized."""
        self._stop_inputs()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Release everything. SUCCESS -> unconfigured (the node can be configured again)."""
        self.get_logger().error(f'error while in {state.label}: releasing everything')
        self._stop_inputs()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def release(self):
        """Stop the worker and drop the model without a transition (process exit)."""
        self._stop_inputs()
        self._release()

    def _stop_inputs(self):
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._active:
            if not self._worker.stop():
                self.get_logger().warning('the pair in flight did not finish within 30 s')
            self._intake.flush()
        self._active = False

    def _release(self):
        if not self._configured:
            return
        self.destroy_timer(self._diag_timer)
        for key, pub in self._pubs.items():
            if key == 'diagnostics':
                self.destroy_publisher(pub)
            else:
                self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._detector = self._processor = self._worker = self._intake = self._outputs = None
        self._configured = False
        _collect_and_freeze()
        _empty_cuda_cache()

    def _create_outputs(self):
        make = self._qos.publisher
        self._pubs = {
            'detections': make(Detection2DArray, 'detections', qos.reliable(10)),
            'fused': make(Image, 'fused/image', qos.reliable(5)),
            'fused_camera_info': make(CameraInfo, 'fused/camera_info', qos.reliable(5)),
            'label_info': make(LabelInfo, 'label_info', qos.latched()),
            'debug': make(Image, '~/debug/image', qos.reliable(5)),
            # diagnostics also report while inactive, so this one is not a lifecycle publisher
            'diagnostics': make(DiagnosticArray, '/diagnostics', qos.reliable(10),
                                lifecycle=False),
        }

    # ---- callbacks -------------------------------------------------------------------------

    def _publish_label_info(self):
        header = Header(stamp=self.get_clock().now().to_msg())
        self._pubs['label_info'].publish(label_info_msg(
            self._detector.class_names, self.config.score_threshold, header))

    def _on_params(self, changed):
        """Apply accepted run-time changes (configure-time ones are read at configure)."""
        for name, value in changed.items():
            setattr(self.config, name, list(value) if isinstance(value, (list, tuple))
                    else value)
        if not self._configured:
            return
        thresholds = {THRESHOLD_PARAMS[k]: v for k, v in changed.items()
                      if k in THRESHOLD_PARAMS}
        if thresholds:
            self._processor.set_thresholds(**thresholds)
        if any(k in SYNC_PARAMS for k in changed):
            self._intake.rebuild_pairer()
        if 'score_threshold' in changed and self._active:
            self._publish_label_info()

    def _on_worker_error(self, job, exc):
        self._problems.report('inference', f'pair at {job.stamp_s:.3f} s failed: '
                              f'{type(exc).__name__}: {exc}')

    def _diagnose(self):
        context = {'backend': self._detector.backend_name, 'device': str(self._detector.device),
                   'active': self._active, 'modality_timeout_s': self.config.modality_timeout_s,
                   'allow_single_modality': self.config.allow_single_modality}
        reports = self._reporter.report(self._stats, self._intake.snapshot(),
                                        self._worker.counts, context)
        prefix = self.get_fully_qualified_name().lstrip('/')
        msg = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        msg.status = [diagnostic_status(f'{prefix}: {suffix}', level, text, context['device'],
                                        values) for suffix, level, text, values in reports]
        self._pubs['diagnostics'].publish(msg)
        for suffix, level, text, _ in reports:
            if level != 'ok':
                self._conditions.report(re.sub(r'[\d.]+', '#', text), f'{suffix}: {text}')


def _collect_and_freeze():
    """Collect garbage once, then exempt every surviving object from later collections.

    Nearly all of the ~400k objects the node holds (torch, the model, message classes) live as
    long as the process: rescanning them costs GC pauses between frames and seconds of collections
    at interpreter exit, past the 5 s a launch system waits after SIGINT. Objects freed later are
    still freed by reference counting; frozen ones are unfrozen first so a cleanup frees the
    model's cycles too.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _empty_cuda_cache():
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
