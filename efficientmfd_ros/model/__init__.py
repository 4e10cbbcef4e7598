"""EfficientMFD network: shared backbone + FPN, ORPPT fusion, CFDP diffusion detection head."""
from efficientmfd_ros.model.config import ModelConfig, ModelConfigError
from efficientmfd_ros.model.efficientmfd import EfficientMFD
from efficientmfd_ros.model.factory import (
                                            CheckpointError,
                                            build_model,
                                            load_checkpoint,
                                            read_checkpoint,
                                            save_checkpoint,
)

__all__ = ['CheckpointError', 'EfficientMFD', 'ModelConfig', 'ModelConfigError', 'build_model',
           'load_checkpoint', 'read_checkpoint', 'save_checkpoint']
