"""Exception types of the inference runtime: one per kind of problem, with a message naming it."""


class InputError(ValueError):
    """An image given to the detector has the wrong dtype, shape or size."""


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here (package missing, no CUDA, no ONNX file, ...)."""


class ModelFileError(RuntimeError):
    """An ONNX file or its sidecar JSON is missing, corrupt or does not match what it claims."""


class ModelLoadError(RuntimeError):
    """Any failure to load weights into a detector (missing file, corrupt or mismatching
    checkpoint, backend or device unavailable), as one message naming the file and the cause:
    what the node's configure and the evaluation tools report."""
