"""The node's parameters: one declarative table, declared with descriptors and validated on set.

Every parameter is a ``Param`` row in ``PARAMETERS``. ``declare_parameters(node)`` declares them
all with a ``ParameterDescriptor`` (type, description, range, read-only), checks the values the
node started with and installs an on-set callback that rejects bad values with a reason.
``read_config(node)`` returns the values as a typed ``NodeConfig``.

Each row says when a change takes effect (``applies``):
- ``live``: at once, in any state (thresholds, sync tolerance, output and diagnostic behaviour);
- ``configure``: at the next configure; accepted only while the node is unconfigured, since the
  model, backend, subscriptions and timers are built from them (deactivate + cleanup first);
- ``startup``: read-only, read once when the node starts (``autostart``).
``config/mfd.yaml`` lists exactly these names (a test checks it).
"""
from dataclasses import dataclass, field, make_dataclass
import math
import os
from pathlib import Path

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)

PACKAGE = 'efficientmfd_ros'
IDENTITY_3X3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
BACKENDS = ('auto', 'torch', 'onnxruntime', 'tensorrt')
PRECISIONS = ('fp32', 'fp16')
TRANSPORTS = ('raw', 'compressed')


def _check_device(value):
    text = value.strip().lower()
    if text in ('auto', 'cpu', 'cuda') or (
            text.startswith('cuda:') and text[5:].isdigit()):
        return None
    return f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}"


def _check_input_size(value):
    if len(value) != 2:
        return f'input_size must be [height, width] (2 integers), got {len(value)} values'
    height, width = value
    if (height, width) == (0, 0):
        return None
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        return (f'input_size {list(value)} must be [0, 0] (from the checkpoint) or two '
                'positive multiples of 32')
    return None


def _check_homography(value):
    if len(value) != 9:
        return f'thermal_to_rgb_homography needs 9 values (row-major 3x3), got {len(value)}'
    if not all(math.isfinite(v) for v in value):
        return 'thermal_to_rgb_homography has a non-finite value'
    h = value
    det = (h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6])
           + h[2] * (h[3] * h[7] - h[4] * h[6]))
    if abs(det) < 1e-12:
        return f'thermal_to_rgb_homography is singular (determinant {det:.3g})'
    return None


def _check_nms_iou(value):
    return None if value > 0.0 else f'nms_iou_threshold must be greater than 0, got {value}'


def _check_model_path(value):
    return None if value.strip() else 'model_path must not be empty'


@dataclass(frozen=True)
class Param:
    """One parameter: its type is the type of ``default`` (bool, int, float, str, list)."""

    name: str
    default: object
    description: str
    low: float | None = None
    high: float | None = None
    applies: str = 'configure'  # 'live' | 'configure' | 'startup'
    choices: tuple = ()
    check: object = None  # callable(value) -> error text or None
    constraints: str = ''

    @property
    def ros_type(self):
        if isinstance(self.default, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(self.default, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(self.default, float):
            return ParameterType.PARAMETER_DOUBLE
        if isinstance(self.default, str):
            return ParameterType.PARAMETER_STRING
        if all(isinstance(v, float) for v in self.default):
            return ParameterType.PARAMETER_DOUBLE_ARRAY
        return ParameterType.PARAMETER_INTEGER_ARRAY

    def descriptor(self):
        text = self.constraints
        if self.applies == 'configure':
            text = 'applies at configure; change while unconfigured' + (
                f'; {text}' if text else '')
        if self.choices:
            text = ' | '.join(self.choices) + (f'; {text}' if text else '')
        desc = ParameterDescriptor(
            name=self.name, type=self.ros_type, description=self.description,
            additional_constraints=text, read_only=self.applies == 'startup')
        if self.low is not None:
            if self.ros_type == ParameterType.PARAMETER_INTEGER:
                desc.integer_range = [IntegerRange(
                    from_value=int(self.low), to_value=int(self.high), step=0)]
            else:
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return desc

    def validate(self, value):
        """Error text for ``value`` beyond what the descriptor enforces, or None."""
        if self.choices and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}; got {value!r}'
        if self.check is not None:
            return self.check(value)
        return None


PARAMETERS = (
    Param('model_path', 'efficientmfd_lite_llvip.pt',
          'Checkpoint (.pt), ONNX model or TensorRT engine; a relative path resolves against '
          "the package's share/efficientmfd_ros/models", check=_check_model_path),
    Param('backend', 'auto', 'Inference backend; auto picks one that fits model_path and device',
          choices=BACKENDS),
    Param('device', 'auto', 'Inference device: auto, cpu, cuda or cuda:N', check=_check_device),
    Param('precision', 'fp32', 'Inference precision', choices=PRECISIONS),
    Param('cpu_threads', 0, 'Intra-op threads of a CPU backend; 0: every CPU this process may '
          'run on', 0, 256),
    Param('input_size', [0, 0], 'Network input [height, width] in pixels; [0, 0] takes the '
          'checkpoint value', check=_check_input_size,
          constraints='[0, 0] or positive multiples of 32'),
    Param('num_proposals', 0, 'Noise boxes the detection head refines per pair; 0 takes the '
          'checkpoint value. More find more objects; the head costs more per box', 0, 1000),
    Param('score_threshold', 0.3, 'Minimum detection score published', 0.0, 1.0, applies='live'),
    Param('nms_iou_threshold', 0.5, 'IoU above which overlapping boxes of one class are '
          'suppressed', 0.0, 1.0, applies='live', check=_check_nms_iou,
          constraints='greater than 0'),
    Param('max_detections', 100, 'Most detections published per pair', 1, 1000, applies='live'),
    Param('approximate_sync_tolerance_s', 0.02, 'Largest RGB/thermal stamp difference paired',
          0.0005, 1.0, applies='live'),
    Param('approximate_sync_wait_s', 0.0, 'Hold a match up to this long (stamp time) for a '
          'closer partner; 0 pairs greedily, the lowest latency. Costs up to one frame period of '
          'the slower camera per pair', 0.0, 1.0, applies='live'),
    Param('queue_size', 10, 'Messages kept per input while waiting for a partner', 1, 100,
          applies='live'),
    Param('max_backwards_s', 1.0, 'Stamps jumping back more than this (bag loop, clock reset) '
          'reset the pairing queues', 0.001, 3600.0, applies='live'),
    Param('input_transport', 'raw', 'raw: sensor_msgs/Image on rgb/image_raw; compressed: '
          'sensor_msgs/CompressedImage on rgb/image_raw/compressed', choices=TRANSPORTS),
    Param('thermal_counts_min', 0.0, '16-bit thermal (mono16, 16UC1) count mapped to 0; min = '
          'max = 0 uses the full 0..65535', 0.0, 65535.0),
    Param('thermal_counts_max', 0.0, '16-bit thermal count mapped to 1; see thermal_counts_min',
          0.0, 65535.0),
    Param('thermal_float_min', 0.0, '32FC1 thermal value (e.g. a temperature) mapped to 0; '
          '32FC1 input needs thermal_float_min < thermal_float_max', -1e6, 1e6),
    Param('thermal_float_max', 0.0, '32FC1 thermal value mapped to 1; see thermal_float_min',
          -1e6, 1e6),
    Param('thermal_to_rgb_homography', list(IDENTITY_3X3), 'Row-major 3x3 homography taking '
          'thermal pixels to RGB pixels; identity requires equal image sizes',
          check=_check_homography, constraints='9 finite values, non-singular'),
    Param('max_waiting_pairs', 1, 'Pairs kept waiting while one is inferred; a newer pair '
          'beyond them drops the oldest. 1: always the freshest, lowest latency; more: fewer '
          'pairs lost after a slow inference, at more latency', 1, 10),
    Param('fused_image_every_n', 1, 'Publish fused/image for one pair in n (fusion runs only '
          'then, and only with a subscriber)', 1, 10000, applies='live'),
    Param('class_id_as_name', False, 'Detection class_id is the class name instead of the '
          'class index', applies='live'),
    Param('allow_single_modality', False, 'When one camera is silent, detect on the other with '
          'the silent one blanked (zeros)', applies='live'),
    Param('modality_timeout_s', 1.0, 'A camera with no message for this long is reported silent',
          0.05, 600.0, applies='live'),
    Param('autostart', True, 'Configure and activate right after start', applies='startup'),
    Param('build_engine_if_missing', False, 'TensorRT backend: build the engine from the ONNX '
          'model next to it when missing (minutes)'),
    Param('diagnostics_period_s', 1.0, 'Period of /diagnostics messages', 0.1, 60.0),
)
BY_NAME = {p.name: p for p in PARAMETERS}


def _range(low_name, high_name):
    """A property: ``(low, high)`` of two parameters, or None while both are 0 (unset)."""
    def get(config):
        low, high = getattr(config, low_name), getattr(config, high_name)
        return None if low == high == 0.0 else (low, high)
    return property(get)


def _homography_is_identity(config):
    return all(abs(a - b) < 1e-12
               for a, b in zip(config.thermal_to_rgb_homography, IDENTITY_3X3))


def _default_factory(default):
    return lambda: list(default)


# The typed values of the table, one field per row (units in the names; homography row-major).
NodeConfig = make_dataclass(
    'NodeConfig',
    [(p.name, type(p.default), field(default_factory=_default_factory(p.default))
      if isinstance(p.default, list) else field(default=p.default)) for p in PARAMETERS],
    namespace={'thermal_counts_range': _range('thermal_counts_min', 'thermal_counts_max'),
               'thermal_float_range': _range('thermal_float_min', 'thermal_float_max'),
               'homography_is_identity': property(_homography_is_identity)})


class ParameterError(ValueError):
    """A parameter value the node cannot start with; the message names it."""


def _cross_check(values):
    """Rules spanning several parameters; ``values`` maps names to (proposed) values."""
    for kind, unset in (('counts', 'or both 0 for the full range'),
                        ('float', 'or both 0 without 32FC1 input')):
        low, high = values[f'thermal_{kind}_min'], values[f'thermal_{kind}_max']
        if (low, high) != (0.0, 0.0) and not high > low:
            return (f'thermal_{kind}_max ({high}) must be greater than thermal_{kind}_min '
                    f'({low}), {unset}')
    return None


def declare_parameters(node, on_change=None, is_unconfigured=lambda: True):
    """Declare every row of ``PARAMETERS`` on ``node`` and install the validating callback.

    ``on_change(dict name -> value)`` is called after a change is accepted;
    ``is_unconfigured()`` tells whether ``configure`` rows may change now.
    Raises ``ParameterError`` when the values the node was started with are invalid.
    """
    for param in PARAMETERS:
        try:
            node.declare_parameter(param.name, param.default, param.descriptor())
        except Exception as exc:  # rclpy raises several types for bad overrides
            raise ParameterError(f'parameter {param.name}: {exc}') from exc
    current = {p.name: node.get_parameter(p.name).value for p in PARAMETERS}
    for param in PARAMETERS:
        error = param.validate(current[param.name])
        if error:
            raise ParameterError(error)
    error = _cross_check(current)
    if error:
        raise ParameterError(error)

    def on_set(params):
        proposed = {p.name: node.get_parameter(p.name).value for p in PARAMETERS}
        changed = {}
        for item in params:
            spec = BY_NAME.get(item.name)
            if spec is None:
                continue  # qos_overrides.* and use_sim_time are rclpy's own
            error = spec.validate(item.value)
            if not error and spec.applies == 'configure' and not is_unconfigured():
                error = (f'{item.name} applies at configure: change it while the node is '
                         'unconfigured (deactivate and cleanup first)')
            if error:
                return SetParametersResult(successful=False, reason=error)
            proposed[item.name] = changed[item.name] = item.value
        error = _cross_check(proposed)
        if error:
            return SetParametersResult(successful=False, reason=error)
        if changed and on_change is not None:
            on_change(changed)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def read_config(node):
    """The declared values as a ``NodeConfig`` (arrays as lists)."""
    values = {}
    for param in PARAMETERS:
        value = node.get_parameter(param.name).value
        values[param.name] = list(value) if isinstance(value, (list, tuple)) or hasattr(
            value, 'tolist') else value
    return NodeConfig(**values)


def resolve_model_path(model_path):
    """Absolute path for ``model_path``; relative names are looked up in the package's models/.

    Order: absolute (``~`` expanded) as is; the installed share directory's ``models/``; the
    source tree's ``models/`` (running from a checkout). Returns the first existing candidate,
    or the share candidate when none exists so the error names where it was expected.
    """
    path = Path(os.path.expanduser(model_path))
    if path.is_absolute():
        return path
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)) / 'models' / path)
    except Exception:  # not installed with ament: the package is not in the index
        pass
    candidates.append(Path(__file__).resolve().parents[2] / 'models' / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]
