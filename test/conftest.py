"""Shared fixtures: the real datasets in ../shared/data, and tiny deterministic inputs."""
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session', autouse=True)
def private_caches(tmp_path_factory):
    """Engines and ONNX exports made by tests (and the nodes they start) go to a folder of this
    run, never to the user's ~/.cache."""
    root = tmp_path_factory.mktemp('caches')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('EFFICIENTMFD_ONNX_CACHE', str(root / 'onnx'))
        patch.setenv('EFFICIENTMFD_ENGINE_CACHE', str(root / 'engines'))
        yield root


def _shared_set(name):
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f'{path} is absent: real-data tests need ../shared/data beside the project')
    return path


@pytest.fixture(scope='session')
def project_root():
    return PROJECT_ROOT


@pytest.fixture(scope='session')
def llvip_person():
    """LLVIP frames 010001-010040 with VOC boxes (visible/, infrared/, Annotations/)."""
    return _shared_set('llvip_person')


@pytest.fixture(scope='session')
def llvip_unlabelled():
    return _shared_set('llvip_unlabelled')


@pytest.fixture(scope='session')
def roadscene():
    return _shared_set('roadscene')


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The bag and CLI tests' fixtures: a tiny random checkpoint and a small synthetic bag it fits.
TINY_CLASSES = ('person', 'car')
OFFLINE_ARGS = ('--backend', 'torch', '--device', 'cpu', '--score-threshold', '0.0', '--quiet')


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory, project_root):
    """A random-init tiny EfficientMFD checkpoint (64x96 input, classes person and car)."""
    torch = pytest.importorskip('torch')
    from efficientmfd_ros.model import ModelConfig, build_model
    from efficientmfd_ros.model.factory import save_checkpoint
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')
    assert tuple(cfg.class_names) == TINY_CLASSES
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False)
    return save_checkpoint(tmp_path_factory.mktemp('weights') / 'tiny.pt', model)


@pytest.fixture(scope='session')
def tiny_bag(tmp_path_factory):
    """6 synthetic frames of 96x64 at 10 Hz, thermal 4 ms behind RGB, person and car labelled."""
    from efficientmfd_ros.bags.frame_source import synthetic_frames
    from efficientmfd_ros.bags.make import write_bag
    path = tmp_path_factory.mktemp('tiny_bag') / 'bag'
    write_bag(synthetic_frames(6, (96, 64), seed=0, class_names=TINY_CLASSES), path,
              thermal_offset_ms=4.0, progress=False)
    return path


@pytest.fixture(scope='session')
def offline_run(tiny_bag, tiny_weights, tmp_path_factory):
    """``(out dir, metrics)`` of efficientmfd_eval_bag offline on ``tiny_bag`` (torch, cpu,
    score threshold 0 so the random model's boxes are kept, with --video)."""
    import json

    from efficientmfd_ros.tools.eval_bag import main as eval_main
    out = tmp_path_factory.mktemp('offline')
    code = eval_main(['--bag', str(tiny_bag), '--weights', str(tiny_weights), '--out', str(out),
                      *OFFLINE_ARGS, '--video'])
    assert code == 0
    return out, json.loads((out / 'metrics.json').read_text())
