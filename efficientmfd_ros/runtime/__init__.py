"""Inference runtime: FusionDetector and its backends (torch, onnxruntime, tensorrt)."""
from efficientmfd_ros.runtime.detector import Detections, FusionDetector, load_detector
from efficientmfd_ros.runtime.errors import BackendUnavailableError, InputError, ModelFileError

__all__ = ['BackendUnavailableError', 'Detections', 'FusionDetector', 'InputError',
           'ModelFileError', 'load_detector']
