"""Builds the FusionDetector from the node's parameters, turning every failure into one message.

A missing file, a corrupt checkpoint, an unavailable backend or device all become
``ModelLoadError`` with a message naming the file and the cause, so configure can log one line
and return FAILURE instead of a traceback.
"""
from efficientmfd_ros.ros.params import resolve_model_path
from efficientmfd_ros.runtime.errors import ModelLoadError

__all__ = ['ModelLoadError', 'detector_kwargs', 'load_model']


def detector_kwargs(config):
    """The keyword arguments of ``load_detector`` that the parameters ``config`` set."""
    from efficientmfd_ros.runtime.backend_torch import auto_device
    homography = None
    if not config.homography_is_identity:
        h = list(config.thermal_to_rgb_homography)
        homography = (tuple(h[0:3]), tuple(h[3:6]), tuple(h[6:9]))
    kwargs = {
        'backend': config.backend,
        'device': auto_device(config.device),
        'precision': config.precision,
        'score_threshold': float(config.score_threshold),
        'nms_iou': float(config.nms_iou_threshold),
        'max_detections': int(config.max_detections),
        'homography': homography,
        'build_engine_if_missing': bool(config.build_engine_if_missing),
        'cpu_threads': int(config.cpu_threads),
    }
    if config.thermal_counts_range is not None:
        kwargs['thermal_range'] = tuple(config.thermal_counts_range)
    if list(config.input_size) != [0, 0]:
        kwargs['input_size'] = tuple(int(v) for v in config.input_size)
    if int(config.num_proposals):
        kwargs['num_proposals'] = int(config.num_proposals)
    return kwargs


def load_model(config):
    """``(FusionDetector, resolved model path)`` for the parameters ``config``.

    Raises ``ModelLoadError`` for any failure (missing file, corrupt or mismatching checkpoint,
    backend or device unavailable).
    """
    path = resolve_model_path(config.model_path)
    if not path.is_file():
        raise ModelLoadError(
            f"model file not found: {path} (model_path '{config.model_path}'; relative paths "
            'resolve against share/efficientmfd_ros/models)')
    try:
        from efficientmfd_ros.runtime import load_detector
        detector = load_detector(str(path), **detector_kwargs(config))
        # the first frames would pay for lazy initialisation (cuDNN autotuning, allocations)
        detector.warmup(1)
    except Exception as exc:  # every failure of the loading chain becomes one clear message
        raise ModelLoadError(f'cannot load model {path}: {type(exc).__name__}: {exc}') from exc
    return detector, path

