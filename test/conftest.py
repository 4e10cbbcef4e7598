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
