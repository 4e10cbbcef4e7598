"""efficientmfd_ros: RGB-thermal fusion and detection (EfficientMFD) for ROS 2.

Layers, one direction: ``core``, ``model``, ``train``, ``runtime`` and ``tools`` never import
rclpy or message packages; only ``ros`` does.
"""

__version__ = '0.1.0'
